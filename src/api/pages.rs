//! Small server-rendered answer pages: a link `GET /c/{id}?t=<answer token>` shows what
//! is being asked (the challenge's details, and for a one-time-use action what approving
//! or declining will do) with Approve and Decline buttons; the buttons are plain HTML
//! forms that `POST /c/{id}`, so the page works without JavaScript. A GET never answers
//! — mail scanners and link previews fetch links — and a used, expired or unknown link
//! gets a readable page, never a stack of JSON.
//!
//! WebAuthn needs the browser's `navigator.credentials`, so its two pages carry one
//! small script each, allowed by its nonce (no inline handlers, nothing loaded from
//! elsewhere): the answer page of a `webauthn` challenge runs `credentials.get` with the
//! challenge's request options and posts the assertion in the same form; the
//! enrollment page `GET /enroll/{factor_id}?t=<page token>` (its token is a one-time
//! capability from the enrollment response, closed once the factor is verified or its
//! registration expires) runs `credentials.create` and posts the attestation to
//! `POST /enroll/{factor_id}`. Both must be opened on the relying party's origin.
//!
//! Why the token is in the query and not the fragment: a fragment never reaches the
//! server, so a page without JavaScript could not put it in its form. The query is kept
//! from third parties instead: `Referrer-Policy: no-referrer`, no external assets (a
//! strict CSP: nothing loads but this page's own nonce'd style), `Cache-Control:
//! no-store`, and request logs record the route template, never the URL.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::error::status;
use super::{read_body, ApiError, State};
use crate::challenge::kinds::token::Attempt;
use crate::engine::Error;
use crate::model::{
    AnswerToken, Challenge, ChallengeId, DetailField, Details, State as ChallengeState,
};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/c/{id}")
            .route(web::get().to(show))
            .route(web::post().to(answer)),
    );
    cfg.service(
        web::resource("/enroll/{factor_id}")
            .route(web::get().to(show_enrollment))
            .route(web::post().to(enroll)),
    );
}

#[derive(Deserialize)]
struct LinkQuery {
    t: Option<String>,
}

#[derive(Deserialize)]
struct AnswerForm {
    t: String,
    allowed: String,
    /// `webauthn`: the assertion JSON the page's script put in.
    credential: Option<String>,
}

#[derive(Deserialize)]
struct EnrollForm {
    t: String,
    credential: String,
}

/// HTML-escapes text for element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
    hex::encode(bytes)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#1b1b1f}\
h1{font-size:1.4rem}table{border-collapse:collapse;margin:1rem 0}td{padding:.25rem .75rem .25rem 0;vertical-align:top}\
td:first-child{color:#555}form{display:inline-block;margin:1rem 1rem 0 0}button{font-size:1rem;padding:.6rem 1.4rem;\
border-radius:.4rem;border:1px solid #888;cursor:pointer}button.approve{background:#1a7f37;color:#fff;border-color:#1a7f37}\
ul.actions{color:#333}p.note{color:#555;font-size:.9rem}";

/// A whole page with the security headers every answer page carries.
fn page(status: actix_web::http::StatusCode, title: &str, body: &str) -> HttpResponse {
    scripted_page(status, title, body, None)
}

/// A page with the security headers, and `script` allowed by this response's nonce.
fn scripted_page(
    status: actix_web::http::StatusCode,
    title: &str,
    body: &str,
    script: Option<&str>,
) -> HttpResponse {
    let nonce = nonce();
    let (script_tag, script_src) = match script {
        Some(code) => (
            format!("<script nonce=\"{nonce}\">{code}</script>"),
            format!(" script-src 'nonce-{nonce}';"),
        ),
        None => (String::new(), String::new()),
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\"><title>{}</title>\
         <style nonce=\"{nonce}\">{STYLE}</style></head><body>{body}{script_tag}</body></html>",
        escape(title)
    );
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            format!(
                "default-src 'none'; style-src 'nonce-{nonce}';{script_src} form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'"
            ),
        ))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(html)
}

fn message_page(status: actix_web::http::StatusCode, title: &str, text: &str) -> HttpResponse {
    page(
        status,
        title,
        &format!("<h1>{}</h1><p>{}</p>", escape(title), escape(text)),
    )
}

/// A form body that was too large, too slow or unreadable, with the API's status.
fn body_refused(error: &ApiError) -> HttpResponse {
    message_page(
        actix_web::ResponseError::status_code(error),
        "This request could not be read",
        "Go back to the link you received and try again.",
    )
}

fn invalid_link() -> HttpResponse {
    message_page(
        status(&Error::ChallengeNotFound),
        "This link is not valid",
        "Check that you opened the whole link from the message you received.",
    )
}

