//! Delivery transports against real receivers on 127.0.0.1: email into an aiosmtpd
//! server, SMS and webhooks into a recording HTTP server.

use std::time::{Duration, Instant};

use base64::Engine;
use challenge_server::config::{Secret, Settings, SmsFormat, SmtpTls};
use challenge_server::delivery::{
    verify, webhook, Deliverer, EmailMessage, EmailTransport, MessageKind, MessageVars, SmsGateway,
    SmsMessage, TemplateSet, Templates, WebhookSender, SIGNATURE_HEADER,
};
use challenge_server::model::{DetailField, Details};
use serde_json::{json, Value};

use crate::sinks::{closed_port, HttpSink, Reply, SmtpSink};

fn email_settings(port: u16) -> Settings {
    let mut settings = Settings::development();
    settings.email.smtp_host = "127.0.0.1".to_string();
    settings.email.smtp_port = port;
    settings.email.tls = SmtpTls::None;
    settings.email.from = "Acme Login <no-reply@acme.test>".to_string();
    settings.email.timeout_ms = 5000;
    settings
}

fn transport(port: u16) -> EmailTransport {
    EmailTransport::from_settings(&email_settings(port).email).expect("transport builds")
}

fn code_vars() -> MessageVars {
    MessageVars {
        code: Some("739105".to_string()),
        link: None,
        user_id: "u-123".to_string(),
        details: Details {
            message: Some("Sign in from Ottawa?".to_string()),
            fields: vec![DetailField {
                label: "IP".to_string(),
                value: "203.0.113.9".to_string(),
            }],
        },
        locale: Some("en".to_string()),
        expires_at: 1_700_000_300_000,
        now: 1_700_000_000_000,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_code_email_arrives_as_text_and_html_alternatives() {
    let sink = SmtpSink::start().await;
    let deliverer = Deliverer::from_settings(&email_settings(sink.port)).unwrap();
    let content = deliverer
        .templates()
        .email(&TemplateSet::default(), MessageKind::Code, &code_vars())
        .unwrap();

    deliverer
        .email()
        .expect("email is configured")
        .send(&EmailMessage::new("alice@example.test", content))
        .await
        .expect("the sink accepts the message");

    let mail = sink.wait_for(1).await.remove(0);
    assert_eq!(mail.mail_from, "no-reply@acme.test");
    assert_eq!(mail.rcpt_tos, ["alice@example.test"]);
    assert_eq!(mail.header("To"), Some("alice@example.test"));
    assert_eq!(mail.header("From"), Some("Acme Login <no-reply@acme.test>"));
    assert_eq!(mail.header("Subject"), Some("Your verification code"));
    assert!(mail.header("Date").is_some());
    let message_id = mail.header("Message-ID").expect("a Message-ID");
    assert!(
        message_id.starts_with('<') && message_id.ends_with("@acme.test>"),
        "{message_id}"
    );
    assert_eq!(mail.content_type, "multipart/alternative");
    let kinds: Vec<_> = mail.parts.iter().map(|p| p.content_type.as_str()).collect();
    assert_eq!(kinds, ["text/plain", "text/html"]);
    let text = mail.part("text/plain").unwrap();
    assert!(
        text.contains("739105") && text.contains("expires in 5 minutes"),
        "{text}"
    );
    assert!(text.contains("IP: 203.0.113.9"), "{text}");
    let html = mail.part("text/html").unwrap();
    assert!(html.contains(">739105<"), "{html}");
    assert!(mail.raw.contains("multipart/alternative"));
}

#[tokio::test]
async fn a_text_only_message_with_a_non_ascii_subject_arrives_intact() {
    let sink = SmtpSink::start().await;
    let transport = transport(sink.port);

    transport
        .send(&EmailMessage {
            to: "Zoë Ñ <zoe@example.test>".to_string(),
            subject: "Votre code — 482913 ✓".to_string(),
            text: "Code : 482913\nÀ bientôt".to_string(),
            html: None,
        })
        .await
        .unwrap();

    let mail = sink.wait_for(1).await.remove(0);
    assert_eq!(mail.rcpt_tos, ["zoe@example.test"]);
    assert_eq!(mail.header("Subject"), Some("Votre code — 482913 ✓"));
    assert_eq!(mail.content_type, "text/plain");
    assert_eq!(mail.parts.len(), 1);
    assert!(mail.parts[0].body.contains("À bientôt"));
}

#[tokio::test]
async fn header_injection_is_refused_before_anything_is_sent() {
    let sink = SmtpSink::start().await;
    let transport = transport(sink.port);
    let message = |to: &str, subject: &str| EmailMessage {
        to: to.to_string(),
        subject: subject.to_string(),
        text: "123456".to_string(),
        html: None,
    };

    let bad_to = transport
        .send(&message(
            "alice@example.test\r\nBcc: mallory@evil.test",
            "Your code",
        ))
        .await
        .unwrap_err();
    let bad_subject = transport
        .send(&message(
            "alice@example.test",
            "Your code\r\nBcc: mallory@evil.test",
        ))
        .await
        .unwrap_err();
    let not_an_address = transport
        .send(&message("alice at example", "Your code"))
        .await
        .unwrap_err();

    assert_eq!(bad_to.kind(), "invalid_recipient");
    assert!(bad_to.to_string().contains("line break"), "{bad_to}");
    assert_eq!(bad_subject.kind(), "template");
    assert!(
        bad_subject.to_string().contains("line break"),
        "{bad_subject}"
    );
    assert_eq!(not_an_address.kind(), "invalid_recipient");
    // A good message sent afterwards arrives alone: the refused ones never left.
    transport
        .send(&message("bob@example.test", "Your code"))
        .await
        .unwrap();
    let messages = sink.wait_for(1).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].rcpt_tos, ["bob@example.test"]);
    assert!(!messages[0].raw.contains("mallory"));
}

