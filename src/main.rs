//! The binary: picks the config, then serves or mints a token. Nothing else.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use challenge_server::config::{LogFormat, Settings};
use challenge_server::server::Application;

/// mimalloc: less memory per small allocation than the system allocator (a million
/// live challenges are a million small records) and faster on the request path.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "challenge-server",
    version,
    about = "A self-hostable challenge service for login and approval flows"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve {
        /// A config file merged over the shipped defaults; repeat to layer several.
        #[arg(long)]
        config: Vec<PathBuf>,
        /// Overrides `server.listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Overrides `storage.data_dir`.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Serve the public development key on a non-loopback address anyway (sets
        /// `auth.insecure_dev_key`): anyone can then mint tokens for this server.
        #[arg(long)]
        insecure_dev_key: bool,
    },
    /// Print a bearer token signed with the configured key (development and operations).
    Token {
        #[arg(long)]
        tenant: String,
        /// Space-separated scopes, e.g. "challenge:post challenge:get".
        #[arg(long)]
        scope: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        /// The `sub` claim.
        #[arg(long, default_value = "dev")]
        subject: String,
        #[arg(long)]
        config: Vec<PathBuf>,
    },
}

fn init_logs(settings: &Settings) {
    let filter = EnvFilter::try_new(&settings.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match settings.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// SIGTERM or SIGINT: both stop gracefully.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve {
        config: vec![],
        listen: None,
        data_dir: None,
        insecure_dev_key: false,
    }) {
        Command::Serve {
            config,
            listen,
            data_dir,
            insecure_dev_key,
        } => {
            let mut settings = Settings::load(&config)?;
            if let Some(listen) = listen {
                settings.server.listen = listen;
            }
            if let Some(dir) = data_dir {
                settings.storage.data_dir = dir;
            }
            if insecure_dev_key {
                settings.auth.insecure_dev_key = true;
            }
            init_logs(&settings);
            let listener = TcpListener::bind(settings.server.listen)
                .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
            actix_web::rt::System::new().block_on(async move {
                let app = Application::build(settings, listener).await?;
                let handle = app.handle();
                actix_web::rt::spawn(async move {
                    stop_signal().await;
                    tracing::info!("stop requested: finishing in-flight requests");
                    handle.stop(true).await;
                });
                app.run().await?;
                anyhow::Ok(())
            })
        }
        Command::Token {
            tenant,
            scope,
            ttl,
            subject,
            config,
        } => {
            let settings = Settings::load(&config)?;
            let token =
                challenge_server::auth::mint::mint(&settings.auth, &tenant, &scope, ttl, &subject)
                    .map_err(anyhow::Error::msg)?;
            println!("{token}");
            Ok(())
        }
    }
}
