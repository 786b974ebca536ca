//! The whole life of a token challenge through HTTP.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn a_challenge_is_created_answered_read_and_completed() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1", "details": {"message": "Approve login?",
            "fields": [{"label": "IP", "value": "203.0.113.9"}]}, "hidden_details": {"ip": "203.0.113.9"}}))
        .await;
    assert_eq!(created["state"], "issued");
    assert_eq!(created["type"], "token");
    assert_eq!(created["attempts_left"], 5);
    assert_eq!(created["details"]["message"], "Approve login?");
    assert_eq!(created["hidden_details"]["ip"], "203.0.113.9");
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("ch_"));
    let actor = &created["actors"][0];
    assert_eq!(actor["user_id"], "u-1");
    let answer_token = actor["answer_token"].as_str().unwrap();

    let answered = server.answer_anonymously(id, answer_token, true).await;
    assert_eq!(answered.status(), 200);
    let answered: Value = answered.json().await.unwrap();
    assert_eq!(answered["state"], "verified");
    assert_eq!(answered["answered_by"]["actor_id"], actor["id"]);
    assert!(answered["answered_at"].is_string());

    let read = server.state_of(id).await;
    assert_eq!(read["state"], "verified");
    assert_eq!(read["answered_by"]["user_id"], "u-1");
    assert!(read["actors"][0].get("answer_token").is_none());

    let completed = server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(completed.status(), 200);
    assert_eq!(server.state_of(id).await["state"], "completed");

    let again = server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/complete"),
            json!({}),
        )
        .await;
    assert_eq!(error_code(again).await, (409, "not_completable".into()));
}

#[tokio::test]
async fn allowed_false_declines_and_records_who_declined() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1", "actors": [{"user_id": "alice"}, {"user_id": "bob"}]}))
        .await;
    let id = created["id"].as_str().unwrap();
    let bob = &created["actors"][1];
    let response = server
        .answer_anonymously(id, bob["answer_token"].as_str().unwrap(), false)
        .await;
    assert_eq!(response.status(), 200);
    let state = server.state_of(id).await;
    assert_eq!(state["state"], "declined");
    assert_eq!(state["answered_by"]["user_id"], "bob");
    let alice = created["actors"][0]["answer_token"].as_str().unwrap();
    let late = server.answer_anonymously(id, alice, true).await;
    assert_eq!(error_code(late).await, (400, "answer_rejected".into()));
}

#[tokio::test]
async fn each_actor_has_its_own_token_and_the_first_answer_wins() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1",
            "actors": [{"user_id": "a"}, {"user_id": "b"}, {"user_id": "c"}]}))
        .await;
    let id = created["id"].as_str().unwrap();
    let tokens: Vec<&str> = (0..3)
        .map(|i| created["actors"][i]["answer_token"].as_str().unwrap())
        .collect();
    assert_eq!(
        tokens
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        3
    );
    assert_eq!(
        server
            .answer_anonymously(id, tokens[2], true)
            .await
            .status(),
        200
    );
    for t in &tokens {
        assert_eq!(
            error_code(server.answer_anonymously(id, t, true).await).await,
            (400, "answer_rejected".into())
        );
    }
    let bearer = server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/answer"),
            json!({"answer_token": tokens[0]}),
        )
        .await;
    assert_eq!(error_code(bearer).await, (409, "already_answered".into()));
    assert_eq!(server.state_of(id).await["answered_by"]["user_id"], "c");
}