/// The page for an engine error: its status from the one mapping, its words here.
/// `AnswerRejected` never gets this far (see [`answer`]).
fn error_page(error: &Error) -> HttpResponse {
    let status = status(error);
    let mut page = match error {
        Error::RateLimited { .. }
        | Error::Throttled { .. }
        | Error::QuotaExceeded(_)
        | Error::StoredQuotaExceeded(_) => {
            message_page(status, "Too many requests", "Try again in a minute.")
        }
        Error::NotReady => message_page(status, "Please try again", "The service is starting."),
        Error::StorageUnavailable | Error::Unavailable | Error::Internal => message_page(
            status,
            "Please try again",
            "Something went wrong; try again.",
        ),
        _ => return invalid_link(),
    };
    if let Some(seconds) = super::error::retry_after(error) {
        if let Ok(value) = header::HeaderValue::from_str(&seconds.to_string()) {
            page.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    page
}

fn closed(state: ChallengeState) -> HttpResponse {
    let text = match state {
        ChallengeState::Verified | ChallengeState::Completed => {
            "This request was already approved."
        }
        ChallengeState::Declined => "This request was already declined.",
        ChallengeState::Expired => "This request has expired.",
        ChallengeState::Cancelled => "This request was cancelled.",
        ChallengeState::Pending => "This request is not open yet.",
        ChallengeState::Failed | ChallengeState::Issued => {
            "This request can no longer be answered."
        }
    };
    let refusal = Error::conflict("already_answered", "the challenge was already answered");
    message_page(status(&refusal), "This link has been used", text)
}

fn details_html(c: &Challenge) -> String {
    let mut html = String::new();
    if let Some(details) = c
        .details()
        .and_then(|d| serde_json::from_str::<Details>(d).ok())
    {
        if let Some(message) = &details.message {
            html.push_str(&format!("<p>{}</p>", escape(message)));
        }
        if !details.fields.is_empty() {
            html.push_str("<table>");
            for DetailField { label, value } in &details.fields {
                html.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td></tr>",
                    escape(label),
                    escape(value)
                ));
            }
            html.push_str("</table>");
        }
    }
    if let Some(plan) = c.actions() {
        for (list, title) in [
            (&plan.approved, "Approving will"),
            (&plan.declined, "Declining will"),
        ] {
            if list.is_empty() {
                continue;
            }
            html.push_str(&format!("<p>{title}:</p><ul class=\"actions\">"));
            for a in list {
                let target = reqwest::Url::parse(&a.uri)
                    .map(|u| format!("{}{}", u.host_str().unwrap_or_default(), u.path()))
                    .unwrap_or_default();
                html.push_str(&format!(
                    "<li>{} {}</li>",
                    escape(&a.method),
                    escape(&target)
                ));
            }
            html.push_str("</ul>");
        }
    }
    html
}

/// "2026-11-22 20:34 UTC": when the link stops working, for people.
fn expires_text(ms: crate::clock::Millis) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// The per-address allowance for anonymous requests, shared with the native answers.
fn throttled(req: &HttpRequest, state: &State) -> Option<HttpResponse> {
    let ip = state.proxies.client(req);
    (!state.anonymous.allow(ip, state.engine.now_ms())).then(|| {
        error_page(&Error::RateLimited {
            retry_after_seconds: 60,
        })
    })
}

async fn show(req: HttpRequest, path: web::Path<String>, state: State) -> HttpResponse {
    if let Some(refused) = throttled(&req, &state) {
        return refused;
    }
    let query: LinkQuery =
        serde_urlencoded::from_str(req.query_string()).unwrap_or(LinkQuery { t: None });
    let (Some(id), Some(token)) = (
        ChallengeId::parse(&path),
        query.t.as_deref().and_then(AnswerToken::parse),
    ) else {
        return invalid_link();
    };
    let view = match state.engine.open(&id, &token).await {
        Ok(view) => view,
        Err(e) => return error_page(&e),
    };
    if view.life.state != ChallengeState::Issued {
        return closed(view.life.state);
    }
    if view.kind == crate::model::ChallengeType::Webauthn {
        return webauthn_answer_page(&view, &token);
    }
    let form = |allowed: bool, label: &str, class: &str| {
        format!(
            "<form method=\"post\" action=\"/c/{id}\"><input type=\"hidden\" name=\"t\" value=\"{}\">\
             <input type=\"hidden\" name=\"allowed\" value=\"{allowed}\">\
             <button type=\"submit\" class=\"{class}\">{label}</button></form>",
            escape(token.expose())
        )
    };
    let body = format!(
        "<h1>Do you approve this request?</h1>{}{}{}<p class=\"note\">This link works once and expires at {}.</p>",
        details_html(&view),
        form(true, "Approve", "approve"),
        form(false, "Decline", "decline"),
        escape(&expires_text(view.life.expires_at)),
    );
    page(actix_web::http::StatusCode::OK, "Approve or decline", &body)
}

