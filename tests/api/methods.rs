//! One challenge, several methods: created with `methods`, each delivered method sent
//! only when started (through a real SMTP server and a local SMS gateway), answered by
//! naming its method, a wrong answer costing only that method's attempt, two methods
//! answered at once with exactly one winner, the winner surviving kill -9, and the bad
//! inputs refused with nothing created.

use std::time::Duration;

use challenge_server::config::{Settings, SmsFormat, SmtpTls};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::sinks::{HttpSink, SmtpSink};

fn with_transports(s: &mut Settings, smtp_port: u16, gateway: &str) {
    s.email.smtp_host = "127.0.0.1".into();
    s.email.smtp_port = smtp_port;
    s.email.tls = SmtpTls::None;
    s.sms.gateway_url = gateway.to_string();
    s.sms.format = SmsFormat::Json;
    s.delivery.backoff_ms = 10;
}

/// The first run of six digits in `text`.
fn code_in(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars
        .windows(6)
        .find(|w| w.iter().all(char::is_ascii_digit))
        .map(|w| w.iter().collect())
        .unwrap_or_else(|| panic!("no code in {text:?}"))
}

fn method<'a>(challenge: &'a Value, kind: &str) -> &'a Value {
    challenge["methods"]
        .as_array()
        .expect("the challenge lists its methods")
        .iter()
        .find(|m| m["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} method in {challenge}"))
}

fn method_id(challenge: &Value, kind: &str) -> String {
    method(challenge, kind)["id"].as_str().unwrap().to_string()
}

async fn start(server: &TestServer, id: &str, method: &str) -> reqwest::Response {
    server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/methods/{method}/start"),
            json!({}),
        )
        .await
}

async fn answer(server: &TestServer, id: &str, body: Value) -> reqwest::Response {
    server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/answer"),
            body,
        )
        .await
}

/// The status and, for a refusal, the error code.
async fn outcome(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or_default();
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, code)
}

/// The code the gateway was asked to send for challenge `id`.
async fn sms_code(gateway: &HttpSink, id: &str) -> String {
    eventually(Duration::from_secs(20), || async {
        gateway.requests().iter().find_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).ok()?;
            (body["challenge_id"] == id).then(|| code_in(body["body"].as_str().unwrap()))
        })
    })
    .await
}

const THREE_METHODS: fn() -> Value = || {
    json!({"user_id": "u-1", "max_attempts": 2, "methods": [
        {"type": "sms_otp", "recipient": {"phone": "+15551234567"}},
        {"type": "email_otp", "recipient": {"email": "alice@example.com"}},
        {"type": "token"},
    ]})
};

