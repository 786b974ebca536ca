//! What anonymous callers see: the holder of an answer token learns the outcome of its
//! own answer, never what the challenge carries for the calling service.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::sinks::{always, HttpSink};

/// Secrets of the calling service a challenge carries, each a distinct marker.
const HIDDEN: &str = "hidden-marker-5f1c";
const OTHER_USER: &str = "other-user-9a2e";
const SCOPE: &str = "orders:approve-marker";
const QUERY: &str = "query-marker-77b0";

async fn start() -> (TestServer, HttpSink, Value) {
    let server = TestServer::start_with(|s| {
        s.actions.allow_private = true;
        s.actions.allowed_scopes = vec![SCOPE.into()];
    })
    .await;
    let receiver = HttpSink::scripted(always(200));
    let created = server
        .create_ok(
            json!({"type": "one_time_use_action", "user_id": "requester",
            "actors": [{"user_id": "answerer"}, {"user_id": OTHER_USER}],
            "details": {"message": "Approve order 7?"},
            "hidden_details": {"note": HIDDEN},
            "callback_url": receiver.url("/hook"),
            "actions": {"approved": [{"method": "POST",
                                      "uri": receiver.url(&format!("/orders/7?k={QUERY}")),
                                      "scopes": [SCOPE]}],
                        "declined": []}}),
        )
        .await;
    (server, receiver, created)
}

fn assert_discloses_nothing(text: &str, receiver: &HttpSink) {
    for secret in [
        HIDDEN,
        OTHER_USER,
        SCOPE,
        QUERY,
        "answerer",
        "requester",
        &receiver.url("/hook"),
    ] {
        assert!(!text.contains(secret), "{secret:?} disclosed in {text}");
    }
}

#[tokio::test]
async fn an_anonymous_answer_gets_only_id_state_answered_at_and_its_own_actor() {
    let (server, receiver, created) = start().await;
    let id = created["id"].as_str().unwrap();
    let actor = &created["actors"][0];
    let response = server
        .answer_anonymously(id, actor["answer_token"].as_str().unwrap(), true)
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert_discloses_nothing(&text, &receiver);
    let body: Value = serde_json::from_str(&text).unwrap();
    let mut keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["answered_at", "answered_by", "id", "state"]);
    assert_eq!(body["id"], created["id"]);
    assert_eq!(body["state"], "verified");
    assert!(body["answered_at"].is_string());
    assert_eq!(body["answered_by"], json!({"actor_id": actor["id"]}));
    // The calling service still reads everything.
    let read = server.state_of(id).await;
    assert_eq!(read["hidden_details"]["note"], HIDDEN);
    assert_eq!(read["answered_by"]["user_id"], "answerer");
}

#[tokio::test]
async fn a_relayed_answer_with_a_bearer_token_gets_the_whole_challenge() {
    let (server, _receiver, created) = start().await;
    let id = created["id"].as_str().unwrap();
    let actor_id = created["actors"][1]["id"].as_str().unwrap();
    let response = server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/answer"),
            json!({"actor_id": actor_id, "allowed": true}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["hidden_details"]["note"], HIDDEN);
    assert_eq!(body["answered_by"]["user_id"], OTHER_USER);
}

#[tokio::test]
async fn the_answer_page_shows_neither_hidden_details_nor_scopes_nor_other_actors() {
    let (server, receiver, created) = start().await;
    let id = created["id"].as_str().unwrap();
    let token = created["actors"][0]["answer_token"].as_str().unwrap();
    let page = server
        .http
        .get(server.url(&format!("/c/{id}?t={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Approve order 7?"), "{html}");
    assert_discloses_nothing(&html, &receiver);
    let answered = server
        .http
        .post(server.url(&format!("/c/{id}")))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("t={token}&allowed=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), 200);
    let html = answered.text().await.unwrap();
    assert!(html.contains("Approved"), "{html}");
    assert_discloses_nothing(&html, &receiver);
    assert_eq!(server.state_of(id).await["state"], "verified");
}

#[tokio::test]
async fn the_webhook_secret_needs_its_own_scope() {
    let server = TestServer::start().await;
    let get = |scopes: &str| {
        server
            .http
            .get(server.url("/api/v1/webhooks/secret"))
            .bearer_auth(server.token("acme", scopes))
            .send()
    };
    let everything_else = format!(
        "{ALL_SCOPES} challenge:configuration:get challenge:configuration:put \
         challenge:policy:get challenge:policy:post challenge:policy:put challenge:policy:delete"
    );
    let refused = get(&everything_else).await.unwrap();
    assert!(refused.headers().get("cache-control").is_none());
    assert_eq!(error_code(refused).await, (403, "forbidden".into()));
    let granted = get("challenge:webhook:get").await.unwrap();
    assert_eq!(granted.status(), 200);
    let body: Value = granted.json().await.unwrap();
    assert!(body["secret"].as_str().is_some_and(|s| !s.is_empty()));
}