#[tokio::test]
async fn smtp_down_is_a_quick_transport_error() {
    let transport = transport(closed_port());
    let started = Instant::now();

    let error = transport
        .send(&EmailMessage {
            to: "alice@example.test".to_string(),
            subject: "Your code".to_string(),
            text: "123456".to_string(),
            html: None,
        })
        .await
        .unwrap_err();

    assert_eq!(error.kind(), "transport", "{error}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn sends_are_counted_by_channel_and_outcome() {
    let handle = challenge_server::metrics::install();
    let sink = SmtpSink::start().await;
    let message = EmailMessage {
        to: "alice@example.test".to_string(),
        subject: "Your code".to_string(),
        text: "123456".to_string(),
        html: None,
    };
    transport(sink.port).send(&message).await.unwrap();
    transport(closed_port()).send(&message).await.unwrap_err();

    let text = handle.render();
    for line in [
        "deliveries_total{channel=\"email\",outcome=\"sent\"} 1",
        "deliveries_total{channel=\"email\",outcome=\"transport\"} 1",
        "delivery_duration_seconds_count{channel=\"email\"} 2",
    ] {
        assert!(text.contains(line), "metrics lack {line}:\n{text}");
    }
}

fn sms_settings(url: &str, format: SmsFormat) -> Settings {
    let mut settings = Settings::development();
    settings.sms.gateway_url = url.to_string();
    settings.sms.format = format;
    settings.sms.timeout_ms = 2000;
    settings
}

fn sms(to: &str, body: &str) -> SmsMessage {
    SmsMessage {
        to: to.to_string(),
        body: body.to_string(),
        challenge_id: "ch_abc".to_string(),
    }
}

#[tokio::test]
async fn a_json_sms_is_posted_with_a_verifiable_signature() {
    let gateway_sink = HttpSink::start();
    let mut settings = sms_settings(&gateway_sink.url("/sms/send"), SmsFormat::Json);
    settings.sms.signing_secret = Secret::new("gateway-secret");
    let deliverer = Deliverer::from_settings(&settings).unwrap();
    let body = deliverer
        .templates()
        .sms(&TemplateSet::default(), MessageKind::Code, &code_vars())
        .unwrap();

    deliverer
        .sms()
        .expect("SMS is configured")
        .send(&sms("+15551234567", &body))
        .await
        .unwrap();

    let requests = gateway_sink.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/sms/send")
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    let sent: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        sent,
        json!({"to": "+15551234567", "body": "739105 is your code. It expires in 5 minutes.",
               "challenge_id": "ch_abc"})
    );
    let signature = request.header(SIGNATURE_HEADER).expect("signed");
    assert!(verify(
        b"gateway-secret",
        signature,
        &request.body,
        now(),
        300
    ));
    assert!(!verify(
        b"other-secret",
        signature,
        &request.body,
        now(),
        300
    ));
    assert!(request.header("authorization").is_none());
}