#[tokio::test]
async fn a_bearer_caller_answers_for_a_named_actor() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1", "actors": [{"user_id": "a"}, {"user_id": "b"}]}))
        .await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/challenges/{id}/answer");
    let relay = server.token("acme", "challenge:answer");

    let unnamed = server
        .post(Some(&relay), &path, json!({"allowed": true}))
        .await;
    assert_eq!(error_code(unnamed).await, (400, "actor_required".into()));
    let stranger = server
        .post(
            Some(&relay),
            &path,
            json!({"actor_id": "act_AAAAAAAAAAAAAAAAAAAAAA"}),
        )
        .await;
    assert_eq!(error_code(stranger).await, (400, "unknown_actor".into()));

    let b = created["actors"][1]["id"].as_str().unwrap();
    let ok = server
        .post(Some(&relay), &path, json!({"actor_id": b}))
        .await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["state"], "verified");
    assert_eq!(body["answered_by"]["actor_id"], b);
}

#[tokio::test]
async fn wrong_tokens_from_a_bearer_caller_use_up_attempts_then_fail_the_challenge() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1", "max_attempts": 2}))
        .await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/challenges/{id}/answer");
    let wrong = json!({"answer_token": "x".repeat(43)});
    let first = server
        .post(Some(&server.admin()), &path, wrong.clone())
        .await;
    assert_eq!(first.status(), 400);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["error"]["code"], "wrong_answer");
    assert_eq!(body["error"]["attempts_left"], 1);
    let second = server
        .post(Some(&server.admin()), &path, wrong.clone())
        .await;
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"]["attempts_left"], 0);
    assert_eq!(server.state_of(id).await["state"], "failed");
    let token = created["actors"][0]["answer_token"].as_str().unwrap();
    let late = server
        .post(Some(&server.admin()), &path, json!({"answer_token": token}))
        .await;
    assert_eq!(error_code(late).await, (409, "failed".into()));
}

#[tokio::test]
async fn unknown_anonymous_tokens_cost_nothing_but_are_limited() {
    let server =
        TestServer::start_with(|s| s.limits.anonymous_failures_per_challenge_per_minute = 3).await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1", "max_attempts": 1}))
        .await;
    let id = created["id"].as_str().unwrap();
    for _ in 0..3 {
        let r = server.answer_anonymously(id, &"y".repeat(43), true).await;
        assert_eq!(error_code(r).await, (400, "answer_rejected".into()));
    }
    let limited = server.answer_anonymously(id, &"y".repeat(43), true).await;
    assert_eq!(limited.headers()["retry-after"], "60");
    assert_eq!(error_code(limited).await, (429, "rate_limited".into()));
    let state = server.state_of(id).await;
    assert_eq!(state["state"], "issued");
    assert_eq!(state["attempts_left"], 1);
    // The holder of the right token is not locked out by the stranger's failures.
    let token = created["actors"][0]["answer_token"].as_str().unwrap();
    assert_eq!(
        server.answer_anonymously(id, token, true).await.status(),
        200
    );
}

#[tokio::test]
async fn a_long_poll_is_woken_by_an_answer() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let token = created["actors"][0]["answer_token"]
        .as_str()
        .unwrap()
        .to_string();

    let poll = {
        let http = server.http.clone();
        let url = server.url(&format!("/api/v1/challenges/{id}?wait=30&state=issued"));
        let bearer = server.admin();
        tokio::spawn(async move {
            let response = http.get(url).bearer_auth(bearer).send().await.unwrap();
            (Instant::now(), response.json::<Value>().await.unwrap())
        })
    };
    eventually(Duration::from_secs(10), || async {
        let text = server
            .http
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .any(|l| l == "long_polls_waiting 1")
            .then_some(())
    })
    .await;
    assert!(
        !poll.is_finished(),
        "the long-poll answered before anything changed"
    );
    let answered_at = Instant::now();
    assert_eq!(
        server.answer_anonymously(&id, &token, true).await.status(),
        200
    );
    let (woken_at, body) = poll.await.unwrap();
    assert_eq!(body["state"], "verified");
    let delay = woken_at.saturating_duration_since(answered_at);
    assert!(
        delay < Duration::from_secs(1),
        "long-poll woke after {delay:?}"
    );
}

