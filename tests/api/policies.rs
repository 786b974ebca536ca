//! Policies: CRUD with optimistic locking, bad input, tenant isolation, scopes, and what
//! a challenge takes from the policy it is created from.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::helpers::*;

const POLICY_SCOPES: &str =
    "challenge:policy:get challenge:policy:post challenge:policy:put challenge:policy:delete";

/// Every challenge and policy scope of `tenant`.
fn manager(server: &TestServer, tenant: &str) -> String {
    server.token(tenant, &format!("{ALL_SCOPES} {POLICY_SCOPES}"))
}

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    if_match: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = server
        .http
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(version) = if_match {
        request = request.header("If-Match", version);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("policy request")
}

async fn post_policy(server: &TestServer, token: &str, body: Value) -> reqwest::Response {
    call(
        server,
        Method::POST,
        "/api/v1/policies",
        token,
        None,
        Some(body),
    )
    .await
}

async fn put_policy(
    server: &TestServer,
    token: &str,
    alias: &str,
    if_match: Option<&str>,
    body: Value,
) -> reqwest::Response {
    let path = format!("/api/v1/policies/{alias}");
    call(server, Method::PUT, &path, token, if_match, Some(body)).await
}

async fn get_policy(server: &TestServer, token: &str, alias: &str) -> reqwest::Response {
    let path = format!("/api/v1/policies/{alias}");
    call(server, Method::GET, &path, token, None, None).await
}

async fn delete_policy(
    server: &TestServer,
    token: &str,
    alias: &str,
    if_match: Option<&str>,
) -> reqwest::Response {
    let path = format!("/api/v1/policies/{alias}");
    call(server, Method::DELETE, &path, token, if_match, None).await
}

/// Creates a policy as acme and returns its body.
async fn policy_ok(server: &TestServer, body: Value) -> Value {
    let response = post_policy(server, &manager(server, "acme"), body).await;
    assert_eq!(response.status(), 201, "create policy failed");
    response.json().await.unwrap()
}

