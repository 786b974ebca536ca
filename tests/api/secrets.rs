//! Answer tokens are shown once: never again in responses, never in logs, never in the
//! files of the data directory.

use challenge_server::config::Settings;
use serde_json::json;

use crate::helpers::*;

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn answer_tokens_appear_only_in_the_create_response() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), logs.path(), &[]).await;
    let http = reqwest::Client::new();
    let admin = token(&Settings::development(), "acme", ALL_SCOPES);
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for i in 0..5 {
        let created: serde_json::Value = http
            .post(server.url("/api/v1/challenges"))
            .bearer_auth(&admin)
            .json(&json!({"type": "token", "user_id": format!("u-{i}"), "actors": [{"user_id": "a"}, {"user_id": "b"}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(created["id"].as_str().unwrap().to_string());
        for actor in created["actors"].as_array().unwrap() {
            tokens.push(actor["answer_token"].as_str().unwrap().to_string());
        }
    }
    // Use some tokens (right, and presented to the wrong challenge), so they pass through
    // every code path that could log them.
    for (i, id) in ids.iter().enumerate() {
        let r = http
            .post(server.url(&format!("/api/v1/challenges/{id}/answer")))
            .json(&json!({"answer_token": tokens[i * 2]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let wrong = http
            .post(server.url(&format!("/api/v1/challenges/{id}/answer")))
            .bearer_auth(&admin)
            .json(&json!({"answer_token": tokens[(i * 2 + 3) % tokens.len()]}))
            .send()
            .await
            .unwrap();
        assert!(wrong.status().is_client_error());
    }
    let mut later = String::new();
    for id in &ids {
        later.push_str(
            &http
                .get(server.url(&format!("/api/v1/challenges/{id}")))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
        later.push_str(
            &http
                .get(server.url(&format!("/api/v1/challenges/{id}?wait=1")))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    later.push_str(
        &http
            .get(server.url("/api/v1/challenges?page_size=100"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    later.push_str(
        &http
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    server.kill();

    let log = std::fs::read_to_string(&server.stderr_log).unwrap();
    assert!(log.contains("request"), "debug request logs were written");
    let files = files_under(data.path());
    assert!(!files.is_empty());
    let contents: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    for t in &tokens {
        assert!(
            !later.contains(t.as_str()),
            "a token appeared in a later response"
        );
        assert!(!log.contains(t.as_str()), "a token appeared in the log");
        for (file, bytes) in files.iter().zip(&contents) {
            assert!(
                !bytes.windows(t.len()).any(|w| w == t.as_bytes()),
                "a token appeared in {}",
                file.display()
            );
        }
    }
    assert!(
        !log.contains(&admin),
        "the bearer token appeared in the log"
    );
}
