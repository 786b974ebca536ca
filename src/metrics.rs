//! Prometheus recorder and metric names. Every metric this service exports is named
//! here (README.md lists them with their labels).

use std::sync::{LazyLock, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter; labels `type`.
pub const CREATED: &str = "challenges_created_total";
/// Counter; labels `type`, `outcome` (`verified`, `declined`, `wrong_answer`, `rejected`,
/// `refused`).
pub const ANSWERED: &str = "challenges_answered_total";
/// Counter; labels `type`.
pub const EXPIRED: &str = "challenges_expired_total";
/// Counter; labels `type`.
pub const CANCELLED: &str = "challenges_cancelled_total";
/// Counter; labels `type`.
pub const COMPLETED: &str = "challenges_completed_total";
/// Counter; labels `type`.
pub const FAILED: &str = "challenges_failed_total";
/// Gauge: challenges in `issued` or `verified`, all tenants.
pub const LIVE: &str = "challenges_live";
/// Gauge: challenge actors in memory (live challenges, and ended ones with actions still
/// to run).
pub const ACTORS: &str = "challenge_actors";
/// Gauge: ended challenges kept readable, without an actor, until their retention ends.
pub const SETTLED: &str = "challenges_settled";
/// Counter: ended challenges deleted at the end of their retention.
pub const RETIRED: &str = "challenges_retired_total";
/// Gauge: long-poll reads waiting for a change.
pub const LONG_POLLS: &str = "long_polls_waiting";
/// Histogram: an answer request from arrival to durable reply; labels `outcome`.
pub const ANSWER_SECONDS: &str = "challenge_answer_duration_seconds";
/// Histogram; labels `face`, `method`, `route`, `status`.
pub const HTTP_SECONDS: &str = "http_request_duration_seconds";
/// Histogram: one group-commit flush (a log append and its sync).
pub const FLUSH_SECONDS: &str = "snapshot_flush_duration_seconds";
/// Histogram: one checkpoint (a sled flush, after which closed log segments are deleted).
pub const CHECKPOINT_SECONDS: &str = "snapshot_checkpoint_duration_seconds";
/// Histogram: writers made durable by one flush.
pub const FLUSH_BATCH: &str = "snapshot_flush_batch_size";
/// Counter: one-time-use actions run to a final outcome; labels `outcome`
/// (`succeeded`, `failed`).
pub const ACTIONS: &str = "challenge_actions_total";
/// Histogram: one action from first attempt to final outcome, retries included.
pub const ACTION_SECONDS: &str = "challenge_action_duration_seconds";
/// Counter: messages handed to a transport; labels `channel` (`email`, `sms`, `webhook`),
/// `outcome` (`sent` or a delivery error kind: `invalid_recipient`, `transport`,
/// `rejected`, `timeout`, `template`). A webhook counts once, however many attempts.
pub const DELIVERIES: &str = "deliveries_total";
/// Histogram: one send from start to outcome, a webhook's retries and waits included;
/// labels `channel`.
pub const DELIVERY_SECONDS: &str = "delivery_duration_seconds";
/// Gauge: webhooks in the outbox, not yet delivered or dead-lettered.
pub const WEBHOOKS_PENDING: &str = "webhooks_pending";
/// Counter: webhooks that gave up after their last attempt (or a final refusal) and were
/// dead-lettered.
pub const WEBHOOKS_DEAD_LETTERED: &str = "webhooks_dead_lettered_total";
/// Gauge: dead-lettered webhooks kept in the data directory (the newest 10,000).
pub const WEBHOOK_DEAD_LETTERS: &str = "webhook_dead_letters";
/// Counter: factors enrolled; labels `type`.
pub const FACTORS_ENROLLED: &str = "factors_enrolled_total";
/// Counter: codes checked against an enrolled factor, at enrollment and in challenges;
/// labels `type`, `outcome` (`verified`, `wrong_answer`; a replay is a `wrong_answer`).
pub const FACTOR_VERIFICATIONS: &str = "factor_verifications_total";
/// Counter: TOTP codes refused because their time step was used already.
pub const TOTP_REPLAYS: &str = "totp_replays_refused_total";
/// Gauge: seconds the restore at start took.
pub const RESTORE_SECONDS: &str = "restore_duration_seconds";

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process-wide recorder once and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("valid buckets")
                .set_buckets_for_metric(Matcher::Full(FLUSH_BATCH.into()), BATCH_BUCKETS)
                .expect("valid buckets")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            // Histogram samples wait in the recorder until they are folded into their
            // buckets: on a scrape, and here, so that a server nobody scrapes does not
            // keep every sample it ever took.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                })
                .expect("start the metrics upkeep thread");
            handle
        })
        .clone()
}

