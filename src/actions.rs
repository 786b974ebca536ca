//! Runs the HTTP actions of one-time-use action challenges, off the challenge actor:
//! the actor hands one action at a time to [`ActionRunner::execute`] on a spawned task
//! and records the outcome durably before the next one starts. Each request carries an
//! `Idempotency-Key` derived from the challenge, the list and the index — the same on
//! every retry and after every restart — so "exactly once" holds for any receiver that
//! honours it: a finished action is never sent again, and an action cut short by a
//! crash is resumed with the same key.
//!
//! Retries: connection errors, timeouts and 5xx, with doubling backoff, up to
//! `actions.max_retries`; a 4xx (or any other final answer) is not retried. Redirects are
//! never followed. Response bodies are not read beyond a small bound.

use std::time::Duration;

use crate::auth::mint::ActionSigner;
use crate::challenge::kinds::action::{idempotency_key, Outcome};
use crate::config::ActionSettings;
use crate::metrics as m;
use crate::model::{ActionSet, HttpAction};
use crate::outbound::{GuardedResolver, OutboundPolicy};

/// One action to run, with who it acts for.
pub struct ActionJob {
    pub challenge_id: String,
    pub tenant: String,
    /// The answering actor's user id: the `sub` of the minted token.
    pub subject: String,
    /// The answering actor's organisation, if the challenge names one: the `org` claim.
    pub org: Option<String>,
    pub set: ActionSet,
    pub index: usize,
    pub action: HttpAction,
}

pub struct ActionRunner {
    client: reqwest::Client,
    policy: OutboundPolicy,
    signer: ActionSigner,
    max_retries: u32,
    backoff: Duration,
}

/// Most bytes of an error text kept in a challenge's action result.
const MAX_ERROR: usize = 200;

impl ActionRunner {
    pub fn new(settings: &ActionSettings, signer: ActionSigner) -> Result<Self, String> {
        let policy = OutboundPolicy {
            allow_hosts: settings.allow_hosts.clone(),
            allow_private: settings.allow_private,
        };
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the host itself, past the guarded resolver.
            .no_proxy()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .connect_timeout(Duration::from_millis(settings.timeout_ms.min(5_000)))
            .dns_resolver(GuardedResolver::new(policy.clone()))
            .user_agent(concat!("challenge-server/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("actions HTTP client: {e}"))?;
        Ok(ActionRunner {
            client,
            policy,
            signer,
            max_retries: settings.max_retries,
            backoff: Duration::from_millis(settings.backoff_ms),
        })
    }

    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    pub fn signer(&self) -> &ActionSigner {
        &self.signer
    }

    /// Runs one action to a final outcome (success, a non-retryable answer, or retries
    /// exhausted). Never panics; every failure is an outcome.
    pub async fn execute(&self, job: ActionJob) -> Outcome {
        let started = std::time::Instant::now();
        let outcome = self.attempts(&job).await;
        let result = if outcome.succeeded {
            "succeeded"
        } else {
            "failed"
        };
        metrics::counter!(m::ACTIONS, "outcome" => result).increment(1);
        metrics::histogram!(m::ACTION_SECONDS).record(started.elapsed().as_secs_f64());
        outcome
    }

    async fn attempts(&self, job: &ActionJob) -> Outcome {
        let failed = |attempts, error: String| Outcome {
            succeeded: false,
            attempts,
            status_code: None,
            last_error: Some(truncate(error)),
        };
        // The policy may have changed since the challenge was created.
        let url = match self.policy.check_url(&job.action.uri) {
            Ok(url) => url,
            Err(refused) => return failed(0, format!("refused by the outbound policy: {refused}")),
        };
        let method = match reqwest::Method::from_bytes(job.action.method.as_bytes()) {
            Ok(m) => m,
            Err(_) => return failed(0, "invalid method".into()),
        };
        let key = idempotency_key(&job.challenge_id, job.set, job.index);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut request = self
                .client
                .request(method.clone(), url.clone())
                .header("Idempotency-Key", &key)
                .header("X-Challenge-Id", &job.challenge_id);
            if !job.action.scopes.is_empty() {
                let audience = url.host_str().unwrap_or_default();
                match self.signer.sign(
                    &job.subject,
                    job.org.as_deref(),
                    &job.tenant,
                    &job.action.scopes,
                    audience,
                    &job.challenge_id,
                ) {
                    Ok(token) => request = request.bearer_auth(token),
                    Err(e) => {
                        return failed(attempts, format!("cannot sign the action token: {e}"))
                    }
                }
            }
            if let Some(ct) = &job.action.content_type {
                request = request.header(reqwest::header::CONTENT_TYPE, ct.as_ref());
            }
            if let Some(body) = &job.action.body {
                request = request.body(body.to_string());
            }
            let retryable_error = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_server_error() && attempts <= self.max_retries {
                        format!("HTTP {}", status.as_u16())
                    } else {
                        return Outcome {
                            succeeded: status.is_success(),
                            attempts,
                            status_code: Some(status.as_u16()),
                            last_error: (!status.is_success())
                                .then(|| format!("HTTP {}", status.as_u16())),
                        };
                    }
                }
                Err(e) => {
                    let text = describe(&e);
                    if attempts > self.max_retries {
                        return failed(attempts, text);
                    }
                    text
                }
            };
            tracing::debug!(challenge = %job.challenge_id, index = job.index, attempts, error = %retryable_error, "action attempt failed; retrying");
            tokio::time::sleep(self.backoff * 2u32.saturating_pow(attempts - 1)).await;
        }
    }
}

/// An error's kind and cause, without the URL's query (which may carry secrets).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else {
        "request error"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {cause}")
    }
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_ERROR {
        let mut end = MAX_ERROR;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