async fn aliases(server: &TestServer, token: &str, query: &str) -> (Vec<String>, Value) {
    let path = format!("/api/v1/policies{query}");
    let response = call(server, Method::GET, &path, token, None, None).await;
    assert_eq!(response.status(), 200, "{query}");
    let page: Value = response.json().await.unwrap();
    let aliases = page["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["alias"].as_str().unwrap().to_string())
        .collect();
    (aliases, page["next_page_token"].clone())
}

fn etag(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("etag")
        .expect("an ETag")
        .to_str()
        .unwrap()
        .to_string()
}

fn instant(text: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(text.as_str().unwrap(), &Rfc3339).unwrap()
}

/// A challenge's TTL in whole seconds.
fn ttl_of(challenge: &Value) -> i64 {
    (instant(&challenge["expires_at"]) - instant(&challenge["created_at"])).whole_seconds()
}

#[tokio::test]
async fn a_policy_is_created_read_listed_replaced_and_deleted() {
    let server = TestServer::start().await;
    let admin = manager(&server, "acme");
    let body = json!({"alias": "login-otp", "type": "email_otp", "ttl_seconds": 300,
        "max_ttl_seconds": 900, "max_attempts": 3, "code_length": 8, "code_alphabet": "alphanumeric",
        "resend_cooldown_seconds": 30, "max_resends": 2, "resend_mode": "rotate",
        "retention_seconds": 600, "one_active_per_user": true,
        "templates": {"default_locale": "en", "locales": {
            "en": {"subject": "Your code", "text": "Code: {{ code }}\n", "html": "<p>{{ code }}</p>"},
            "nl": {"subject": "Uw code", "text": "Code: {{ code }}"}}},
        "conditions": {"email_domains": ["Example.COM", "mail.example.org"]}});
    let created = post_policy(&server, &admin, body.clone()).await;
    assert_eq!(created.status(), 201);
    assert_eq!(etag(&created), "\"1\"");
    assert_eq!(
        created.headers()["location"].to_str().unwrap(),
        "/api/v1/policies/login-otp"
    );
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["version"], 1);
    assert_eq!(created["created_at"], created["updated_at"]);
    assert_eq!(
        created["conditions"]["email_domains"],
        json!(["example.com", "mail.example.org"]),
        "domains are stored lower-case"
    );
    for field in [
        "alias",
        "type",
        "ttl_seconds",
        "max_ttl_seconds",
        "max_attempts",
        "code_length",
        "code_alphabet",
        "resend_cooldown_seconds",
        "max_resends",
        "resend_mode",
        "retention_seconds",
        "one_active_per_user",
        "templates",
    ] {
        assert_eq!(created[field], body[field], "{field}");
    }

    let read = get_policy(&server, &admin, "login-otp").await;
    assert_eq!(read.status(), 200);
    assert_eq!(etag(&read), "\"1\"");
    assert_eq!(read.json::<Value>().await.unwrap(), created);
    assert_eq!(aliases(&server, &admin, "").await.0, ["login-otp"]);

    // A read sent back with changes is a valid replace (server-set fields are ignored).
    let mut changed = created.clone();
    changed["ttl_seconds"] = json!(120);
    changed["templates"] = Value::Null;
    let replaced = put_policy(&server, &admin, "login-otp", Some("\"1\""), changed).await;
    assert_eq!(replaced.status(), 200);
    assert_eq!(etag(&replaced), "\"2\"");
    let replaced: Value = replaced.json().await.unwrap();
    assert_eq!(replaced["version"], 2);
    assert_eq!(replaced["ttl_seconds"], 120);
    assert_eq!(replaced["templates"], Value::Null);
    assert_eq!(replaced["created_at"], created["created_at"]);
    assert!(instant(&replaced["updated_at"]) >= instant(&created["updated_at"]));

    // A full replace: what the body leaves out is gone, and a bare version is accepted.
    let minimal = put_policy(
        &server,
        &admin,
        "login-otp",
        Some("2"),
        json!({"type": "sms_otp"}),
    )
    .await;
    assert_eq!(minimal.status(), 200);
    let minimal: Value = minimal.json().await.unwrap();
    assert_eq!(minimal["version"], 3);
    assert_eq!(minimal["type"], "sms_otp");
    assert_eq!(minimal["ttl_seconds"], Value::Null);
    assert_eq!(minimal["one_active_per_user"], false);

    let deleted = delete_policy(&server, &admin, "login-otp", None).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        error_code(get_policy(&server, &admin, "login-otp").await).await,
        (404, "policy_not_found".into())
    );
    assert_eq!(
        error_code(delete_policy(&server, &admin, "login-otp", None).await).await,
        (404, "policy_not_found".into())
    );
    let replace_missing = put_policy(
        &server,
        &admin,
        "login-otp",
        Some("\"3\""),
        json!({"type": "token"}),
    )
    .await;
    assert_eq!(
        error_code(replace_missing).await,
        (404, "policy_not_found".into())
    );
    assert!(aliases(&server, &admin, "").await.0.is_empty());
    // The alias is free again.
    assert_eq!(
        post_policy(
            &server,
            &admin,
            json!({"alias": "login-otp", "type": "token"})
        )
        .await
        .status(),
        201
    );
}

