//! The Twilio Verify face, judged by Twilio's own Python SDK: `tests/sdk/twilio_verify.py`
//! runs against a server with two accounts in two tenants, in the virtualenv `.ci/test`
//! makes (`tests/sdk/.venv`).

use std::process::Command;

use challenge_server::config::{Secret, TwilioAccount};

use crate::helpers::TestServer;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const OTHER: &str = "ACfedcba9876543210fedcba9876543210";

fn python() -> std::path::PathBuf {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/.venv/bin/python");
    assert!(
        venv.exists(),
        "run .ci/test once (or: python3 -m venv tests/sdk/.venv && tests/sdk/.venv/bin/pip install -r tests/sdk/requirements.txt)"
    );
    venv
}

#[actix_rt::test]
async fn the_twilio_sdk_drives_services_entities_factors_and_challenges() {
    let server = TestServer::start_with(|s| {
        s.compat.twilio.accounts = vec![
            TwilioAccount {
                account_sid: ACCOUNT.into(),
                auth_token: Secret::new("token-of-acme"),
                auth_token_sha256: String::new(),
                tenant: "acme".into(),
            },
            TwilioAccount {
                account_sid: OTHER.into(),
                auth_token: Secret::new(""),
                auth_token_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                    b"token-of-other",
                )),
                tenant: "other".into(),
            },
        ];
        s.actions.allow_private = true;
    })
    .await;
    let native = server.token("acme", "challenge:get challenge:policy:post");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/twilio_verify.py");
    let base = server.url("");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script)
            .env("BASE", base)
            .env("ACCOUNT_SID", ACCOUNT)
            .env("AUTH_TOKEN", "token-of-acme")
            .env("OTHER_SID", OTHER)
            .env("OTHER_TOKEN", "token-of-other")
            .env("NATIVE_TOKEN", native)
            .output()
            .expect("run python")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("twilio sdk: ok"),
        "the SDK script failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}