#[tokio::test]
async fn a_twilio_sms_is_a_form_post_with_basic_auth() {
    let gateway_sink = HttpSink::start();
    let mut settings = sms_settings(
        &gateway_sink.url("/2010-04-01/Accounts/AC123/Messages.json"),
        SmsFormat::Twilio,
    );
    settings.sms.from = "+15550001111".to_string();
    settings.sms.username = "AC123".to_string();
    settings.sms.password = Secret::new("auth-token");
    gateway_sink.reply_with([Reply::status(201).body(r#"{"sid": "SM1", "status": "queued"}"#)]);
    let gateway = SmsGateway::from_settings(&settings.sms).unwrap();

    gateway
        .send(&sms("+32470123456", "482913 is your code & more"))
        .await
        .unwrap();

    let request = &gateway_sink.requests()[0];
    assert_eq!(request.path, "/2010-04-01/Accounts/AC123/Messages.json");
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&request.body).unwrap();
    assert_eq!(
        form,
        [
            ("To".to_string(), "+32470123456".to_string()),
            ("From".to_string(), "+15550001111".to_string()),
            ("Body".to_string(), "482913 is your code & more".to_string()),
        ]
    );
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("AC123:auth-token")
    );
    assert_eq!(request.header("authorization"), Some(expected.as_str()));
    assert!(request.header(SIGNATURE_HEADER).is_none());
}

#[tokio::test]
async fn gateway_refusals_become_errors_without_the_response_body() {
    let gateway_sink = HttpSink::start();
    let mut settings = sms_settings(&gateway_sink.url("/twilio"), SmsFormat::Twilio);
    settings.sms.from = "+15550001111".to_string();
    settings.sms.username = "AC123".to_string();
    settings.sms.password = Secret::new("auth-token");
    let twilio = SmsGateway::from_settings(&settings.sms).unwrap();
    let json =
        SmsGateway::from_settings(&sms_settings(&gateway_sink.url("/json"), SmsFormat::Json).sms)
            .unwrap();
    gateway_sink.reply_with([
        Reply::status(500).body(r#"{"echo": "123456 is your code"}"#),
        Reply::status(400).body(r#"{"code": 21211, "message": "The 'To' number is not valid"}"#),
        Reply::status(401).body(r#"{"code": 20003, "message": "Authenticate"}"#),
    ]);

    let server_error = json
        .send(&sms("+15551234567", "123456 is your code"))
        .await
        .unwrap_err();
    let bad_number = twilio
        .send(&sms("+15551234567", "123456"))
        .await
        .unwrap_err();
    let bad_auth = twilio
        .send(&sms("+15551234567", "123456"))
        .await
        .unwrap_err();

    assert_eq!(server_error.kind(), "rejected");
    assert!(server_error.to_string().contains("500"), "{server_error}");
    assert!(
        !server_error.to_string().contains("123456"),
        "{server_error}"
    );
    assert_eq!(bad_number.kind(), "invalid_recipient");
    assert!(bad_number.to_string().contains("21211"), "{bad_number}");
    assert_eq!(bad_auth.kind(), "rejected");
    assert!(bad_auth.to_string().contains("401"), "{bad_auth}");
    assert!(!bad_auth.to_string().contains("auth-token"));
}

#[tokio::test]
async fn bad_numbers_and_long_bodies_never_reach_the_gateway() {
    let gateway_sink = HttpSink::start();
    let mut settings = sms_settings(&gateway_sink.url("/sms"), SmsFormat::Json);
    settings.sms.max_length = 10;
    let gateway = SmsGateway::from_settings(&settings.sms).unwrap();

    let bad_number = gateway
        .send(&sms("5551234567", "123456"))
        .await
        .unwrap_err();
    let too_long = gateway
        .send(&sms("+15551234567", "123456 is your code"))
        .await
        .unwrap_err();
    gateway.send(&sms("+15551234567", "123456")).await.unwrap();

    assert_eq!(bad_number.kind(), "invalid_recipient");
    assert_eq!(too_long.kind(), "template");
    assert_eq!(gateway_sink.requests().len(), 1);
}

#[tokio::test]
async fn a_slow_gateway_is_a_timeout() {
    let gateway_sink = HttpSink::start();
    let mut settings = sms_settings(&gateway_sink.url("/sms"), SmsFormat::Json);
    settings.sms.timeout_ms = 200;
    gateway_sink.reply_with([Reply::status(200).after(Duration::from_secs(5))]);
    let gateway = SmsGateway::from_settings(&settings.sms).unwrap();

    let error = gateway
        .send(&sms("+15551234567", "123456"))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), "timeout", "{error}");
}

fn sender(max_retries: u32) -> WebhookSender {
    let mut settings = Settings::development();
    settings.webhooks.max_retries = max_retries;
    settings.webhooks.backoff_ms = 10;
    settings.webhooks.timeout_ms = 2000;
    WebhookSender::from_settings(&settings.webhooks).unwrap()
}

const HOOK_SECRET: &[u8] = b"whsec-acme";

#[tokio::test]
async fn a_webhook_is_retried_after_a_503_and_then_delivered_signed() {
    let hook_sink = HttpSink::start();
    hook_sink.reply_with([Reply::status(503)]);
    let body = br#"{"id":"ch_1","state":"verified"}"#.to_vec();

    let attempts = sender(5)
        .deliver(
            &hook_sink.url("/hooks/challenge"),
            body.clone(),
            HOOK_SECRET,
        )
        .await
        .unwrap();

    assert_eq!(attempts, 2);
    let requests = hook_sink.requests();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.method, "POST");
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.body, body);
        let signature = request.header(SIGNATURE_HEADER).unwrap();
        assert!(verify(HOOK_SECRET, signature, &request.body, now(), 300));
        assert!(!verify(
            HOOK_SECRET,
            signature,
            br#"{"id":"ch_1","state":"declined"}"#,
            now(),
            300
        ));
    }
}