/// Answers with the form's token. A refusal is anonymous (`AnswerRejected`); the
/// token's holder is then shown why, the challenge's state read with the token as the
/// capability — anybody else sees an invalid link.
async fn answer(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> HttpResponse {
    if let Some(refused) = throttled(&req, &state) {
        return refused;
    }
    // The API's body limit and read timeout hold here too.
    let form = match read_body(&req, payload, state.settings.server.body_limit_bytes).await {
        Ok(form) => form,
        Err(e) => return body_refused(&e),
    };
    let Ok(form) = serde_urlencoded::from_bytes::<AnswerForm>(&form) else {
        return invalid_link();
    };
    let (Some(id), Some(token)) = (ChallengeId::parse(&path), AnswerToken::parse(&form.t)) else {
        return invalid_link();
    };
    let allowed = match form.allowed.as_str() {
        "true" => true,
        "false" => false,
        _ => return invalid_link(),
    };
    let attempt = Attempt {
        token: Some(token.clone()),
        code: None,
        actor_id: None,
        allowed,
        on_behalf: false,
        device: None,
        credential: form.credential.map(serde_json::Value::String),
        method: None,
    };
    match state.engine.answer(None, &id, attempt).await {
        Ok(_) if allowed => message_page(
            actix_web::http::StatusCode::OK,
            "Approved",
            "Thank you. You can close this window.",
        ),
        Ok(_) => message_page(
            actix_web::http::StatusCode::OK,
            "Declined",
            "The request was declined. You can close this window.",
        ),
        Err(Error::AnswerRejected) => match state.engine.open(&id, &token).await {
            Ok(view) if view.life.state != ChallengeState::Issued => closed(view.life.state),
            Ok(view) if view.kind == crate::model::ChallengeType::Webauthn => not_accepted(
                actix_web::http::StatusCode::BAD_REQUEST,
                "passkey or security key",
            ),
            _ => invalid_link(),
        },
        Err(e) => error_page(&e),
    }
}

/// The WebAuthn pages' one script. It reads the options from the page's JSON data block
/// (`#options`), turns their base64url fields into bytes, runs the ceremony the form's
/// `data-mode` names (`create` or `get`) when the button is pressed, and posts the
/// credential as JSON (binary fields base64url) in the form's `credential` field.
const CEREMONY_SCRIPT: &str = r#"(() => {
const enc = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
  .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const dec = (s) => Uint8Array.from(
  atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)),
  (c) => c.charCodeAt(0));
const form = document.getElementById('ceremony');
const status = document.getElementById('status');
const ids = (list) => (list || []).map((c) => Object.assign({}, c, { id: dec(c.id) }));
document.getElementById('start').addEventListener('click', async () => {
  status.textContent = '';
  const options = JSON.parse(document.getElementById('options').textContent).publicKey;
  options.challenge = dec(options.challenge);
  try {
    let json;
    if (form.dataset.mode === 'create') {
      options.user = Object.assign({}, options.user, { id: dec(options.user.id) });
      options.excludeCredentials = ids(options.excludeCredentials);
      const c = await navigator.credentials.create({ publicKey: options });
      json = { id: c.id, rawId: enc(c.rawId), type: c.type,
        response: { clientDataJSON: enc(c.response.clientDataJSON),
          attestationObject: enc(c.response.attestationObject) },
        clientExtensionResults: c.getClientExtensionResults() };
    } else {
      options.allowCredentials = ids(options.allowCredentials);
      const c = await navigator.credentials.get({ publicKey: options });
      json = { id: c.id, rawId: enc(c.rawId), type: c.type,
        response: { clientDataJSON: enc(c.response.clientDataJSON),
          authenticatorData: enc(c.response.authenticatorData),
          signature: enc(c.response.signature),
          userHandle: c.response.userHandle ? enc(c.response.userHandle) : null },
        clientExtensionResults: c.getClientExtensionResults() };
    }
    form.elements.credential.value = JSON.stringify(json);
    form.submit();
  } catch (e) {
    status.textContent = 'Your browser did not complete it (' + e.name + '). Try again.';
  }
});
})();"#;