#[tokio::test]
async fn policies_are_listed_in_alias_order_a_page_at_a_time() {
    let server = TestServer::start().await;
    let admin = manager(&server, "acme");
    let mut expected = Vec::new();
    for alias in ["g", "c", "a.1", "e", "b_2", "f-3", "d"] {
        policy_ok(&server, json!({"alias": alias, "type": "token"})).await;
        expected.push(alias.to_string());
    }
    expected.sort();
    let mut seen = Vec::new();
    let mut pages = 0;
    let mut query = "?page_size=3".to_string();
    loop {
        let (page, next) = aliases(&server, &admin, &query).await;
        pages += 1;
        assert!(page.len() <= 3);
        seen.extend(page);
        match next.as_str() {
            Some(token) => query = format!("?page_size=3&page_token={token}"),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    let (all, next) = aliases(&server, &admin, "").await;
    assert_eq!(all, expected, "the default page holds all seven");
    assert_eq!(next, Value::Null);
    for bad in [
        "?page_size=0",
        "?page_size=101",
        "?page_size=many",
        "?page_token=Not+An+Alias",
        "?colour=red",
    ] {
        let path = format!("/api/v1/policies{bad}");
        let response = call(&server, Method::GET, &path, &admin, None, None).await;
        assert_eq!(
            error_code(response).await,
            (400, "invalid_query".into()),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_taken_alias_is_refused_and_the_first_policy_is_unchanged() {
    let server = TestServer::start().await;
    let admin = manager(&server, "acme");
    let first = policy_ok(
        &server,
        json!({"alias": "login", "type": "token", "ttl_seconds": 60}),
    )
    .await;
    let again = post_policy(
        &server,
        &admin,
        json!({"alias": "login", "type": "token", "ttl_seconds": 90}),
    )
    .await;
    assert_eq!(error_code(again).await, (409, "alias_taken".into()));
    let read: Value = get_policy(&server, &admin, "login")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, first);
}

#[tokio::test]
async fn bad_policies_are_refused_with_codes_naming_the_field_and_store_nothing() {
    let server = TestServer::start().await;
    let admin = manager(&server, "acme");
    let policy = |kind: &str, extra: Value| {
        let mut body = json!({"alias": "p", "type": kind});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let email = |extra: Value| policy("email_otp", extra);
    let token = |extra: Value| policy("token", extra);
    let en = |template: Value| json!({"templates": {"default_locale": "en", "locales": {"en": template}}});
    let domains: Vec<String> = (0..101).map(|i| format!("d{i}.example.com")).collect();
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "upper-case alias",
            json!({"alias": "Login", "type": "token"}),
            "invalid_alias",
            "alias",
        ),
        (
            "alias starting with a dash",
            json!({"alias": "-a", "type": "token"}),
            "invalid_alias",
            "alias",
        ),
        (
            "alias with a slash",
            json!({"alias": "a/b", "type": "token"}),
            "invalid_alias",
            "alias",
        ),
        (
            "empty alias",
            json!({"alias": "", "type": "token"}),
            "invalid_alias",
            "alias",
        ),
        (
            "65-character alias",
            json!({"alias": "a".repeat(65), "type": "token"}),
            "invalid_alias",
            "alias",
        ),
        (
            "alias of the wrong type",
            json!({"alias": 5, "type": "token"}),
            "invalid_field",
            "alias",
        ),
        (
            "no alias",
            json!({"type": "token"}),
            "invalid_field",
            "alias",
        ),
        ("no type", json!({"alias": "p"}), "invalid_field", "type"),
        (
            "unknown type",
            json!({"alias": "p", "type": "carrier_pigeon"}),
            "invalid_field",
            "carrier_pigeon",
        ),
        (
            "type of the wrong type",
            json!({"alias": "p", "type": 5}),
            "invalid_field",
            "",
        ),
        (
            "unknown field",
            token(json!({"colour": "red"})),
            "unknown_field",
            "colour",
        ),
        (
            "unknown template field",
            email(en(json!({"subject": "s", "body": "b"}))),
            "unknown_field",
            "body",
        ),
        (
            "unknown templates field",
            email(json!({"templates": {"default_locale": "en", "locales": {}, "x": 1}})),
            "unknown_field",
            "x",
        ),
        (
            "unknown condition",
            email(json!({"conditions": {"domains": ["a.com"]}})),
            "unknown_field",
            "domains",
        ),
        (
            "ttl zero",
            token(json!({"ttl_seconds": 0})),
            "out_of_range",
            "ttl_seconds",
        ),
        (
            "ttl above the server cap",
            token(json!({"ttl_seconds": 86401})),
            "out_of_range",
            "ttl_seconds",
        ),
        (
            "ttl above the policy's max",
            token(json!({"ttl_seconds": 700, "max_ttl_seconds": 600})),
            "out_of_range",
            "ttl_seconds",
        ),
        (
            "max ttl above the server cap",
            token(json!({"max_ttl_seconds": 86401})),
            "out_of_range",
            "max_ttl_seconds",
        ),
        (
            "max ttl zero",
            token(json!({"max_ttl_seconds": 0})),
            "out_of_range",
            "max_ttl_seconds",
        ),
        (
            "max attempts zero",
            token(json!({"max_attempts": 0})),
            "out_of_range",
            "max_attempts",
        ),
        (
            "max attempts above the cap",
            token(json!({"max_attempts": 21})),
            "out_of_range",
            "max_attempts",
        ),
        (
            "code too short",
            email(json!({"code_length": 3})),
            "out_of_range",
            "code_length",
        ),
        (
            "code too long",
            email(json!({"code_length": 11})),
            "out_of_range",
            "code_length",
        ),
        (
            "cooldown too long",
            email(json!({"resend_cooldown_seconds": 3601})),
            "out_of_range",
            "resend_cooldown_seconds",
        ),
        (
            "too many resends",
            email(json!({"max_resends": 21})),
            "out_of_range",
            "max_resends",
        ),
        (
            "retention over a year",
            token(json!({"retention_seconds": 31_536_001u64})),
            "out_of_range",
            "retention_seconds",
        ),
        (
            "ttl as a string",
            token(json!({"ttl_seconds": "300"})),
            "invalid_field",
            "",
        ),
        (
            "negative ttl",
            token(json!({"ttl_seconds": -1})),
            "invalid_field",
            "",
        ),
        (
            "fractional ttl",
            token(json!({"ttl_seconds": 1.5})),
            "invalid_field",
            "",
        ),
        (
            "ttl beyond u64",
            token(json!({"ttl_seconds": 1e30})),
            "invalid_field",
            "",
        ),
        (
            "flag as a string",
            token(json!({"one_active_per_user": "yes"})),
            "invalid_field",
            "",
        ),
        (
            "unknown alphabet",
            email(json!({"code_alphabet": "hex"})),
            "invalid_field",
            "hex",
        ),
        (
            "unknown resend mode",
            email(json!({"resend_mode": "sometimes"})),
            "invalid_field",
            "sometimes",
        ),
        (
            "templates as a list",
            email(json!({"templates": []})),
            "invalid_field",
            "",
        ),
        (
            "default locale without a template",
            email(json!({"templates": {"default_locale": "fr", "locales": {"en": {"text": "t"}}}})),
            "template_not_found",
            "default_locale",
        ),
        (
            "no locales",
            email(json!({"templates": {"default_locale": "en", "locales": {}}})),
            "template_not_found",
            "default_locale",
        ),
        (
            "bad locale",
            email(
                json!({"templates": {"default_locale": "en!", "locales": {"en!": {"text": "t"}}}}),
            ),
            "invalid_field",
            "templates.locales",
        ),
        (
            "empty template",
            email(en(json!({}))),
            "invalid_field",
            "templates.locales.en",
        ),
        (
            "empty subject",
            email(en(json!({"subject": ""}))),
            "invalid_field",
            "templates.locales.en.subject",
        ),
        (
            "subject too long",
            email(en(json!({"subject": "s".repeat(257)}))),
            "field_too_long",
            "templates.locales.en.subject",
        ),
        (
            "control character",
            email(en(json!({"text": "a\u{7}b"}))),
            "invalid_field",
            "templates.locales.en.text",
        ),
        (
            "sms text for email",
            email(en(json!({"sms": "code"}))),
            "not_applicable",
            "templates.locales.en.sms",
        ),
        (
            "subject for sms",
            json!({"alias": "p", "type": "sms_otp", "templates": {"default_locale": "en", "locales": {"en": {"subject": "s"}}}}),
            "not_applicable",
            "templates.locales.en.subject",
        ),
        (
            "templates for token",
            token(en(json!({"text": "t"}))),
            "not_applicable",
            "templates",
        ),
        (
            "conditions for token",
            token(json!({"conditions": {}})),
            "not_applicable",
            "conditions",
        ),
        (
            "code length for token",
            token(json!({"code_length": 6})),
            "not_applicable",
            "code_length",
        ),
        (
            "code length for a link",
            json!({"alias": "p", "type": "email_link", "code_length": 6}),
            "not_applicable",
            "code_length",
        ),
        (
            "resend mode for push",
            json!({"alias": "p", "type": "push", "resend_mode": "same"}),
            "not_applicable",
            "resend_mode",
        ),
        (
            "phone prefixes for email",
            email(json!({"conditions": {"phone_prefixes": ["+1"]}})),
            "not_applicable",
            "conditions.phone_prefixes",
        ),
        (
            "email domains for sms",
            json!({"alias": "p", "type": "sms_otp", "conditions": {"email_domains": ["a.com"]}}),
            "not_applicable",
            "conditions.email_domains",
        ),
        (
            "not a domain",
            email(json!({"conditions": {"email_domains": ["a.com", "not a domain"]}})),
            "invalid_field",
            "conditions.email_domains[1]",
        ),
        (
            "single-label domain",
            email(json!({"conditions": {"email_domains": ["localhost"]}})),
            "invalid_field",
            "conditions.email_domains[0]",
        ),
        (
            "no domains",
            email(json!({"conditions": {"email_domains": []}})),
            "invalid_field",
            "conditions.email_domains",
        ),
        (
            "too many domains",
            email(json!({"conditions": {"email_domains": domains}})),
            "too_many_items",
            "conditions.email_domains",
        ),
        (
            "prefix without plus",
            json!({"alias": "p", "type": "sms_otp", "conditions": {"phone_prefixes": ["44"]}}),
            "invalid_field",
            "conditions.phone_prefixes[0]",
        ),
        (
            "prefix too long",
            json!({"alias": "p", "type": "sms_otp", "conditions": {"phone_prefixes": ["+1", "+12345"]}}),
            "invalid_field",
            "conditions.phone_prefixes[1]",
        ),
    ];
    for (name, body, code, field) in cases {
        let response = post_policy(&server, &admin, body).await;
        let status = response.status().as_u16();
        let error: Value = response.json().await.unwrap();
        assert_eq!(
            (status, error["error"]["code"].as_str().unwrap()),
            (400, code),
            "{name}: {error}"
        );
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{name}: {message:?} should name {field}"
        );
    }
    for (name, body, content_type, status, code) in [
        (
            "malformed json",
            "{\"alias\": ",
            "application/json",
            400,
            "malformed_json",
        ),
        (
            "not an object",
            "[]",
            "application/json",
            400,
            "invalid_field",
        ),
        ("empty body", "", "application/json", 400, "malformed_json"),
        (
            "form body",
            "alias=p",
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
    ] {
        let response = server
            .http
            .post(server.url("/api/v1/policies"))
            .bearer_auth(&admin)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(response).await, (status, code.into()), "{name}");
    }
    assert!(
        aliases(&server, &admin, "").await.0.is_empty(),
        "nothing may have been stored"
    );
}

#[tokio::test]
async fn a_replace_needs_the_current_version_and_a_refused_one_changes_nothing() {
    let server = TestServer::start().await;
    let admin = manager(&server, "acme");
    policy_ok(
        &server,
        json!({"alias": "login", "type": "token", "ttl_seconds": 60}),
    )
    .await;
    let v2 = put_policy(
        &server,
        &admin,
        "login",
        Some("\"1\""),
        json!({"type": "token", "ttl_seconds": 90}),
    )
    .await;
    assert_eq!(v2.status(), 200);
    let current: Value = v2.json().await.unwrap();
    let next = json!({"type": "token", "ttl_seconds": 30});

    let missing = put_policy(&server, &admin, "login", None, next.clone()).await;
    assert_eq!(
        error_code(missing).await,
        (428, "precondition_required".into())
    );
    let stale = put_policy(&server, &admin, "login", Some("\"1\""), next.clone()).await;
    assert_eq!(stale.status(), 412);
    let stale: Value = stale.json().await.unwrap();
    assert_eq!(stale["error"]["code"], "version_conflict");
    assert_eq!(stale["error"]["current_version"], 2);
    let ahead = put_policy(&server, &admin, "login", Some("\"3\""), next.clone()).await;
    assert_eq!(error_code(ahead).await, (412, "version_conflict".into()));
    // An entity tag that names no version, or a weak one, matches nothing (RFC 9110
    // §13.1.1: If-Match uses the strong comparison).
    for unmatched in ["\"two\"", "W/\"2\"", "null", "\"1\", \"3\""] {
        let refused = put_policy(&server, &admin, "login", Some(unmatched), next.clone()).await;
        assert_eq!(
            error_code(refused).await,
            (412, "version_conflict".into()),
            "{unmatched}"
        );
    }
    let renamed = put_policy(
        &server,
        &admin,
        "login",
        Some("\"2\""),
        json!({"alias": "other", "type": "token"}),
    )
    .await;
    assert_eq!(error_code(renamed).await, (400, "invalid_field".into()));
    let invalid = put_policy(
        &server,
        &admin,
        "login",
        Some("\"2\""),
        json!({"type": "token", "ttl_seconds": 0}),
    )
    .await;
    assert_eq!(error_code(invalid).await, (400, "out_of_range".into()));
    let stale_delete = delete_policy(&server, &admin, "login", Some("\"1\"")).await;
    assert_eq!(
        error_code(stale_delete).await,
        (412, "version_conflict".into())
    );

    let read = get_policy(&server, &admin, "login").await;
    assert_eq!(etag(&read), "\"2\"");
    assert_eq!(
        read.json::<Value>().await.unwrap(),
        current,
        "nothing changed"
    );

    let same_alias = put_policy(
        &server,
        &admin,
        "login",
        Some("\"2\""),
        json!({"alias": "login", "type": "token", "ttl_seconds": 30}),
    )
    .await;
    assert_eq!(same_alias.status(), 200);
    // `*` matches whatever version there is; a list matches if any of its tags does.
    let any = put_policy(&server, &admin, "login", Some("*"), next.clone()).await;
    assert_eq!(any.status(), 200);
    assert_eq!(etag(&any), "\"4\"");
    let listed = put_policy(&server, &admin, "login", Some("\"1\", \"4\""), next.clone()).await;
    assert_eq!(listed.status(), 200);
    assert_eq!(etag(&listed), "\"5\"");
    let unmatched_delete = delete_policy(&server, &admin, "login", Some("W/\"5\"")).await;
    assert_eq!(unmatched_delete.status(), 412);
    assert_eq!(
        delete_policy(&server, &admin, "login", Some("*"))
            .await
            .status(),
        204
    );
    let gone = put_policy(&server, &admin, "login", Some("*"), next).await;
    assert_eq!(error_code(gone).await, (404, "policy_not_found".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_replaces_of_one_version_have_exactly_one_winner() {
    let server = Arc::new(TestServer::start().await);
    let admin = manager(&server, "acme");
    policy_ok(&server, json!({"alias": "login", "type": "token"})).await;
    let mut tasks = Vec::new();
    for i in 0..10u64 {
        let server = server.clone();
        let admin = admin.clone();
        tasks.push(tokio::spawn(async move {
            let response = put_policy(
                &server,
                &admin,
                "login",
                Some("\"1\""),
                json!({"type": "token", "ttl_seconds": 100 + i}),
            )
            .await;
            let status = response.status().as_u16();
            (i, status, response.json::<Value>().await.unwrap())
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (i, status, body) = task.await.unwrap();
        match status {
            200 => winners.push(i),
            412 => {
                assert_eq!(body["error"]["code"], "version_conflict");
                assert_eq!(body["error"]["current_version"], 2);
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let read: Value = get_policy(&server, &admin, "login")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["version"], 2);
    assert_eq!(read["ttl_seconds"], 100 + winners[0]);
}

#[tokio::test]
async fn a_challenge_takes_its_defaults_and_bounds_from_its_policy() {
    let server = TestServer::start().await;
    let admin = manager(&server, "acme");
    policy_ok(
        &server,
        json!({"alias": "login", "type": "token", "ttl_seconds": 120,
            "max_ttl_seconds": 600, "max_attempts": 3}),
    )
    .await;
    policy_ok(&server, json!({"alias": "app", "type": "webauthn"})).await;

    let defaults = server
        .create_ok(json!({"policy": "login", "user_id": "u-1"}))
        .await;
    assert_eq!(defaults["type"], "token", "the type comes from the policy");
    assert_eq!(ttl_of(&defaults), 120);
    assert_eq!(defaults["max_attempts"], 3);
    assert_eq!(defaults["policy"], json!({"alias": "login", "version": 1}));
    let read = server.state_of(defaults["id"].as_str().unwrap()).await;
    assert_eq!(read["policy"], json!({"alias": "login", "version": 1}));

    let narrowed = server
        .create_ok(json!({"type": "token", "policy": "login", "user_id": "u-1",
            "ttl_seconds": 600, "max_attempts": 2}))
        .await;
    assert_eq!(ttl_of(&narrowed), 600);
    assert_eq!(narrowed["max_attempts"], 2);
    let plain = server
        .create_ok(json!({"type": "token", "user_id": "u-1", "ttl_seconds": 3600}))
        .await;
    assert_eq!(plain["policy"], Value::Null);
    assert_eq!(plain["max_attempts"], 5);

    let refused: Vec<(Value, u16, &str)> = vec![
        (
            json!({"policy": "login", "user_id": "u", "ttl_seconds": 601}),
            400,
            "ttl_out_of_range",
        ),
        (
            json!({"policy": "login", "user_id": "u", "max_attempts": 4}),
            400,
            "max_attempts_out_of_range",
        ),
        (
            json!({"type": "email_otp", "policy": "login", "user_id": "u"}),
            400,
            "policy_type_mismatch",
        ),
        (
            json!({"policy": "app", "user_id": "u"}),
            409,
            "factor_not_verified",
        ),
        (
            json!({"policy": "Login!", "user_id": "u"}),
            400,
            "invalid_alias",
        ),
        (
            json!({"policy": "absent", "user_id": "u"}),
            404,
            "policy_not_found",
        ),
        (json!({"policy": 5, "user_id": "u"}), 400, "invalid_field"),
        (json!({"user_id": "u"}), 400, "invalid_field"),
    ];
    for (body, status, code) in refused {
        let response = server.create(&admin, body.clone()).await;
        assert_eq!(error_code(response).await, (status, code.into()), "{body}");
    }
}

#[tokio::test]
async fn a_live_challenge_keeps_what_it_took_from_its_policy() {
    let server = TestServer::start().await;
    let admin = manager(&server, "acme");
    policy_ok(
        &server,
        json!({"alias": "login", "type": "token", "ttl_seconds": 120, "max_attempts": 3}),
    )
    .await;
    let before = server
        .create_ok(json!({"policy": "login", "user_id": "u-1"}))
        .await;
    let id = before["id"].as_str().unwrap();
    let replaced = put_policy(
        &server,
        &admin,
        "login",
        Some("\"1\""),
        json!({"type": "token", "ttl_seconds": 30, "max_ttl_seconds": 30, "max_attempts": 1}),
    )
    .await;
    assert_eq!(replaced.status(), 200);

    let kept = server.state_of(id).await;
    assert_eq!(kept["expires_at"], before["expires_at"]);
    assert_eq!(kept["max_attempts"], 3);
    assert_eq!(kept["policy"], json!({"alias": "login", "version": 1}));
    // Still three attempts: one wrong answer does not fail it.
    let wrong = server
        .post(
            Some(&admin),
            &format!("/api/v1/challenges/{id}/answer"),
            json!({"answer_token": "w".repeat(43)}),
        )
        .await;
    let wrong: Value = wrong.json().await.unwrap();
    assert_eq!(wrong["error"]["code"], "wrong_answer");
    assert_eq!(wrong["error"]["attempts_left"], 2);

    let after = server
        .create_ok(json!({"policy": "login", "user_id": "u-1"}))
        .await;
    assert_eq!(ttl_of(&after), 30);
    assert_eq!(after["max_attempts"], 1);
    assert_eq!(after["policy"], json!({"alias": "login", "version": 2}));

    assert_eq!(
        delete_policy(&server, &admin, "login", None).await.status(),
        204
    );
    let orphan = server.state_of(id).await;
    assert_eq!(orphan["state"], "issued");
    assert_eq!(orphan["expires_at"], before["expires_at"]);
    assert_eq!(orphan["policy"], json!({"alias": "login", "version": 1}));
    let token = before["actors"][0]["answer_token"].as_str().unwrap();
    let answered = server.answer_anonymously(id, token, true).await;
    assert_eq!(answered.status(), 200, "it finishes under its own copy");
    let gone = server
        .create(&admin, json!({"policy": "login", "user_id": "u-1"}))
        .await;
    assert_eq!(error_code(gone).await, (404, "policy_not_found".into()));
}

#[tokio::test]
async fn one_active_per_user_cancels_the_older_challenge_also_after_a_restart() {
    let server = TestServer::start().await;
    policy_ok(
        &server,
        json!({"alias": "login", "type": "token", "one_active_per_user": true}),
    )
    .await;
    policy_ok(&server, json!({"alias": "other", "type": "token"})).await;
    let first = server
        .create_ok(json!({"policy": "login", "user_id": "u-1"}))
        .await;
    let first_id = first["id"].as_str().unwrap().to_string();
    let unrelated = [
        server
            .create_ok(json!({"policy": "login", "user_id": "u-2"}))
            .await,
        server
            .create_ok(json!({"policy": "other", "user_id": "u-1"}))
            .await,
        server
            .create_ok(json!({"type": "token", "user_id": "u-1"}))
            .await,
    ];
    assert_eq!(
        server.state_of(&first_id).await["state"],
        "issued",
        "other users, other policies and plain creates leave it alone"
    );

    let second = server
        .create_ok(json!({"policy": "login", "user_id": "u-1"}))
        .await;
    let second_id = second["id"].as_str().unwrap().to_string();
    assert_eq!(server.state_of(&first_id).await["state"], "cancelled");
    assert_eq!(server.state_of(&second_id).await["state"], "issued");
    for c in &unrelated {
        assert_eq!(
            server.state_of(c["id"].as_str().unwrap()).await["state"],
            "issued"
        );
    }

    let (settings, data) = server.stop().await;
    let restarted = TestServer::start_with(|s| {
        *s = settings;
        s.storage.data_dir = data.path().to_path_buf();
    })
    .await;
    let third = restarted
        .create_ok(json!({"policy": "login", "user_id": "u-1"}))
        .await;
    assert_eq!(restarted.state_of(&second_id).await["state"], "cancelled");
    assert_eq!(
        restarted.state_of(third["id"].as_str().unwrap()).await["state"],
        "issued"
    );
}

#[tokio::test]
async fn another_tenants_policy_does_not_exist_for_you() {
    let server = TestServer::start().await;
    let acme = manager(&server, "acme");
    let globex = manager(&server, "globex");
    let acme_policy = policy_ok(
        &server,
        json!({"alias": "login", "type": "token", "ttl_seconds": 60}),
    )
    .await;

    assert_eq!(
        error_code(get_policy(&server, &globex, "login").await).await,
        (404, "policy_not_found".into())
    );
    let put = put_policy(
        &server,
        &globex,
        "login",
        Some("\"1\""),
        json!({"type": "token"}),
    )
    .await;
    assert_eq!(error_code(put).await, (404, "policy_not_found".into()));
    assert_eq!(
        error_code(delete_policy(&server, &globex, "login", None).await).await,
        (404, "policy_not_found".into())
    );
    assert!(aliases(&server, &globex, "").await.0.is_empty());
    let create = server
        .create(&globex, json!({"policy": "login", "user_id": "u-1"}))
        .await;
    assert_eq!(error_code(create).await, (404, "policy_not_found".into()));

    // The same alias in another tenant is another policy.
    let own = post_policy(
        &server,
        &globex,
        json!({"alias": "login", "type": "token", "ttl_seconds": 90}),
    )
    .await;
    assert_eq!(own.status(), 201);
    let read: Value = get_policy(&server, &acme, "login")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, acme_policy);
}

#[tokio::test]
async fn each_policy_route_needs_its_scope() {
    let server = TestServer::start().await;
    policy_ok(&server, json!({"alias": "login", "type": "token"})).await;
    let scopes = [
        "challenge:policy:get",
        "challenge:policy:post",
        "challenge:policy:put",
        "challenge:policy:delete",
    ];
    let routes: [(Method, &str, Option<Value>, &str); 5] = [
        (
            Method::POST,
            "/api/v1/policies",
            Some(json!({"alias": "x", "type": "token"})),
            "challenge:policy:post",
        ),
        (
            Method::GET,
            "/api/v1/policies",
            None,
            "challenge:policy:get",
        ),
        (
            Method::GET,
            "/api/v1/policies/login",
            None,
            "challenge:policy:get",
        ),
        (
            Method::PUT,
            "/api/v1/policies/login",
            Some(json!({"type": "token"})),
            "challenge:policy:put",
        ),
        (
            Method::DELETE,
            "/api/v1/policies/login",
            None,
            "challenge:policy:delete",
        ),
    ];
    for (method, path, body, needed) in routes {
        let others: Vec<&str> = scopes.iter().copied().filter(|s| *s != needed).collect();
        let token = server.token("acme", &format!("{ALL_SCOPES} {}", others.join(" ")));
        let response = call(
            &server,
            method.clone(),
            path,
            &token,
            Some("\"1\""),
            body.clone(),
        )
        .await;
        assert_eq!(
            error_code(response).await,
            (403, "forbidden".into()),
            "{method} {path}"
        );
        let mut anonymous = server.http.request(method.clone(), server.url(path));
        if let Some(body) = &body {
            anonymous = anonymous.json(body);
        }
        let response = anonymous.send().await.unwrap();
        assert_eq!(
            error_code(response).await,
            (401, "unauthorized".into()),
            "{method} {path}"
        );
    }
    let admin = manager(&server, "acme");
    let read: Value = get_policy(&server, &admin, "login")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["version"], 1, "nothing changed");
    assert_eq!(aliases(&server, &admin, "").await.0, ["login"]);
}

#[tokio::test]
async fn the_openapi_document_describes_policies_and_configuration() {
    let server = TestServer::start().await;
    let doc: Value = server
        .http
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, methods) in [
        ("/api/v1/policies", &["get", "post"][..]),
        ("/api/v1/policies/{alias}", &["get", "put", "delete"][..]),
        ("/api/v1/configuration", &["get", "put"][..]),
    ] {
        for method in methods {
            assert!(
                doc["paths"][path][method].is_object(),
                "missing {method} {path}"
            );
        }
    }
    for schema in [
        "PolicyDto",
        "PolicySpec",
        "Templates",
        "Conditions",
        "ConfigurationDto",
        "Properties",
        "PolicyRef",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "missing schema {schema}"
        );
    }
}