/// The `method` label: a fixed string per method, so labels never allocate.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Every route the server registers, by its template: the values of the `route` label.
/// Written out because the label is picked before the router runs, for every request,
/// without allocating; the tests hold it to the router (each template routes to
/// exactly itself) and to the OpenAPI document (each documented path is here).
pub const ROUTES: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/.well-known/jwks.json",
    "/c/{id}",
    "/enroll/{factor_id}",
    "/api/v1/challenges",
    "/api/v1/challenges/{id}",
    "/api/v1/challenges/{id}/answer",
    "/api/v1/challenges/{id}/complete",
    "/api/v1/challenges/{id}/resend",
    "/api/v1/challenges/{id}/methods/{method_id}/start",
    "/api/v1/challenges/{id}/issue",
    "/api/v1/policies",
    "/api/v1/policies/{alias}",
    "/api/v1/webhooks/secret",
    "/api/v1/configuration",
    "/api/v1/users/{user_id}/factors",
    "/api/v1/users/{user_id}/factors/{factor_id}",
    "/api/v1/users/{user_id}/factors/{factor_id}/verify",
    "/api/v1/devices/challenges",
    "/api/v1/devices/challenges/{id}/answer",
    "/v2/Services",
    "/v2/Services/{service}",
    "/v2/Services/{service}/Entities",
    "/v2/Services/{service}/Entities/{identity}",
    "/v2/Services/{service}/Entities/{identity}/Factors",
    "/v2/Services/{service}/Entities/{identity}/Factors/{factor}",
    "/v2/Services/{service}/Entities/{identity}/Factors/{factor}/Challenges",
    "/v2/Services/{service}/Entities/{identity}/Factors/{factor}/Challenges/{challenge}",
    "/v2/Services/{service}/Entities/{identity}/Challenges",
    "/v2/Services/{service}/Entities/{identity}/Challenges/{challenge}",
    "/v2/Services/{service}/Entities/{identity}/Challenges/{challenge}/Notifications",
    "/v2/Services/{service}/AccessTokens",
    "/v2/Services/{service}/Webhooks",
    "/v2/Services/{service}/Webhooks/{webhook}",
    "/compat/acs/v1/challenges",
    "/compat/acs/v1/challenges/{id}",
    "/compat/acs/v1/challenges/{id}/answer",
    "/compat/acs/v1/challenges/{id}/complete",
    "/compat/acs/v1/challenges/{id}/resend",
    "/compat/acs/v1/policies",
    "/compat/acs/v1/policies/{alias}",
    "/compat/acs/v1/configuration",
    "/v1/challenges",
    "/v1/challenges/one_time_use_actions",
    "/v1/challenges/{challenge_id}",
    "/v1/challenges/{challenge_id}/answers",
    "/v1/challenge_enrollment/totp",
    "/v1/challenge_enrollment/totp/{totp_id}",
    "/v1/challenge_enrollment/webauthn",
    "/v1/challenge_enrollment/webauthn/{webauthn_id}",
    "/auth/authenticatorTypes",
    "/auth/challenges",
    "/auth/challengeRequired",
    "/auth/challenges/{challengeId}",
    "/auth/challenges/{challengeId}/authenticators/{authenticatorId}",
    "/auth/challenges/{challengeId}/authenticators/{authenticatorId}/starts",
    "/auth/challenges/{challengeId}/authenticators/{authenticatorId}/verifications",
    "/auth/challenges/{challengeId}/redemptions",
];

/// The `face` label: which API a route belongs to — `native` (`/api/v1`), `twilio`
/// (`/v2`), `acs` (`/compat/acs/v1`), `agilicus` (`/v1`), `apiture` (`/auth`), `pages` (the answer pages),
/// `ops` (health, metrics, documents) — or
/// `unmatched` with the route.
pub fn face_label(route: &str) -> &'static str {
    if route == "unmatched" {
        "unmatched"
    } else if route.starts_with("/api/v1/") {
        "native"
    } else if route.starts_with("/v2/") {
        "twilio"
    } else if route.starts_with("/compat/acs/") {
        "acs"
    } else if route.starts_with("/v1/") {
        "agilicus"
    } else if route.starts_with("/auth/") {
        "apiture"
    } else if route.starts_with("/c/") || route.starts_with("/enroll/") {
        "pages"
    } else {
        "ops"
    }
}

/// The `route` label: the template in [`ROUTES`] that `path` matches (a `{…}` segment
/// matches any one non-empty segment); anything else is `unmatched`, so the label set
/// stays bounded.
pub fn route_label(path: &str) -> &'static str {
    /// The most segments a template has; a longer path matches none.
    const MAX_SEGMENTS: usize = 12;
    static TEMPLATES: LazyLock<Vec<Template>> =
        LazyLock::new(|| ROUTES.iter().copied().map(Template::parse).collect());
    // The path is split once; each template of as many segments is compared to it.
    let mut segments = [""; MAX_SEGMENTS];
    let mut count = 0;
    for segment in path.split('/') {
        if count == MAX_SEGMENTS {
            return "unmatched";
        }
        segments[count] = segment;
        count += 1;
    }
    let segments = &segments[..count];
    TEMPLATES
        .iter()
        .find(|template| template.matches(segments))
        .map_or("unmatched", |template| template.route)
}