#[tokio::test]
async fn a_challenge_with_methods_lists_them_without_secrets_and_starting_one_sends_only_its_code()
{
    let sink = SmtpSink::start().await;
    let gateway = HttpSink::start();
    let url = gateway.url("/send");
    let server = TestServer::start_with(|s| with_transports(s, sink.port, &url)).await;
    let created = server.create_ok(THREE_METHODS()).await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["state"], "issued");
    assert_eq!(created["type"], "sms_otp", "the first method's type");
    let sms = method(&created, "sms_otp");
    assert_eq!(sms["state"], "open");
    assert_eq!(sms["started"], false);
    assert_eq!(sms["attempts_left"], 2);
    assert_eq!(sms["delivery"]["to"], "+1••••••4567");
    assert_eq!(sms["delivery"]["status"], "not_sent");
    assert!(sms.get("answer_token").is_none());
    let email = method(&created, "email_otp");
    assert_eq!(email["delivery"]["to"], "a•••@example.com");
    assert_eq!(email["started"], false);
    let token = method(&created, "token");
    assert_eq!(token["started"], true, "a token method needs no start");
    let answer_token = token["answer_token"].as_str().unwrap();
    assert!(created.get("delivery").is_none());

    // A read never shows the token again.
    let read = server.state_of(id).await;
    assert!(!read.to_string().contains(answer_token));
    assert_eq!(read["methods"].as_array().unwrap().len(), 3);

    let r = start(&server, id, &method_id(&created, "email_otp")).await;
    assert_eq!(r.status(), 202);
    let started: Value = r.json().await.unwrap();
    assert_eq!(method(&started, "email_otp")["started"], true);
    assert_eq!(method(&started, "sms_otp")["started"], false);
    let mail = sink.wait_for(1).await.remove(0);
    assert_eq!(mail.rcpt_tos, vec!["alice@example.com".to_string()]);
    let code = code_in(mail.part("text/plain").unwrap());
    assert!(!started.to_string().contains(&code));
    eventually(Duration::from_secs(20), || async {
        let c = server.state_of(id).await;
        (method(&c, "email_otp")["delivery"]["status"] == "sent").then_some(())
    })
    .await;
    assert!(gateway.requests().is_empty(), "no SMS until it is started");
    assert_eq!(sink.messages().len(), 1);

    // The email code answers the email method, and only it.
    let r = answer(
        &server,
        id,
        json!({"code": code, "method_id": method_id(&created, "sms_otp")}),
    )
    .await;
    assert_eq!(error_code(r).await, (409, "method_not_started".to_string()));
    let r = answer(
        &server,
        id,
        json!({"code": code, "method_id": method_id(&created, "email_otp")}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let verified: Value = r.json().await.unwrap();
    assert_eq!(verified["state"], "verified");
    assert_eq!(method(&verified, "email_otp")["state"], "verified");
    assert_eq!(method(&verified, "sms_otp")["state"], "closed");
    assert_eq!(method(&verified, "token")["state"], "closed");

    // The others closed with it: neither answers nor starts.
    let r = answer(
        &server,
        id,
        json!({"answer_token": answer_token, "method_id": method_id(&created, "token")}),
    )
    .await;
    assert_eq!(error_code(r).await, (409, "already_answered".to_string()));
    let r = start(&server, id, &method_id(&created, "sms_otp")).await;
    assert_eq!(error_code(r).await, (409, "not_startable".to_string()));
    assert!(gateway.requests().is_empty());
}

#[tokio::test]
async fn a_totp_method_takes_a_code_of_its_factor_once_per_step_and_wins() {
    let server = TestServer::start().await;
    let (enrolled, authenticator, step) =
        crate::factors::verified_factor(&server, "u-1", json!({"type": "totp"})).await;
    let factor = enrolled["id"].as_str().unwrap();
    let created = server
        .create_ok(json!({"user_id": "u-1", "methods": [
            {"type": "token"},
            {"type": "totp", "factor_id": factor},
        ]}))
        .await;
    let id = created["id"].as_str().unwrap();
    let totp = method_id(&created, "totp");
    assert_eq!(method(&created, "totp")["factor_id"], factor);
    assert_eq!(method(&created, "totp")["started"], true);
    assert!(method(&created, "totp").get("answer_token").is_none());
    // The step the enrollment's verification used is spent: a wrong code to this method.
    let r = answer(
        &server,
        id,
        json!({"code": authenticator.code(step), "method_id": totp}),
    )
    .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "wrong_answer");
    assert_eq!(body["error"]["attempts_left"], 4);
    let c = server.state_of(id).await;
    assert_eq!(method(&c, "token")["attempts_left"], 5);
    let r = answer(
        &server,
        id,
        json!({"code": authenticator.code(step + 1), "method_id": totp}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["state"], "verified");
    assert_eq!(method(&c, "totp")["state"], "verified");
    assert_eq!(method(&c, "token")["state"], "closed");
}

#[tokio::test]
async fn the_webhook_of_a_win_names_the_winning_method() {
    let hook = HttpSink::start();
    let server = TestServer::start_with(|s| s.actions.allow_private = true).await;
    let created = server
        .create_ok(
            json!({"user_id": "u-1", "callback_url": hook.url("/hooks"), "methods": [
                {"type": "token"},
            ]}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let token = method_id(&created, "token");
    let r = answer(
        &server,
        id,
        json!({"answer_token": method(&created, "token")["answer_token"], "method_id": token}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let sent = hook.wait_for(1).await.remove(0);
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["state"], "verified");
    assert_eq!(body["method"], json!({"id": token, "type": "token"}));
    let answer_token = method(&created, "token")["answer_token"].as_str().unwrap();
    assert!(!String::from_utf8_lossy(&sent.body).contains(answer_token));
}

#[tokio::test]
async fn a_push_method_reaches_its_device_only_once_started_and_its_signed_approval_wins() {
    let gateway = HttpSink::start();
    let url = gateway.url("/send");
    let server = TestServer::start_with(|s| {
        s.sms.gateway_url = url.clone();
        s.sms.format = SmsFormat::Json;
    })
    .await;
    let device = crate::push::enrolled_device(&server, "u-1", "none").await;
    let created = server
        .create_ok(
            json!({"user_id": "u-1", "details": {"message": "Sign in?"}, "methods": [
                {"type": "sms_otp", "recipient": {"phone": "+15551234567"}},
                {"type": "push", "factor_id": device.factor_id},
            ]}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let push = method_id(&created, "push");
    assert_eq!(method(&created, "push")["started"], false);
    assert_eq!(method(&created, "push")["factor_id"], device.factor_id);
    assert!(crate::push::open_challenges(&server, &device)
        .await
        .is_empty());
    // Not started: the device cannot answer it, whatever it signs.
    let token = device.jwt(60);
    let r = crate::push::device_answer(&server, &token, id, "approved", "c2ln").await;
    assert_eq!(
        error_code(r).await,
        (404, "challenge_not_found".to_string())
    );

    let r = start(&server, id, &push).await;
    assert_eq!(r.status(), 202);
    let started: Value = r.json().await.unwrap();
    assert_eq!(method(&started, "push")["started"], true);
    assert_eq!(
        start(&server, id, &push).await.status(),
        202,
        "again: nothing new"
    );
    let open = crate::push::open_challenges(&server, &device).await;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["id"], id);
    let payload = open[0]["signing_payload"].as_str().unwrap();
    assert!(payload.contains(&device.factor_id));
    let forged = device.sign(&format!("{payload}.denied"));
    let r = crate::push::device_answer(&server, &token, id, "approved", &forged).await;
    assert_eq!(error_code(r).await, (400, "invalid_signature".to_string()));
    let signature = device.sign(&format!("{payload}.approved"));
    let r = crate::push::device_answer(&server, &token, id, "approved", &signature).await;
    assert_eq!(r.status(), 200);
    let c = server.state_of(id).await;
    assert_eq!(c["state"], "verified");
    assert_eq!(method(&c, "push")["state"], "verified");
    assert_eq!(method(&c, "sms_otp")["state"], "closed");
    assert!(
        gateway.requests().is_empty(),
        "the SMS method was never started"
    );
    // A push method is the device's to answer; a relayed answer is refused.
    let other = server
        .create_ok(
            json!({"user_id": "u-1", "details": {"message": "Again?"}, "methods": [
                {"type": "push", "factor_id": device.factor_id},
            ]}),
        )
        .await;
    let other_id = other["id"].as_str().unwrap();
    let other_push = method_id(&other, "push");
    assert_eq!(start(&server, other_id, &other_push).await.status(), 202);
    let r = answer(&server, other_id, json!({"method_id": other_push})).await;
    assert_eq!(
        error_code(r).await,
        (400, "device_answer_required".to_string())
    );
    let r = server
        .create(
            &server.admin(),
            json!({"user_id": "u-1", "methods": [{"type": "push", "factor_id": device.factor_id}]}),
        )
        .await;
    assert_eq!(
        outcome(r).await.1,
        "invalid_field",
        "push asks for details.message"
    );
}

#[tokio::test]
async fn a_push_methods_start_announces_it_to_the_push_gateway_once() {
    let push_gateway = HttpSink::start();
    let url = push_gateway.url("/push");
    let server = TestServer::start_with(|s| {
        s.actions.allow_private = true;
        s.push.gateway_url = url;
    })
    .await;
    let device = crate::push::enrolled_device(&server, "u-1", "webhook").await;
    let created = server
        .create_ok(
            json!({"user_id": "u-1", "details": {"message": "Sign in?"}, "methods": [
                {"type": "token"},
                {"type": "push", "factor_id": device.factor_id},
            ]}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let push = method_id(&created, "push");
    // Nothing is announced at create: the token method may be all the user needs.
    let token = method_id(&created, "token");
    let r = start(&server, id, &token).await;
    assert_eq!(error_code(r).await, (409, "not_deliverable".to_string()));
    assert!(push_gateway.requests().is_empty());

    assert_eq!(start(&server, id, &push).await.status(), 202);
    let notified = push_gateway.wait_for(1).await.remove(0);
    let body: Value = serde_json::from_slice(&notified.body).unwrap();
    assert_eq!(body["event"], "push.challenge.created");
    assert_eq!(body["id"], id);
    assert_eq!(body["factor_id"], device.factor_id);
    let open = crate::push::open_challenges(&server, &device).await;
    assert_eq!(body["signing_payload"], open[0]["signing_payload"]);
    // Starting it again announces nothing more.
    assert_eq!(start(&server, id, &push).await.status(), 202);
    let again = server
        .create_ok(
            json!({"user_id": "u-1", "details": {"message": "Later"}, "methods": [
                {"type": "push", "factor_id": device.factor_id},
            ]}),
        )
        .await;
    let again_id = again["id"].as_str().unwrap();
    let again_push = method_id(&again, "push");
    assert_eq!(start(&server, again_id, &again_push).await.status(), 202);
    let requests = push_gateway.wait_for(2).await;
    assert_eq!(requests.len(), 2, "one announcement per started method");
    let second: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(second["id"], again_id);
}

#[tokio::test]
async fn a_create_with_methods_replayed_by_its_idempotency_key_is_the_same_challenge() {
    let server = TestServer::start().await;
    let body =
        json!({"user_id": "u-1", "idempotency_key": "login-7", "methods": [{"type": "token"}]});
    let first = server.create_ok(body.clone()).await;
    let r = server.create(&server.admin(), body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let replay: Value = r.json().await.unwrap();
    assert_eq!(replay["id"], first["id"]);
    assert_eq!(method_id(&replay, "token"), method_id(&first, "token"));
    assert!(
        method(&replay, "token").get("answer_token").is_none(),
        "the token is shown once"
    );
    let other = json!({"user_id": "u-1", "idempotency_key": "login-7", "ttl_seconds": 60, "methods": [{"type": "token"}]});
    let r = server.create(&server.admin(), other).await;
    let (status, code) = outcome(r).await;
    assert_eq!(status, 409);
    assert_eq!(code, "idempotency_conflict");
}

#[tokio::test]
async fn an_email_link_method_is_sent_when_started_and_its_link_answers_on_the_page() {
    let sink = SmtpSink::start().await;
    let server = TestServer::start_with(|s| {
        s.email.smtp_host = "127.0.0.1".into();
        s.email.smtp_port = sink.port;
        s.email.tls = SmtpTls::None;
    })
    .await;
    let created = server
        .create_ok(
            json!({"user_id": "u-1", "details": {"message": "Sign in from Ottawa?"}, "methods": [
                {"type": "email_link", "recipient": {"email": "alice@example.com"}},
                {"type": "token"},
            ]}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let link_method = method_id(&created, "email_link");
    assert_eq!(method(&created, "email_link")["started"], false);
    assert_eq!(start(&server, id, &link_method).await.status(), 202);
    let mail = sink.wait_for(1).await.remove(0);
    let text = mail.part("text/plain").unwrap();
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:8080/c/"))
        .unwrap_or_else(|| panic!("no link in {text}"));
    let token = link.rsplit("?t=").next().unwrap().to_string();
    let link = link.replace("http://127.0.0.1:8080", &server.base);
    // Opening it shows what is asked and changes nothing.
    let page = server.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Sign in from Ottawa?"));
    assert_eq!(server.state_of(id).await["state"], "issued");
    // A stranger's token opens nothing.
    let stranger = format!("{}/c/{id}?t={}", server.base, "A".repeat(43));
    let page = server.http.get(&stranger).send().await.unwrap();
    assert_eq!(page.status(), 404);
    let r = server.answer_anonymously(id, &"B".repeat(43), true).await;
    assert_eq!(outcome(r).await, (400, "answer_rejected".to_string()));
    let c = server.state_of(id).await;
    assert_eq!(
        method(&c, "email_link")["attempts_left"],
        5,
        "a stranger costs nothing"
    );

    let approved = server
        .http
        .post(server.url(&format!("/c/{id}")))
        .form(&[("t", token.as_str()), ("allowed", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let c = server.state_of(id).await;
    assert_eq!(c["state"], "verified");
    assert_eq!(method(&c, "email_link")["state"], "verified");
    assert_eq!(method(&c, "token")["state"], "closed");
    // The link's token, anonymously on the API without a method id: already used.
    let r = server.answer_anonymously(id, &token, true).await;
    assert_eq!(
        r.status(),
        400,
        "anonymous refusals say only answer_rejected"
    );
}

#[tokio::test]
async fn a_wrong_answer_costs_only_its_methods_attempt_and_the_challenge_fails_with_the_last_method(
) {
    let sink = SmtpSink::start().await;
    let gateway = HttpSink::start();
    let url = gateway.url("/send");
    let server = TestServer::start_with(|s| with_transports(s, sink.port, &url)).await;
    let created = server
        .create_ok(json!({"user_id": "u-1", "max_attempts": 2, "methods": [
            {"type": "sms_otp", "recipient": {"phone": "+15551234567"}},
            {"type": "token"},
        ]}))
        .await;
    let id = created["id"].as_str().unwrap();
    let (sms, token) = (method_id(&created, "sms_otp"), method_id(&created, "token"));
    assert_eq!(start(&server, id, &sms).await.status(), 202);
    let code = sms_code(&gateway, id).await;
    let wrong = if code == "000000" { "111111" } else { "000000" };

    let r = answer(&server, id, json!({"code": wrong, "method_id": sms})).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "wrong_answer");
    assert_eq!(body["error"]["attempts_left"], 1);
    let c = server.state_of(id).await;
    assert_eq!(method(&c, "sms_otp")["attempts_left"], 1);
    assert_eq!(method(&c, "token")["attempts_left"], 2);
    assert_eq!(c["state"], "issued");

    let r = answer(&server, id, json!({"code": wrong, "method_id": sms})).await;
    assert_eq!(r.status(), 400);
    let c = server.state_of(id).await;
    assert_eq!(method(&c, "sms_otp")["state"], "failed");
    assert_eq!(c["state"], "issued", "another method is left");
    // A failed method takes no answer, not even its right code, and is not sent again.
    let r = answer(&server, id, json!({"code": code, "method_id": sms})).await;
    assert_eq!(error_code(r).await, (409, "method_failed".to_string()));
    let r = start(&server, id, &sms).await;
    assert_eq!(error_code(r).await, (409, "method_failed".to_string()));

    // A bearer caller's wrong token costs the token method's attempts.
    let stranger = "tok_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for left in [1, 0] {
        let r = answer(
            &server,
            id,
            json!({"answer_token": stranger, "method_id": token}),
        )
        .await;
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "wrong_answer", "{body}");
        assert_eq!(body["error"]["attempts_left"], left);
    }
    let c = server.state_of(id).await;
    assert_eq!(c["state"], "failed", "every method has failed");
    assert_eq!(method(&c, "token")["state"], "failed");
    assert_eq!(c["attempts_left"], 0);
}

#[tokio::test]
async fn two_methods_answered_at_once_have_exactly_one_winner() {
    let gateway = HttpSink::start();
    let url = gateway.url("/send");
    let server = TestServer::start_with(|s| {
        s.sms.gateway_url = url.clone();
        s.sms.format = SmsFormat::Json;
    })
    .await;
    let mut winners = [0, 0];
    for round in 0..25 {
        // A number per round: each recipient has a daily allowance.
        let phone = format!("+1555123{round:04}");
        let created = server
            .create_ok(json!({"user_id": "u-1", "methods": [
                {"type": "token"},
                {"type": "sms_otp", "recipient": {"phone": phone}},
            ]}))
            .await;
        let id = created["id"].as_str().unwrap();
        let (token, sms) = (method_id(&created, "token"), method_id(&created, "sms_otp"));
        let answer_token = method(&created, "token")["answer_token"].clone();
        assert_eq!(start(&server, id, &sms).await.status(), 202);
        let code = sms_code(&gateway, id).await;
        let (by_token, by_code) = tokio::join!(
            answer(
                &server,
                id,
                json!({"answer_token": answer_token, "method_id": token})
            ),
            answer(&server, id, json!({"code": code, "method_id": sms})),
        );
        let results = [outcome(by_token).await, outcome(by_code).await];
        let won: Vec<usize> = (0..2).filter(|i| results[*i].0 == 200).collect();
        assert_eq!(won.len(), 1, "exactly one winner: {results:?}");
        let loser = &results[1 - won[0]];
        assert_eq!(loser, &(409, "already_answered".to_string()));
        winners[won[0]] += 1;
        let c = server.state_of(id).await;
        assert_eq!(c["state"], "verified");
        let kinds = ["token", "sms_otp"];
        assert_eq!(method(&c, kinds[won[0]])["state"], "verified");
        assert_eq!(method(&c, kinds[1 - won[0]])["state"], "closed");
    }
    assert_eq!(winners[0] + winners[1], 25);
}

#[tokio::test]
async fn a_methods_acknowledged_answer_survives_sigkill() {
    let gateway = HttpSink::start();
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let url = gateway.url("/send");
    let env = [("CHALLENGE_SERVER__SMS__GATEWAY_URL", url.as_str())];
    let http = reqwest::Client::new();
    let admin = token(&Settings::development(), "acme", ALL_SCOPES);
    let mut server = ServerProcess::start(data.path(), logs.path(), &env).await;
    let post = |server: &ServerProcess, path: &str, body: Value| {
        http.post(server.url(path))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let r = post(
        &server,
        "/api/v1/challenges",
        json!({"user_id": "u-1", "ttl_seconds": 600, "methods": [
            {"type": "token"},
            {"type": "sms_otp", "recipient": {"phone": "+15551234567"}},
        ]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let (token_method, sms) = (method_id(&created, "token"), method_id(&created, "sms_otp"));
    let answer_token = method(&created, "token")["answer_token"].clone();
    let started = post(
        &server,
        &format!("/api/v1/challenges/{id}/methods/{sms}/start"),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(started.status(), 202);
    let code = sms_code(&gateway, id).await;
    let answered = post(
        &server,
        &format!("/api/v1/challenges/{id}/answer"),
        json!({"code": code, "method_id": sms}),
    )
    .await
    .unwrap();
    assert_eq!(answered.status(), 200);
    server.kill(); // right after the 2xx

    let server = ServerProcess::start(data.path(), logs.path(), &env).await;
    let r = http
        .get(server.url(&format!("/api/v1/challenges/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["state"], "verified");
    assert_eq!(method(&c, "sms_otp")["state"], "verified");
    assert_eq!(method(&c, "token")["state"], "closed");
    for body in [
        json!({"answer_token": answer_token, "method_id": token_method}),
        json!({"code": code, "method_id": sms}),
    ] {
        let r = post(&server, &format!("/api/v1/challenges/{id}/answer"), body)
            .await
            .unwrap();
        assert_eq!(r.status(), 409, "a used challenge never accepts again");
    }
}

#[tokio::test]
async fn a_started_methods_send_cut_off_by_sigkill_is_resumed_with_a_new_code() {
    let gateway = HttpSink::start();
    // The first send is held far longer than the test runs; later ones answer.
    gateway.reply_with([crate::sinks::Reply::status(200).after(Duration::from_secs(120))]);
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let url = gateway.url("/send");
    let env = [("CHALLENGE_SERVER__SMS__GATEWAY_URL", url.as_str())];
    let http = reqwest::Client::new();
    let admin = token(&Settings::development(), "acme", ALL_SCOPES);
    let mut server = ServerProcess::start(data.path(), logs.path(), &env).await;
    let created: Value = http
        .post(server.url("/api/v1/challenges"))
        .bearer_auth(&admin)
        .json(&json!({"user_id": "u-1", "ttl_seconds": 600, "methods": [
            {"type": "sms_otp", "recipient": {"phone": "+15551234567"}},
            {"type": "token"},
        ]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let sms = method_id(&created, "sms_otp");
    let started = http
        .post(server.url(&format!("/api/v1/challenges/{id}/methods/{sms}/start")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let held = gateway.wait_for(1).await.remove(0);
    let first: Value = serde_json::from_slice(&held.body).unwrap();
    let old_code = code_in(first["body"].as_str().unwrap());
    server.kill();

    let server = ServerProcess::start(data.path(), logs.path(), &env).await;
    let resent = gateway.wait_for(2).await.remove(1);
    let body: Value = serde_json::from_slice(&resent.body).unwrap();
    assert_eq!(body["challenge_id"], id);
    let new_code = code_in(body["body"].as_str().unwrap());
    let answer = |code: String| {
        http.post(server.url(&format!("/api/v1/challenges/{id}/answer")))
            .bearer_auth(&admin)
            .json(&json!({"code": code, "method_id": sms}))
            .send()
    };
    if old_code != new_code {
        // The plain code died with the process: the resumed send carries a new one.
        let r = answer(old_code).await.unwrap();
        assert_eq!(r.status(), 400);
    }
    let r = answer(new_code).await.unwrap();
    assert_eq!(r.status(), 200);
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["state"], "verified");
    assert_eq!(method(&c, "sms_otp")["state"], "verified");
}

#[tokio::test]
async fn starting_a_started_method_again_is_a_resend_under_its_cooldown() {
    let gateway = HttpSink::start();
    let url = gateway.url("/send");
    let server = TestServer::start_with(|s| {
        s.sms.gateway_url = url.clone();
        s.sms.format = SmsFormat::Json;
        s.delivery.resend_cooldown_seconds = 30;
    })
    .await;
    let created = server
        .create_ok(json!({"user_id": "u-1", "methods": [
            {"type": "sms_otp", "recipient": {"phone": "+15551234567"}},
        ]}))
        .await;
    let id = created["id"].as_str().unwrap();
    let sms = method_id(&created, "sms_otp");
    assert_eq!(start(&server, id, &sms).await.status(), 202);
    let r = start(&server, id, &sms).await;
    assert_eq!(r.headers()["retry-after"], "30");
    assert_eq!(error_code(r).await, (429, "resend_cooldown".to_string()));
    gateway.wait_for(1).await;
    assert_eq!(gateway.requests().len(), 1);
    // A resend of the challenge itself is a start of one of its methods.
    let r = server
        .post(
            Some(&server.admin()),
            &format!("/api/v1/challenges/{id}/resend"),
            json!({}),
        )
        .await;
    assert_eq!(error_code(r).await, (409, "not_deliverable".to_string()));
}

#[tokio::test]
async fn bad_method_requests_are_refused_with_stable_codes_and_create_nothing() {
    let gateway = HttpSink::start();
    let url = gateway.url("/send");
    // Email is not configured on this server.
    let server = TestServer::start_with(|s| {
        s.email.smtp_host = String::new();
        s.sms.gateway_url = url.clone();
        s.sms.format = SmsFormat::Json;
    })
    .await;
    let sms = json!({"type": "sms_otp", "recipient": {"phone": "+15551234567"}});
    for (body, code) in [
        (json!({"user_id": "u", "methods": []}), "invalid_field"),
        (
            json!({"user_id": "u", "methods": [sms, sms]}),
            "duplicate_method",
        ),
        (
            json!({"user_id": "u", "methods": [sms, {"type": "token"}, {"type": "totp", "factor_id": "fac_x"}, {"type": "email_otp"}, {"type": "push"}, {"type": "email_link"}, {"type": "webauthn"}]}),
            "too_many_items",
        ),
        (
            json!({"user_id": "u", "methods": [{"type": "webauthn"}]}),
            "method_type_not_supported",
        ),
        (
            json!({"user_id": "u", "methods": [{"type": "email_otp", "recipient": {"email": "a@example.com"}}]}),
            "channel_not_configured",
        ),
        (
            json!({"user_id": "u", "type": "token", "methods": [{"type": "token"}]}),
            "invalid_field",
        ),
        (
            json!({"user_id": "u", "methods": [sms], "recipient": {"phone": "+15551234567"}}),
            "invalid_field",
        ),
        (
            json!({"user_id": "u", "methods": [{"type": "token", "recipient": {"phone": "+15551234567"}}]}),
            "invalid_field",
        ),
        (
            json!({"user_id": "u", "methods": [{"type": "sms_otp"}]}),
            "recipient_required",
        ),
        (
            json!({"user_id": "u", "methods": [{"type": "totp", "factor_id": "fac_AAAAAAAAAAAAAAAAAAAAAA"}]}),
            "factor_not_found",
        ),
        (
            json!({"user_id": "u", "methods": [{"type": "no_such_type"}]}),
            "invalid_field",
        ),
    ] {
        let r = server.create(&server.admin(), body.clone()).await;
        let (status, got) = outcome(r).await;
        assert_eq!(got, code, "{body}");
        assert_eq!(
            status,
            if code == "factor_not_found" { 404 } else { 400 },
            "{body}"
        );
    }
    let r = server
        .http
        .get(server.url("/api/v1/challenges"))
        .bearer_auth(server.admin())
        .send()
        .await
        .unwrap();
    let listed: Value = r.json().await.unwrap();
    assert_eq!(listed["challenges"], json!([]), "nothing was created");
    assert!(gateway.requests().is_empty());

    let created = server
        .create_ok(json!({"user_id": "u", "methods": [sms, {"type": "token"}]}))
        .await;
    let id = created["id"].as_str().unwrap();
    let unknown = "mth_AAAAAAAAAAAAAAAAAAAAAA";
    for m in [unknown, "not-a-method-id"] {
        let r = start(&server, id, m).await;
        assert_eq!(error_code(r).await, (404, "method_not_found".to_string()));
        let r = answer(&server, id, json!({"code": "123456", "method_id": m})).await;
        assert_eq!(error_code(r).await, (404, "method_not_found".to_string()));
    }
    let r = answer(&server, id, json!({"code": "123456"})).await;
    assert_eq!(error_code(r).await, (400, "method_required".to_string()));
    let r = start(&server, id, &method_id(&created, "token")).await;
    assert_eq!(error_code(r).await, (409, "not_deliverable".to_string()));
    // Nothing above changed the challenge.
    let c = server.state_of(id).await;
    assert_eq!(c["state"], "issued");
    for m in c["methods"].as_array().unwrap() {
        assert_eq!(m["attempts_left"], 5, "{m}");
    }
    assert_eq!(method(&c, "sms_otp")["started"], false);

    // Another tenant's caller finds no such challenge, let alone its method.
    let globex = server.token("globex", ALL_SCOPES);
    let sms_method = method_id(&created, "sms_otp");
    let r = server
        .post(
            Some(&globex),
            &format!("/api/v1/challenges/{id}/methods/{sms_method}/start"),
            json!({}),
        )
        .await;
    assert_eq!(outcome(r).await, (404, "challenge_not_found".to_string()));
    assert!(gateway.requests().is_empty());

    // A challenge of one kind has no methods.
    let single = server
        .create_ok(json!({"type": "token", "user_id": "u"}))
        .await;
    assert!(single.get("methods").is_none());
    let single_id = single["id"].as_str().unwrap();
    let r = start(&server, single_id, unknown).await;
    assert_eq!(error_code(r).await, (404, "method_not_found".to_string()));
    let r = answer(&server, single_id, json!({"method_id": unknown})).await;
    assert_eq!(error_code(r).await, (404, "method_not_found".to_string()));
    assert_eq!(server.state_of(single_id).await["state"], "issued");
}
