//! Safe defaults: the public development key serves loopback only, production keys come
//! with an issuer and an audience, and a token's lifetime can be bounded.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use challenge_server::config::DEV_SECRET;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::*;

const EC_PRIVATE: &str = include_str!("../fixtures/ec_private.pem");
const EC_PUBLIC: &str = include_str!("../fixtures/ec_public.pem");

/// The binary serving in the background; killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(args: &[&str], env: &[(&str, &str)], log: &std::path::Path) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_challenge-server"));
    command
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    for (k, v) in env {
        command.env(k, v);
    }
    Running(command.spawn().expect("start the server binary"))
}

const EXIT_LIMIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_development_key_refuses_to_serve_all_interfaces() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let (code, stderr) = run_binary_to_exit(
        &["serve", "--listen", "0.0.0.0:0", "--data-dir", dir],
        &[],
        EXIT_LIMIT,
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("refusing to listen on 0.0.0.0"), "{stderr}");
    assert!(stderr.contains("[[auth.keys]]"), "{stderr}");
    assert!(stderr.contains("--insecure-dev-key"), "{stderr}");
    // The same through the environment, as the Docker image sets it, and on IPv6.
    let (code, stderr) = run_binary_to_exit(
        &["serve", "--data-dir", dir],
        &[("CHALLENGE_SERVER__SERVER__LISTEN", "[::]:0")],
        EXIT_LIMIT,
    )
    .await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("refusing to listen on ::"), "{stderr}");
    // Nothing was written: the refusal comes before the store is opened.
    assert!(!data.path().join("db").exists());
}

#[tokio::test]
async fn the_insecure_dev_key_flag_or_key_serves_all_interfaces() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    for env in [
        vec![],
        vec![("CHALLENGE_SERVER__AUTH__INSECURE_DEV_KEY", "true")],
    ] {
        let port = free_port();
        let listen = format!("0.0.0.0:{port}");
        let mut args = vec!["serve", "--listen", &listen, "--data-dir", dir];
        if env.is_empty() {
            args.push("--insecure-dev-key");
        }
        let log = data.path().join(format!("server-{port}.log"));
        let running = serve(&args, &env, &log);
        wait_ready(&format!("http://127.0.0.1:{port}")).await;
        let stderr = std::fs::read_to_string(&log).unwrap();
        assert!(
            stderr.contains("PUBLIC DEVELOPMENT SIGNING KEY"),
            "{stderr}"
        );
        drop(running);
    }
}

#[tokio::test]
async fn loopback_serves_the_development_key_without_the_flag() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), logs.path(), &[]).await;
    let r = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(r.status(), 200);
}

fn site_config(dir: &std::path::Path, auth: &str) -> String {
    let public = dir.join("idp.pub.pem");
    std::fs::write(&public, EC_PUBLIC).unwrap();
    let path = dir.join("site.toml");
    std::fs::write(
        &path,
        format!(
            "[auth]\nalgorithms = [\"ES256\"]\n{auth}\n\n[[auth.keys]]\nkid = \"idp\"\n\
             algorithm = \"ES256\"\npublic_key_file = {:?}\n",
            public.to_str().unwrap()
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test]
async fn production_keys_without_issuer_or_audience_refuse_to_start() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    for (auth, key) in [
        ("audience = \"challenge-server\"", "auth.issuer"),
        ("issuer = \"https://idp.example\"", "auth.audience"),
    ] {
        let config = site_config(data.path(), auth);
        let (code, stderr) = run_binary_to_exit(
            &["serve", "--config", &config, "--data-dir", dir],
            &[],
            EXIT_LIMIT,
        )
        .await;
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(&format!("`{key}`")), "{stderr}");
        assert!(
            stderr.contains("auth.require_issuer_and_audience = false"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn production_keys_with_issuer_and_audience_serve_all_interfaces() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let config = site_config(
        data.path(),
        "issuer = \"https://idp.example\"\naudience = \"challenge-server\"",
    );
    let log = data.path().join("server.log");
    let _running = serve(
        &[
            "serve",
            "--config",
            &config,
            "--listen",
            &listen,
            "--data-dir",
            dir,
        ],
        &[],
        &log,
    );
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base).await;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("idp".into());
    let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
    let now = now();
    let mut claims = json!({"tenant": "acme", "scope": "challenge:get", "exp": now + 60,
        "iss": "https://idp.example", "aud": "challenge-server"});
    let http = reqwest::Client::new();
    let list = |token: String| {
        http.get(format!("{base}/api/v1/challenges"))
            .bearer_auth(token)
            .send()
    };
    let good = encode(&header, &claims, &key).unwrap();
    assert_eq!(list(good).await.unwrap().status(), 200);
    claims["aud"] = json!("another-service");
    let other = encode(&header, &claims, &key).unwrap();
    assert_eq!(
        error_code(list(other).await.unwrap()).await,
        (401, "unauthorized".into())
    );
    // The development key is gone with the site's [[auth.keys]].
    let dev = mint_hs256(
        &json!({"tenant": "acme", "scope": "challenge:get", "exp": now + 60,
        "iss": "https://idp.example", "aud": "challenge-server"}),
    );
    assert_eq!(
        error_code(list(dev).await.unwrap()).await,
        (401, "unauthorized".into())
    );
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(!stderr.contains("DEVELOPMENT SIGNING KEY"), "{stderr}");
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn mint_hs256(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("dev".into());
    encode(
        &header,
        claims,
        &EncodingKey::from_secret(DEV_SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn a_token_living_longer_than_the_maximum_is_refused_with_its_code() {
    let server = TestServer::start_with(|s| s.auth.max_token_lifetime_seconds = 600).await;
    let now = now();
    let claims = |iat: Option<u64>, exp: u64| {
        let mut c = json!({"tenant": "acme", "scope": ALL_SCOPES, "exp": exp});
        if let Some(iat) = iat {
            c["iat"] = json!(iat);
        }
        mint_hs256(&c)
    };
    let body = json!({"type": "token", "user_id": "u-1"});
    for (token, why) in [
        (claims(Some(now), now + 601), "one second too long"),
        (claims(None, now + 60), "no iat"),
        (claims(Some(now - 3000), now + 60), "issued long ago"),
    ] {
        let r = server.create(&token, body.clone()).await;
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\"",
            "{why}"
        );
        let (status, code) = error_code(r).await;
        assert_eq!(
            (status, code.as_str()),
            (401, "token_lifetime_exceeded"),
            "{why}"
        );
    }
    // Nothing was created by the refused requests.
    let r = server
        .http
        .get(server.url("/api/v1/challenges"))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap();
    let listed: Value = r.json().await.unwrap();
    assert_eq!(listed["challenges"], json!([]));
    // Exactly the maximum is accepted.
    let r = server.create(&claims(Some(now), now + 600), body).await;
    assert_eq!(r.status(), 201);
}