#[tokio::test]
async fn a_4xx_answer_is_final() {
    let hook_sink = HttpSink::start();
    hook_sink.reply_with([Reply::status(400)]);

    let error = sender(5)
        .deliver(&hook_sink.url("/hook"), b"{}".to_vec(), HOOK_SECRET)
        .await
        .unwrap_err();

    assert_eq!(error.kind(), "rejected");
    assert!(error.to_string().contains("400"), "{error}");
    assert_eq!(hook_sink.requests().len(), 1);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let hook_sink = HttpSink::start();
    hook_sink.reply_with([Reply::status(302).location(&hook_sink.url("/elsewhere"))]);

    let error = sender(5)
        .deliver(&hook_sink.url("/hook"), b"{}".to_vec(), HOOK_SECRET)
        .await
        .unwrap_err();

    assert_eq!(error.kind(), "rejected");
    assert!(error.to_string().contains("302"), "{error}");
    let paths: Vec<_> = hook_sink.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/hook"]);
}

#[tokio::test]
async fn retries_stop_at_max_retries() {
    let hook_sink = HttpSink::start();
    hook_sink.reply_with(std::iter::repeat_n(Reply::status(500), 10));

    let error = sender(2)
        .deliver(&hook_sink.url("/hook"), b"{}".to_vec(), HOOK_SECRET)
        .await
        .unwrap_err();

    assert_eq!(error.kind(), "rejected");
    assert!(error.to_string().contains("after 3 attempts"), "{error}");
    assert_eq!(hook_sink.requests().len(), 3);
}

#[tokio::test]
async fn an_unreachable_receiver_is_a_transport_error_after_retries() {
    let url = format!("http://127.0.0.1:{}/hook", closed_port());

    let error = sender(2)
        .deliver(&url, b"{}".to_vec(), HOOK_SECRET)
        .await
        .unwrap_err();

    assert_eq!(error.kind(), "transport");
    assert!(error.to_string().contains("after 3 attempts"), "{error}");
    assert!(
        !error.to_string().contains("127.0.0.1"),
        "no URL in the reason: {error}"
    );
}

#[tokio::test]
async fn an_empty_secret_sends_no_signature() {
    let hook_sink = HttpSink::start();

    sender(0)
        .deliver(&hook_sink.url("/hook"), b"{}".to_vec(), b"")
        .await
        .unwrap();

    assert!(hook_sink.requests()[0].header(SIGNATURE_HEADER).is_none());
}

#[test]
fn the_signature_is_the_documented_hmac() {
    // The same inputs as README.md's verification snippet; the hex comes from Python's
    // hmac module, not from this crate.
    let header = webhook::signature(b"whsec-acme", 1_700_000_000, br#"{"id":"ch_1"}"#);
    assert_eq!(
        header,
        "t=1700000000,v1=a62a346c046bfdcec3465695a8863a217095bb99de33909a5d7d5c426c8fcbe7"
    );
}

#[test]
fn templates_render_without_a_runtime() {
    // The engine may render on any thread; only transports need Tokio.
    let sms = Templates::new(1600)
        .sms(&TemplateSet::default(), MessageKind::Code, &code_vars())
        .unwrap();
    assert_eq!(sms, "739105 is your code. It expires in 5 minutes.");
}