#[tokio::test]
async fn a_long_poll_answers_at_once_when_the_state_already_differs_and_times_out_otherwise() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let bearer = server.admin();
    let stale = server
        .http
        .get(server.url(&format!("/api/v1/challenges/{id}?wait=30&state=verified")))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.json::<Value>().await.unwrap()["state"], "issued");
    let quiet = server
        .http
        .get(server.url(&format!("/api/v1/challenges/{id}?wait=1")))
        .bearer_auth(&bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(quiet.status(), 200);
    assert_eq!(quiet.json::<Value>().await.unwrap()["state"], "issued");
}

#[tokio::test]
async fn cancel_ends_an_open_challenge_and_only_an_open_one() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let url = server.url(&format!("/api/v1/challenges/{id}"));
    let cancelled = server
        .http
        .delete(&url)
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), 200);
    assert_eq!(
        cancelled.json::<Value>().await.unwrap()["state"],
        "cancelled"
    );
    let again = server
        .http
        .delete(&url)
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(again).await, (409, "not_cancellable".into()));
    let token = created["actors"][0]["answer_token"].as_str().unwrap();
    let late = server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/answer"),
            json!({"answer_token": token}),
        )
        .await;
    assert_eq!(error_code(late).await, (409, "cancelled".into()));
}

#[tokio::test]
async fn resend_of_a_token_challenge_is_not_deliverable() {
    let server = TestServer::start().await;
    let created = server
        .create_ok(json!({"type": "token", "user_id": "u-1"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let r = server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(error_code(r).await, (409, "not_deliverable".into()));
}

#[tokio::test]
async fn the_same_idempotency_key_and_request_return_the_same_challenge_without_secrets() {
    let server = TestServer::start().await;
    let body = json!({"type": "token", "user_id": "u-1", "ttl_seconds": 60});
    let first = server
        .http
        .post(server.url("/api/v1/challenges"))
        .bearer_auth(server.admin())
        .header("Idempotency-Key", "req-42")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let replay = server
        .http
        .post(server.url("/api/v1/challenges"))
        .bearer_auth(server.admin())
        .header("Idempotency-Key", "req-42")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["id"], first["id"]);
    assert!(replay["actors"][0].get("answer_token").is_none());

    let in_body = server
        .create(&server.admin(), json!({"type": "token", "user_id": "u-1", "ttl_seconds": 60, "idempotency_key": "req-42"}))
        .await;
    assert_eq!(in_body.status(), 200);

    let different = server
        .create(
            &server.admin(),
            json!({"type": "token", "user_id": "u-2", "idempotency_key": "req-42"}),
        )
        .await;
    assert_eq!(
        error_code(different).await,
        (409, "idempotency_conflict".into())
    );

    let other_tenant = server
        .create(&server.token("globex", ALL_SCOPES), json!({"type": "token", "user_id": "u-1", "ttl_seconds": 60, "idempotency_key": "req-42"}))
        .await;
    assert_eq!(other_tenant.status(), 201, "keys are per tenant");
}

#[tokio::test]
async fn list_filters_and_pages_through_a_tenants_challenges() {
    let server = TestServer::start().await;
    let mut mine = std::collections::HashSet::new();
    for i in 0..7 {
        let user = if i % 2 == 0 { "even" } else { "odd" };
        let c = server
            .create_ok(json!({"type": "token", "user_id": user}))
            .await;
        mine.insert(c["id"].as_str().unwrap().to_string());
        if i == 0 {
            let id = c["id"].as_str().unwrap();
            server
                .answer_anonymously(id, c["actors"][0]["answer_token"].as_str().unwrap(), true)
                .await;
        }
    }
    server
        .create(
            &server.token("globex", ALL_SCOPES),
            json!({"type": "token", "user_id": "even"}),
        )
        .await;

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = server.url("/api/v1/challenges?page_size=3");
        if let Some(t) = &token {
            url.push_str(&format!("&page_token={t}"));
        }
        let page: Value = server
            .http
            .get(url)
            .bearer_auth(server.admin())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["challenges"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|c| c["id"].as_str().unwrap().to_string()));
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(
        seen.iter()
            .cloned()
            .collect::<std::collections::HashSet<_>>(),
        mine
    );

    let list = |query: &'static str| {
        let http = server.http.clone();
        let url = server.url(&format!("/api/v1/challenges?{query}"));
        let bearer = server.admin();
        async move {
            http.get(url)
                .bearer_auth(bearer)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        list("user_id=even").await["challenges"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        list("user_id=even&state=verified").await["challenges"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        list("state=issued&type=token").await["challenges"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
}

#[tokio::test]
async fn a_list_examines_a_bounded_number_of_challenges_and_resumes_from_its_token() {
    let server = TestServer::start_with(|s| s.limits.list_scan_budget = 10).await;
    let rare = server
        .create_ok(json!({"type": "token", "user_id": "rare"}))
        .await;
    for _ in 0..24 {
        server
            .create_ok(json!({"type": "token", "user_id": "common"}))
            .await;
    }
    let mut found = Vec::new();
    let mut pages = 0;
    let mut token: Option<String> = None;
    loop {
        let mut url = server.url("/api/v1/challenges?user_id=rare&page_size=50");
        if let Some(t) = &token {
            url.push_str(&format!("&page_token={t}"));
        }
        let response = server
            .http
            .get(url)
            .bearer_auth(server.admin())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        pages += 1;
        let items = page["challenges"].as_array().unwrap();
        found.extend(items.iter().map(|c| c["id"].as_str().unwrap().to_string()));
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(found, vec![rare["id"].as_str().unwrap().to_string()]);
    assert_eq!(pages, 3, "25 challenges, 10 examined per page");
}

/// One anonymous answer to a challenge that does not exist, with the given forwarding
/// headers; its status.
async fn anonymous_answer_from(server: &TestServer, headers: &[(&str, &str)]) -> u16 {
    let mut request = server
        .http
        .post(server.url("/api/v1/challenges/ch_AAAAAAAAAAAAAAAAAAAAAA/answer"))
        .json(&json!({"answer_token": "y".repeat(43)}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_anonymous_allowance() {
    let server = TestServer::start_with(|s| {
        s.limits.anonymous_answers_per_ip_per_minute = 2;
        s.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let alice = [("X-Forwarded-For", "203.0.113.5")];
    assert_eq!(anonymous_answer_from(&server, &alice).await, 400);
    assert_eq!(anonymous_answer_from(&server, &alice).await, 400);
    assert_eq!(anonymous_answer_from(&server, &alice).await, 429);
    // Another client behind the same proxy is not limited by the first.
    let bob = [("Forwarded", "for=\"[2001:db8::1]:4711\";proto=https")];
    assert_eq!(anonymous_answer_from(&server, &bob).await, 400);
    // IPv6 counts per /64: a neighbour in the same /64 shares bob's allowance.
    let neighbour = [("X-Forwarded-For", "2001:db8::2")];
    assert_eq!(anonymous_answer_from(&server, &neighbour).await, 400);
    assert_eq!(anonymous_answer_from(&server, &bob).await, 429);
    let elsewhere = [("X-Forwarded-For", "2001:db8:0:1::1")];
    assert_eq!(anonymous_answer_from(&server, &elsewhere).await, 400);
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let server = TestServer::start_with(|s| s.limits.anonymous_answers_per_ip_per_minute = 2).await;
    for client in ["203.0.113.5", "203.0.113.6"] {
        let headers = [("X-Forwarded-For", client)];
        assert_eq!(anonymous_answer_from(&server, &headers).await, 400);
    }
    // Both counted as the peer itself, whatever the header claimed.
    let third = [("X-Forwarded-For", "203.0.113.7")];
    assert_eq!(anonymous_answer_from(&server, &third).await, 429);
}
