//! Webhook deliveries of the Twilio face: for each enabled Webhook of the service whose
//! `event_types` take the event (`*` takes all), a form-encoded POST signed with
//! `X-Twilio-Signature` under the account's auth token, sent through the engine's
//! durable outbox (so it is retried, and survives a restart once queued). The event is
//! queued right after the change it reports is durable; a crash between the two loses
//! that one event.

use super::dto::WebhookRecord;
use super::{sid, Account, MAX_LISTED, WEBHOOKS};
use crate::api::State;

/// Queues `event_type` with `fields` (beside `uuid`, `type`, `account_sid`,
/// `service_sid`) to the service's webhooks that take it. A failure to queue is logged:
/// the change it reports stands.
pub async fn send(
    state: &State,
    account: &Account,
    service_sid: &str,
    event_type: &str,
    subject: [u8; 16],
    fields: &[(&str, String)],
) {
    if account.auth_token.is_none() {
        return;
    }
    let listed = state
        .engine
        .records(
            &account.principal,
            WEBHOOKS,
            format!("{service_sid}/"),
            None,
            MAX_LISTED,
        )
        .await;
    let hooks = match listed {
        Ok((hooks, _)) => hooks,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the service's webhooks; event not sent");
            return;
        }
    };
    for (_, document) in hooks {
        let Ok(hook) = serde_json::from_value::<WebhookRecord>(document) else {
            continue;
        };
        let takes = hook.status == "enabled"
            && hook.event_types.iter().any(|t| t == "*" || t == event_type);
        if !takes {
            continue;
        }
        let mut body = url::form_urlencoded::Serializer::new(String::new());
        body.append_pair("uuid", &sid::random("EV")[2..]);
        body.append_pair("type", event_type);
        body.append_pair("account_sid", &account.sid);
        body.append_pair("service_sid", service_sid);
        for (name, value) in fields {
            body.append_pair(name, value);
        }
        let sent = state
            .engine
            .send_form_webhook(
                &account.principal,
                subject,
                &hook.webhook_url,
                body.finish(),
                &account.sid,
            )
            .await;
        if let Err(e) = sent {
            tracing::error!(error = %e, webhook = %hook.sid, "cannot queue a webhook event");
        }
    }
}