/// A route template split into its segments: `None` is a `{…}` one.
struct Template {
    route: &'static str,
    segments: Vec<Option<&'static str>>,
}

impl Template {
    fn parse(route: &'static str) -> Self {
        let segments = route
            .split('/')
            .map(|s| (!s.starts_with('{')).then_some(s))
            .collect();
        Template { route, segments }
    }

    fn matches(&self, path: &[&str]) -> bool {
        self.segments.len() == path.len()
            && self
                .segments
                .iter()
                .zip(path)
                .all(|(template, segment)| match template {
                    Some(fixed) => fixed == segment,
                    None => !segment.is_empty(),
                })
    }
}

/// The `status` label without formatting a number per request.
pub fn status_label(status: actix_web::http::StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        412 => "412",
        413 => "413",
        415 => "415",
        428 => "428",
        429 => "429",
        500 => "500",
        503 => "503",
        s if s < 300 => "2xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A concrete path for a template: each `{…}` segment filled in.
    fn example(template: &str) -> String {
        template
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "x1"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn route_labels_are_templates() {
        assert_eq!(route_label("/api/v1/challenges"), "/api/v1/challenges");
        assert_eq!(
            route_label("/api/v1/challenges/ch_x"),
            "/api/v1/challenges/{id}"
        );
        assert_eq!(
            route_label("/api/v1/challenges/ch_x/answer"),
            "/api/v1/challenges/{id}/answer"
        );
        assert_eq!(route_label("/api/v1/challenges/ch_x/answer/x"), "unmatched");
        assert_eq!(route_label("/api/v1/challenges/ch_x/cancel"), "unmatched");
        assert_eq!(route_label("/c/"), "unmatched");
        assert_eq!(route_label("/healthz"), "/healthz");
        assert_eq!(route_label("/healthz/"), "unmatched");
        assert_eq!(route_label("/nope"), "unmatched");
        assert_eq!(face_label(route_label("/v2/Services/VA1")), "twilio");
        assert_eq!(face_label(route_label("/api/v1/challenges")), "native");
        assert_eq!(
            face_label(route_label("/compat/acs/v1/challenges/ch_x/answer")),
            "acs"
        );
        assert_eq!(
            face_label(route_label("/v1/challenges/ch_x/answers")),
            "agilicus"
        );
        assert_eq!(
            route_label("/v1/challenges/one_time_use_actions"),
            "/v1/challenges/one_time_use_actions"
        );
        assert_eq!(face_label(route_label("/auth/challenges/x")), "apiture");
        assert_eq!(face_label(route_label("/c/x")), "pages");
        assert_eq!(face_label(route_label("/enroll/fac_x")), "pages");
        assert_eq!(face_label(route_label("/healthz")), "ops");
        assert_eq!(face_label(route_label("/nope")), "unmatched");
        for template in ROUTES {
            assert_eq!(route_label(&example(template)), *template);
        }
    }

    #[test]
    fn every_documented_path_has_its_route_label() {
        use utoipa::OpenApi;
        let doc = crate::api::ops::ApiDoc::openapi();
        for path in doc.paths.paths.keys() {
            assert!(ROUTES.contains(&path.as_str()), "{path} is not in ROUTES");
        }
    }

    /// The router's own template for each entry (`HttpRequest::match_pattern`) is the
    /// entry itself, so every label names a route that exists, spelled as registered.
    #[actix_web::test]
    async fn every_route_label_is_a_registered_route() {
        use actix_web::http::header::{HeaderName, HeaderValue};
        use actix_web::{dev::Service, test, App};
        const PATTERN: HeaderName = HeaderName::from_static("x-pattern");
        let app = test::init_service(App::new().configure(crate::api::routes).wrap_fn(
            |req, srv| {
                let pattern = req.match_pattern().unwrap_or_else(|| "none".into());
                let response = srv.call(req);
                async move {
                    let mut response = response.await?;
                    let value = HeaderValue::from_str(&pattern).unwrap();
                    response.headers_mut().insert(PATTERN, value);
                    Ok(response)
                }
            },
        ))
        .await;
        for template in ROUTES {
            let request = test::TestRequest::get()
                .uri(&example(template))
                .to_request();
            let response = test::call_service(&app, request).await;
            assert_eq!(response.headers().get(&PATTERN).unwrap(), *template);
        }
    }
}
