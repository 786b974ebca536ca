//! The Twilio Verify face on the wire, where the SDK never goes: missing or malformed
//! credentials, repeated scalars, unknown paths and methods, accounts sharing a tenant,
//! an account configured by token hash, and a challenge created here read natively.

use reqwest::StatusCode;
use serde_json::Value;

use challenge_server::config::{Secret, TwilioAccount};

use crate::helpers::TestServer;

const ACME: &str = "AC0123456789abcdef0123456789abcdef";
const ACME_TOO: &str = "AC00000000000000000000000000000001";
const HASHED: &str = "AC00000000000000000000000000000002";

async fn start() -> TestServer {
    TestServer::start_with(|s| {
        let plain = |sid: &str, token: &str, tenant: &str| TwilioAccount {
            account_sid: sid.into(),
            auth_token: Secret::new(token),
            auth_token_sha256: String::new(),
            tenant: tenant.into(),
        };
        s.compat.twilio.accounts = vec![
            plain(ACME, "t1", "acme"),
            // A second account of the same tenant: it still sees none of the first's.
            plain(ACME_TOO, "t2", "acme"),
            TwilioAccount {
                account_sid: HASHED.into(),
                auth_token: Secret::new(""),
                auth_token_sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"t3")),
                tenant: "hashed".into(),
            },
        ];
    })
    .await
}

async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    auth: Option<(&str, &str)>,
    form: &str,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .request(method, server.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form.to_string());
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn assert_error(body: &Value, status: u16, code: u64) {
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(
        body["more_info"],
        format!("https://www.twilio.com/docs/errors/{code}")
    );
    assert!(body["message"].is_string());
}

#[actix_rt::test]
async fn calls_without_valid_basic_credentials_are_401_20003() {
    let server = start().await;
    let get = reqwest::Method::GET;
    for auth in [
        None,
        Some((ACME, "wrong")),
        Some((ACME, "")),
        Some(("ACnope", "t1")),
    ] {
        let (status, body) = call(&server, get.clone(), "/v2/Services", auth, "").await;
        assert_eq!(status, 401);
        assert_error(&body, 401, 20003);
    }
    let response = reqwest::Client::new()
        .get(server.url("/v2/Services"))
        .header("Authorization", "Basic not-base64!")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    // A token configured as its SHA-256 is accepted in plain.
    let (status, _) = call(&server, get, "/v2/Services", Some((HASHED, "t3")), "").await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn bad_forms_unknown_paths_and_methods_are_refused_and_change_nothing() {
    let server = start().await;
    let acme = Some((ACME, "t1"));
    let post = reqwest::Method::POST;
    let (status, body) = call(
        &server,
        post.clone(),
        "/v2/Services",
        acme,
        "FriendlyName=a&FriendlyName=b",
    )
    .await;
    assert_eq!(status, 400);
    assert_error(&body, 400, 60200);
    let (status, body) = call(
        &server,
        post.clone(),
        "/v2/Services",
        acme,
        "Totp.TimeStep=5&FriendlyName=a",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (_, listed) = call(&server, reqwest::Method::GET, "/v2/Services", acme, "").await;
    assert_eq!(
        listed["services"],
        serde_json::json!([]),
        "nothing was created"
    );
    let (status, body) = call(&server, reqwest::Method::GET, "/v2/Nothing", acme, "").await;
    assert_eq!(status, 404);
    assert_error(&body, 404, 20404);
    let (status, body) = call(&server, reqwest::Method::PUT, "/v2/Services", acme, "").await;
    assert_eq!(status, 405);
    assert_error(&body, 405, 20004);
}

#[actix_rt::test]
async fn accounts_of_one_tenant_do_not_see_each_others_services() {
    let server = start().await;
    let post = reqwest::Method::POST;
    let (status, created) = call(
        &server,
        post.clone(),
        "/v2/Services",
        Some((ACME, "t1")),
        "FriendlyName=Acme",
    )
    .await;
    assert_eq!(status, 201);
    let sid = created["sid"].as_str().unwrap();
    assert!(created["date_created"].as_str().unwrap().ends_with('Z'));
    let path = format!("/v2/Services/{sid}");
    let (status, body) = call(
        &server,
        reqwest::Method::GET,
        &path,
        Some((ACME_TOO, "t2")),
        "",
    )
    .await;
    assert_eq!(status, 404);
    assert_error(&body, 404, 20404);
    let (_, listed) = call(
        &server,
        reqwest::Method::GET,
        "/v2/Services",
        Some((ACME_TOO, "t2")),
        "",
    )
    .await;
    assert_eq!(listed["services"], serde_json::json!([]));
    let (status, _) = call(
        &server,
        reqwest::Method::DELETE,
        &path,
        Some((ACME_TOO, "t2")),
        "",
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(&server, reqwest::Method::GET, &path, Some((ACME, "t1")), "").await;
    assert_eq!(status, 200, "the other account's delete changed nothing");
}

#[actix_rt::test]
async fn an_account_configured_by_hash_cannot_have_webhooks() {
    let server = start().await;
    let auth = Some((HASHED, "t3"));
    let (_, created) = call(
        &server,
        reqwest::Method::POST,
        "/v2/Services",
        auth,
        "FriendlyName=H",
    )
    .await;
    let path = format!("/v2/Services/{}/Webhooks", created["sid"].as_str().unwrap());
    let form = "FriendlyName=w&EventTypes=*&WebhookUrl=https%3A%2F%2Fhooks.example%2Fx";
    let (status, body) = call(&server, reqwest::Method::POST, &path, auth, form).await;
    assert_eq!(status, 400);
    assert_error(&body, 400, 60200);
    assert!(body["message"].as_str().unwrap().contains("auth_token"));
}

#[actix_rt::test]
async fn services_entities_and_factors_survive_a_restart() {
    let server = start().await;
    let acme = Some((ACME, "t1"));
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let (_, service) = call(
        &server,
        post.clone(),
        "/v2/Services",
        acme,
        "FriendlyName=Acme&Totp.Skew=2",
    )
    .await;
    let va = service["sid"].as_str().unwrap().to_string();
    let factors = format!("/v2/Services/{va}/Entities/user-0001/Factors");
    let (status, factor) = call(
        &server,
        post,
        &factors,
        acme,
        "FriendlyName=phone&FactorType=totp",
    )
    .await;
    assert_eq!(status, 201, "{factor}");
    let secret = factor["binding"]["secret"].as_str().unwrap().to_string();
    let yf = factor["sid"].as_str().unwrap().to_string();
    let (settings, data) = server.stop().await;
    let restarted = TestServer::start_with(|s| {
        *s = settings.clone();
        s.storage.data_dir = data.path().to_path_buf();
    })
    .await;
    let (status, again) = call(
        &restarted,
        get.clone(),
        &format!("/v2/Services/{va}"),
        acme,
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(again["totp"]["skew"], 2);
    let (status, fetched) = call(
        &restarted,
        get.clone(),
        &format!("{factors}/{yf}"),
        acme,
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(fetched["config"]["skew"], 2);
    assert!(
        fetched.get("binding").is_none(),
        "the binding is shown at create only"
    );
    let (_, entities) = call(
        &restarted,
        get,
        &format!("/v2/Services/{va}/Entities"),
        acme,
        "",
    )
    .await;
    assert_eq!(entities["entities"][0]["identity"], "user-0001");
    // The seed is sealed at rest, as every factor's.
    let (_, data) = restarted.stop().await;
    for entry in std::fs::read_dir(data.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(&secret), "{} holds the seed", path.display());
        }
    }
}