/// JSON for a `<script type="application/json">` data block: `<` escaped, so the text
/// can never close the element.
fn json_block(value: &serde_json::Value) -> String {
    serde_json::to_string(value)
        .unwrap_or_default()
        .replace('<', "\\u003c")
}

/// The page that runs a WebAuthn ceremony: the options as a data block, a form that
/// posts the credential to `action` with the hidden fields, and a button that starts it.
fn ceremony_page(
    title: &str,
    intro: &str,
    button: &str,
    mode: &str,
    action: &str,
    hidden: &[(&str, &str)],
    options: &serde_json::Value,
) -> HttpResponse {
    let fields: String = hidden
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
                escape(value)
            )
        })
        .collect();
    let body = format!(
        "<h1>{}</h1>{intro}<script type=\"application/json\" id=\"options\">{}</script>\
         <form id=\"ceremony\" method=\"post\" action=\"{}\" data-mode=\"{mode}\">{fields}\
         <input type=\"hidden\" name=\"credential\" value=\"\">\
         <button type=\"button\" id=\"start\" class=\"approve\">{}</button></form>\
         <p class=\"note\" id=\"status\" role=\"status\"></p>",
        escape(title),
        json_block(options),
        escape(action),
        escape(button),
    );
    scripted_page(
        actix_web::http::StatusCode::OK,
        title,
        &body,
        Some(CEREMONY_SCRIPT),
    )
}

/// The answer page of a `webauthn` challenge.
fn webauthn_answer_page(view: &Challenge, token: &AnswerToken) -> HttpResponse {
    let options = view
        .webauthn()
        .and_then(|plan| serde_json::from_str(&plan.options).ok())
        .unwrap_or_default();
    ceremony_page(
        "Confirm with your passkey",
        &format!(
            "{}<p class=\"note\">This link works once and expires at {}.</p>",
            details_html(view),
            escape(&expires_text(view.life.expires_at))
        ),
        "Use passkey or security key",
        "get",
        &format!("/c/{}", view.id),
        &[("t", token.expose()), ("allowed", "true")],
        &options,
    )
}

fn not_accepted(status_code: actix_web::http::StatusCode, what: &str) -> HttpResponse {
    message_page(
        status_code,
        "Not accepted",
        &format!("Your {what} was not accepted. Go back and try again."),
    )
}

/// The enrollment page of a WebAuthn factor, to the holder of its page token.
async fn show_enrollment(req: HttpRequest, path: web::Path<String>, state: State) -> HttpResponse {
    if let Some(refused) = throttled(&req, &state) {
        return refused;
    }
    let query: LinkQuery =
        serde_urlencoded::from_str(req.query_string()).unwrap_or(LinkQuery { t: None });
    let (Some(id), Some(token)) = (
        crate::model::FactorId::parse(&path),
        query.t.as_deref().and_then(AnswerToken::parse),
    ) else {
        return invalid_link();
    };
    let (factor, options) = match state.engine.enrollment_page(id, &token).await {
        Ok(found) => found,
        Err(e) => return error_page(&e),
    };
    ceremony_page(
        "Register a passkey",
        &format!(
            "<p>Register a passkey or security key as <strong>{}</strong> for {}.</p>",
            escape(&factor.friendly_name),
            escape(&factor.user_id)
        ),
        "Register passkey or security key",
        "create",
        &format!("/enroll/{id}"),
        &[("t", token.expose())],
        &options,
    )
}

/// Finishes an enrollment with the attestation the page's script posted.
async fn enroll(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: State,
) -> HttpResponse {
    if let Some(refused) = throttled(&req, &state) {
        return refused;
    }
    let form = match read_body(&req, payload, state.settings.server.body_limit_bytes).await {
        Ok(form) => form,
        Err(e) => return body_refused(&e),
    };
    let Ok(form) = serde_urlencoded::from_bytes::<EnrollForm>(&form) else {
        return invalid_link();
    };
    let (Some(id), Some(token)) = (
        crate::model::FactorId::parse(&path),
        AnswerToken::parse(&form.t),
    ) else {
        return invalid_link();
    };
    let credential = serde_json::Value::String(form.credential);
    match state
        .engine
        .finish_enrollment_page(id, &token, credential)
        .await
    {
        Ok(_) => message_page(
            actix_web::http::StatusCode::OK,
            "Registered",
            "Your passkey is registered. You can close this window.",
        ),
        Err(
            e @ Error::Invalid {
                code: "attestation_rejected" | "invalid_credential",
                ..
            },
        ) => not_accepted(status(&e), "passkey or security key"),
        Err(e) => error_page(&e),
    }
}
