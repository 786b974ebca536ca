//! `ChallengeActor`: owns one live challenge, its expiry timer and its long-poll waiters.
//! Messages are handled one at a time, so first-answer-wins and expiry need no lock.
//!
//! Every change goes through [`ChallengeActor::persist`], in the one correct order:
//! snapshot, wait for the group commit, and only then adopt the new state — publish it,
//! reply, wake waiters, send webhooks, deliveries and actions. Meanwhile the actor handles
//! nothing else (`AtomicResponse` / `ctx.wait`), so nobody can observe a state that a
//! crash could undo, and a failed flush leaves the challenge exactly as it was.
//!
//! When the challenge ends and has no action left to run, the actor hands its final view
//! to the tenant's supervisor (which keeps it readable until retention ends) and stops.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use arc_swap::ArcSwap;
use tokio::sync::oneshot;

use super::kinds::{action, delivered, token};
use super::messages::*;
use super::state::{self, Event, Transition, Verdict};
use super::SharedServices;
use crate::actions::ActionJob;
use crate::challenge::methods as method_rules;
use crate::clock::Millis;
use crate::metrics as m;
use crate::model::{Challenge, State};
use crate::model::{DeliveryStatus, ResendMode};
use crate::store::WebhookEvent;
use crate::tenant::supervisor::Settle;
use crate::tenant::Tenant;

mod methods;

const ANONYMOUS_WINDOW_MS: Millis = 60_000;

pub struct ChallengeActor {
    challenge: View,
    /// Where readers find the last durable state without a message to this actor.
    published: Arc<ArcSwap<Challenge>>,
    services: SharedServices,
    tenant: Arc<Tenant>,
    waiters: Vec<oneshot::Sender<View>>,
    expiry: Option<SpawnHandle>,
    /// Failed anonymous answers in the current window: (window start, count).
    anonymous_failures: (Millis, u32),
    /// An action of this challenge is running on a task.
    action_running: bool,
    /// The plain secret (code or link token) of each actor of a delivery challenge, for
    /// resends: in memory only, never in a snapshot. After a restart it is gone, and a
    /// resend issues new ones.
    secrets: Option<Box<[String]>>,
    /// Counts sends; a report from a send that a resend replaced is dropped.
    delivery_generation: u32,
    /// The first messages, rendered at create; taken by the first send.
    first_messages: Option<Vec<delivered::Outgoing>>,
    /// Of a challenge that offers several methods: each method's plain secrets, kept as
    /// `secrets` is (in memory only), and its count of sends.
    method_secrets: Vec<Option<Box<[String]>>>,
    method_generations: Vec<u32>,
}

impl ChallengeActor {
    pub fn new(
        published: Arc<ArcSwap<Challenge>>,
        services: SharedServices,
        tenant: Arc<Tenant>,
    ) -> Self {
        let challenge = published.load_full();
        let methods = challenge.methods().len();
        ChallengeActor {
            method_secrets: vec![None; methods],
            method_generations: vec![0; methods],
            challenge,
            published,
            services,
            tenant,
            waiters: Vec::new(),
            expiry: None,
            anonymous_failures: (0, 0),
            action_running: false,
            secrets: None,
            delivery_generation: 0,
            first_messages: None,
        }
    }

    fn now(&self) -> Millis {
        self.services.clock.now_ms()
    }

    /// Arms the expiry timer of a live challenge. If the expiry cannot be made durable,
    /// it is tried again a second later (reads show it as expired meanwhile).
    fn arm_expiry(&mut self, ctx: &mut Context<Self>) {
        if self.challenge.life.state.is_terminal() {
            return;
        }
        let delay = until(self.now(), self.challenge.life.expires_at);
        let handle = ctx.run_later(delay, |act, ctx| {
            act.expiry = None;
            let transition = state::apply(act.challenge.life, Event::Expire, act.now());
            let commit = act.commit(transition).map(|done, act, ctx| {
                if done.is_err() && act.expiry.is_none() {
                    let handle =
                        ctx.run_later(Duration::from_secs(1), |act, ctx| act.arm_expiry(ctx));
                    act.expiry = Some(handle);
                }
            });
            ctx.wait(commit);
        });
        self.expiry = Some(handle);
    }

    /// Makes `next` the challenge's state, in the one correct order: snapshot, wait for
    /// the group commit, and only then adopt and publish it. If the write or the flush
    /// fails, nothing changes: memory keeps the previous state, and the store is given the
    /// previous snapshot back so that no later flush can persist what a caller was told
    /// failed. The caller must keep the actor from handling anything else meanwhile
    /// (`AtomicResponse` or `ctx.wait`).
    fn persist(&mut self, next: Challenge) -> ResponseActFuture<Self, Result<(), ChallengeError>> {
        self.persist_with(next, None)
    }

    /// Persists `next` with the webhook that reports it: both are written before the
    /// same flush, so a change that is durable always has its webhook on disk. The
    /// webhook is sent once they are durable; if they cannot be made durable, neither
    /// stays.
    fn persist_with(
        &mut self,
        next: Challenge,
        webhook: Option<WebhookEvent>,
    ) -> ResponseActFuture<Self, Result<(), ChallengeError>> {
        self.persist_events(next, [webhook, None])
    }

    /// [`ChallengeActor::persist_with`], with up to two events (a webhook and a push
    /// announcement) written before the same flush.
    fn persist_events(
        &mut self,
        next: Challenge,
        events: [Option<WebhookEvent>; 2],
    ) -> ResponseActFuture<Self, Result<(), ChallengeError>> {
        let store = self.services.store.clone();
        let written = store.put(&next).and_then(|()| {
            events
                .iter()
                .flatten()
                .try_for_each(|event| store.outbox().put(event))
        });
        if let Err(e) = written {
            tracing::error!(error = %e, challenge = %next.id, "snapshot write failed; change refused");
            if let Err(e) = store.put(&self.challenge) {
                tracing::error!(error = %e, challenge = %next.id, "cannot put the previous snapshot back");
            }
            for event in events.iter().flatten() {
                if let Err(e) = store.outbox().remove(&event.id) {
                    tracing::error!(error = %e, challenge = %next.id, "cannot take back the event of a refused change");
                }
            }
            return Box::pin(fut::ready(Err(ChallengeError::Store(e.to_string()))));
        }
        let next = Arc::new(next);
        Box::pin(async move { store.durable().await }.into_actor(self).map(
            move |durable, act, _| match durable {
                Ok(()) => {
                    act.challenge = next;
                    act.published.store(act.challenge.clone());
                    for event in events.into_iter().flatten() {
                        act.services.outbox.dispatch(event);
                    }
                    Ok(())
                }
                Err(e) => {
                    let store = &act.services.store;
                    if let Err(e) = store.put(&act.challenge) {
                        tracing::error!(error = %e, challenge = %act.challenge.id, "cannot put the previous snapshot back");
                    }
                    for event in events.iter().flatten() {
                        if let Err(e) = store.outbox().remove(&event.id) {
                            tracing::error!(error = %e, challenge = %act.challenge.id, "cannot take back the webhook of a refused change");
                        }
                    }
                    tracing::error!(error = %e, challenge = %act.challenge.id, "snapshot not durable; change refused");
                    Err(ChallengeError::Store(e.to_string()))
                }
            },
        ))
    }

    /// Applies a transition: persist it, then tell waiters, the calling service and the
    /// tenant, and resolve to the caller's result.
    fn commit(&mut self, t: Transition) -> ResponseActFuture<Self, Result<View, ChallengeError>> {
        self.commit_with(t, |_| {})
    }

    /// [`ChallengeActor::commit`], with what else the same snapshot holds (a method's
    /// tally) written into it by `change`.
    fn commit_with(
        &mut self,
        t: Transition,
        change: impl FnOnce(&mut Challenge),
    ) -> ResponseActFuture<Self, Result<View, ChallengeError>> {
        self.commit_announced(t, change, None)
    }

    /// [`ChallengeActor::commit_with`], with a push announcement written before the
    /// same flush (and sent once durable), if the change is made.
    fn commit_announced(
        &mut self,
        t: Transition,
        change: impl FnOnce(&mut Challenge),
        announce: Option<WebhookEvent>,
    ) -> ResponseActFuture<Self, Result<View, ChallengeError>> {
        if !t.effects.changed {
            let reply = t
                .result
                .map(|_| self.challenge.clone())
                .map_err(ChallengeError::Refused);
            return Box::pin(fut::ready(reply));
        }
        let before = self.challenge.life.state;
        let mut next: Challenge = (*self.challenge).clone();
        next.life = t.life;
        change(&mut next);
        if before == State::Issued && matches!(t.life.state, State::Verified | State::Declined) {
            if let Some(plan) = next.actions_mut() {
                // The choice is saved with the answer: a crash after the reply still runs it.
                action::choose(plan, t.life.state == State::Verified);
            }
        }
        let webhook = (next.life.state != before)
            .then(|| self.webhook(&next, "state_changed", Some(before)))
            .flatten();
        Box::pin(
            self.persist_events(next, [webhook, announce])
                .map(move |persisted, act, ctx| {
                    persisted?;
                    act.run_pending_action(ctx);
                    if act.challenge.life.state != before {
                        act.wake_waiters();
                    }
                    if t.effects.ended {
                        act.ended(ctx);
                    }
                    t.result
                        .map(|_| act.challenge.clone())
                        .map_err(ChallengeError::Refused)
                }),
        )
    }

    /// Starts the next pending action, if any and none is running. Its outcome comes
    /// back as [`ActionFinished`].
    fn run_pending_action(&mut self, ctx: &mut Context<Self>) {
        if self.action_running {
            return;
        }
        let Some(plan) = self.challenge.actions() else {
            return;
        };
        let (Some(index), Some(set)) = (action::next_pending(plan), plan.chosen) else {
            return;
        };
        let answered_by = self.challenge.life.answered_by.map(usize::from);
        let subject = answered_by
            .and_then(|i| self.challenge.actors.get(i))
            .map_or_else(
                || self.challenge.user_id.to_string(),
                |a| a.user_id.to_string(),
            );
        let org = answered_by
            .and_then(|i| plan.actor_orgs.get(i))
            .map(|o| o.to_string());
        let job = ActionJob {
            challenge_id: self.challenge.id.to_string(),
            tenant: self.challenge.tenant.to_string(),
            subject,
            org,
            set,
            index,
            action: plan.list(set)[index].clone(),
        };
        self.action_running = true;
        let runner = self.services.actions.clone();
        let me = ctx.address();
        actix::spawn(async move {
            let outcome = runner.execute(job).await;
            me.do_send(ActionFinished { index, outcome });
        });
    }

    /// Hands over the plain secrets and first messages of a just-created delivery
    /// challenge.
    pub fn with_prepared(mut self, prepared: Option<delivered::Prepared>) -> Self {
        if let Some(prepared) = prepared {
            self.secrets = Some(prepared.secrets);
            self.first_messages = Some(prepared.messages);
        }
        self
    }

    /// The kind's rules applied to a presented answer.
    fn verdict(&self, attempt: &token::Attempt) -> Result<Verdict, ChallengeError> {
        // A challenge exists only for a kind with rules; should one not, nothing matches.
        match super::kinds::of(self.challenge.kind) {
            Some(kind) => kind.judge_in(&self.services, &self.challenge, attempt, self.now()),
            None => Ok(Verdict::Unrecognized),
        }
    }

    /// Sends (again) every delivery that is pending, each on its own task.
    fn send_pending(&mut self, ctx: &mut Context<Self>) {
        if self.challenge.delivery().is_none()
            || self.secrets.is_none()
            || self.challenge.life.state != State::Issued
        {
            return;
        }
        self.delivery_generation += 1;
        let first = self.first_messages.take();
        let face = self.challenge.clone();
        let secrets = self.secrets.as_deref().unwrap_or_default();
        self.spawn_sends(ctx, &face, secrets, None, self.delivery_generation, first);
    }

    /// Sends every pending delivery of method `index`, each on its own task.
    fn send_method(&mut self, ctx: &mut Context<Self>, index: usize) {
        if self.challenge.life.state != State::Issued {
            return;
        }
        let Some(generation) = self.method_generations.get_mut(index) else {
            return;
        };
        *generation += 1;
        let generation = *generation;
        let face = method_rules::face(&self.challenge, index);
        let Some(secrets) = self.method_secrets[index].as_deref() else {
            return;
        };
        self.spawn_sends(ctx, &face, secrets, Some(index), generation, None);
    }

    /// Spawns a task per pending delivery of `face` (a challenge, or a method's face),
    /// whose reports come back as [`DeliveryReport`]s of `method` and `generation`.
    fn spawn_sends(
        &self,
        ctx: &mut Context<Self>,
        face: &Challenge,
        secrets: &[String],
        method: Option<usize>,
        generation: u32,
        first_messages: Option<Vec<delivered::Outgoing>>,
    ) {
        let Some(plan) = face.delivery() else {
            return;
        };
        let now = self.now();
        let services = &self.services;
        let max_attempts = services.delivery.max_attempts;
        let backoff = Duration::from_millis(services.delivery.backoff_ms);
        let mut first = first_messages.map(Vec::into_iter);
        for (index, actor) in plan.actors.iter().enumerate() {
            let prerendered = first.as_mut().and_then(Iterator::next);
            if actor.status != DeliveryStatus::Pending {
                continue;
            }
            let Some(secret) = secrets.get(index) else {
                continue;
            };
            let me = ctx.address();
            let rendered = match prerendered {
                Some(message) => Ok(message),
                None => delivered::render(
                    services.deliverer.templates(),
                    face,
                    plan,
                    index,
                    secret,
                    &services.base_url,
                    now,
                ),
            };
            let message = match rendered {
                Ok(message) => message,
                Err(e) => {
                    me.do_send(DeliveryReport {
                        method,
                        index,
                        generation,
                        attempt: 1,
                        outcome: Err(format!("template: {e}")),
                        last: true,
                    });
                    continue;
                }
            };
            let deliverer = services.deliverer.clone();
            actix::spawn(async move {
                for attempt in 1..=max_attempts {
                    let sent = match &message {
                        delivered::Outgoing::Email(m) => match deliverer.email() {
                            Some(t) => t.send(m).await,
                            None => Err(crate::delivery::DeliveryError::Transport(
                                "email is not configured".into(),
                            )),
                        },
                        delivered::Outgoing::Sms(m) => match deliverer.sms() {
                            Some(t) => t.send(m).await,
                            None => Err(crate::delivery::DeliveryError::Transport(
                                "SMS is not configured".into(),
                            )),
                        },
                    };
                    // A recipient that cannot take messages will not take a retry either.
                    let hopeless = matches!(&sent, Err(e) if e.kind() == "invalid_recipient" || e.kind() == "template");
                    let last = sent.is_ok() || hopeless || attempt == max_attempts;
                    me.do_send(DeliveryReport {
                        method,
                        index,
                        generation,
                        attempt,
                        outcome: sent.map_err(|e| format!("{}: {e}", e.kind())),
                        last,
                    });
                    if last {
                        break;
                    }
                    tokio::time::sleep(backoff * 2u32.saturating_pow(attempt - 1)).await;
                }
            });
        }
    }

    /// New secrets for every actor (a rotating resend, or a send after a restart lost the
    /// old ones): their hashes replace the old ones in `next`; the plain secrets are for
    /// the actor to keep once `next` is durable.
    fn rotate_secrets(&self, next: &mut Challenge) -> Option<Box<[String]>> {
        let plan = next.delivery().cloned()?;
        let mut secrets = Vec::with_capacity(next.actors.len());
        for i in 0..next.actors.len() {
            let (secret, hash) = delivered::issue_secret(&self.services.key, next, &plan);
            next.actors[i].token_hash = hash;
            secrets.push(secret);
        }
        Some(secrets.into_boxed_slice())
    }

    /// At start: a delivery challenge with sends still pending (a crash came first, or this
    /// is a revival) sends them — with new secrets if the old ones are gone.
    fn resume_deliveries(&mut self, ctx: &mut Context<Self>) {
        let pending = self
            .challenge
            .delivery()
            .is_some_and(|p| p.actors.iter().any(|a| a.status == DeliveryStatus::Pending));
        if self.challenge.life.state != State::Issued {
            return;
        }
        self.resume_method_deliveries(ctx);
        if !pending {
            return;
        }
        if self.secrets.is_some() {
            self.send_pending(ctx);
            return;
        }
        let mut next: Challenge = (*self.challenge).clone();
        let secrets = self.rotate_secrets(&mut next);
        ctx.wait(self.persist(next).map(|persisted, act, ctx| {
            if persisted.is_ok() {
                act.secrets = secrets;
                act.send_pending(ctx);
            }
        }));
    }

    /// [`ChallengeActor::resume_deliveries`] for the methods of a challenge that offers
    /// several: each method with sends pending sends them, with new secrets if its old
    /// ones are gone.
    fn resume_method_deliveries(&mut self, ctx: &mut Context<Self>) {
        let pending: Vec<usize> = (0..self.challenge.methods().len())
            .filter(|i| {
                self.challenge.methods()[*i]
                    .delivery()
                    .is_some_and(|p| p.actors.iter().any(|a| a.status == DeliveryStatus::Pending))
            })
            .collect();
        if pending.is_empty() {
            return;
        }
        let mut next: Challenge = (*self.challenge).clone();
        let mut fresh = Vec::new();
        for &i in &pending {
            if self.method_secrets[i].is_none() {
                let mut face = method_rules::face(&next, i);
                let secrets = self.rotate_secrets(&mut face);
                method_rules::absorb(&mut next, i, &face);
                fresh.push((i, secrets));
            }
        }
        if fresh.is_empty() {
            for i in pending {
                self.send_method(ctx, i);
            }
            return;
        }
        ctx.wait(self.persist(next).map(move |persisted, act, ctx| {
            if persisted.is_ok() {
                for (i, secrets) in fresh {
                    act.method_secrets[i] = secrets;
                }
                for i in pending {
                    act.send_method(ctx, i);
                }
            }
        }));
    }

    /// The webhook that tells the calling service of `c`, the state about to be
    /// persisted: `None` without a `callback_url`, or when the outbound policy refuses it.
    /// It is sent (signed, retried, from the outbox) once `c` is durable.
    fn webhook(
        &self,
        c: &Challenge,
        event: &'static str,
        previous: Option<State>,
    ) -> Option<WebhookEvent> {
        let url = c.callback_url()?;
        if self.services.actions.policy().check_url(url).is_err() {
            tracing::warn!(challenge = %c.id, "callback_url refused by the outbound policy; no webhook sent");
            return None;
        }
        let answered_by = c.life.answered_by.and_then(|i| c.actors.get(usize::from(i))).map(|a| {
            serde_json::json!({"actor_id": a.id.to_string(), "user_id": a.user_id.to_string()})
        });
        let mut body = serde_json::json!({
            "event": event,
            "id": c.id.to_string(),
            "type": c.kind.as_str(),
            "user_id": c.user_id.to_string(),
            "state": c.life.state.as_str(),
            "previous_state": previous.map(State::as_str),
            "at": crate::clock::rfc3339(self.now()),
            "answered_by": answered_by,
        });
        if let Some(won) = c.methods().iter().find(|m| {
            matches!(
                m.state,
                crate::model::MethodState::Verified | crate::model::MethodState::Declined
            )
        }) {
            body["method"] =
                serde_json::json!({"id": won.id.to_string(), "type": won.kind.as_str()});
        }
        if let Some(plan) = c.actions() {
            body["actions"] = serde_json::to_value(crate::api::native::dto::ActionsView::new(plan))
                .unwrap_or_default();
        }
        Some(self.services.outbox.event(&c.tenant, c.id, url, body))
    }

    fn wake_waiters(&mut self) {
        for waiter in self.waiters.drain(..) {
            let _ = waiter.send(self.challenge.clone());
        }
    }

    /// The challenge reached a terminal state: free its quota slot, count it, and settle
    /// once nothing is left to run.
    fn ended(&mut self, ctx: &mut Context<Self>) {
        self.tenant.release_slot();
        metrics::gauge!(m::LIVE).decrement(1.0);
        let kind = self.challenge.kind.as_str();
        match self.challenge.life.state {
            State::Expired => metrics::counter!(m::EXPIRED, "type" => kind).increment(1),
            State::Cancelled => metrics::counter!(m::CANCELLED, "type" => kind).increment(1),
            State::Completed => metrics::counter!(m::COMPLETED, "type" => kind).increment(1),
            State::Failed => metrics::counter!(m::FAILED, "type" => kind).increment(1),
            State::Verified | State::Declined | State::Issued | State::Pending => {}
        }
        if let Some(handle) = self.expiry.take() {
            ctx.cancel_future(handle);
        }
        self.settle_if_done(ctx);
    }

    /// A terminal challenge with no action left to run needs no actor: its final view
    /// goes to the supervisor, which keeps it readable until retention ends, and the actor
    /// stops. The view is handed over before the stop, so a message that finds this actor
    /// gone finds the settled view.
    fn settle_if_done(&mut self, ctx: &mut Context<Self>) {
        let pending = self
            .challenge
            .actions()
            .and_then(action::next_pending)
            .is_some();
        if !self.challenge.life.state.is_terminal() || pending || self.action_running {
            return;
        }
        self.wake_waiters();
        self.tenant.supervisor.do_send(Settle {
            view: self.challenge.clone(),
        });
        ctx.stop();
    }

    fn anonymous_limited(&mut self, now: Millis) -> bool {
        let (start, count) = &mut self.anonymous_failures;
        if now - *start >= ANONYMOUS_WINDOW_MS {
            *start = now;
            *count = 0;
        }
        *count
            >= self
                .tenant
                .config()
                .properties
                .anonymous_failures_per_challenge_per_minute
    }
}

fn until(now: Millis, at: Millis) -> Duration {
    Duration::from_millis(at.saturating_sub(now).max(0) as u64)
}

impl Actor for ChallengeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        metrics::gauge!(m::ACTORS).increment(1.0);
        self.arm_expiry(ctx);
        // After a restart or a revival: resume actions the answer chose but that never
        // finished, with the same idempotency keys; and deliveries never sent.
        self.run_pending_action(ctx);
        self.resume_deliveries(ctx);
        // A revived challenge may have ended with nothing left to run.
        self.settle_if_done(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        metrics::gauge!(m::ACTORS).decrement(1.0);
    }
}

impl Handler<Get> for ChallengeActor {
    type Result = MessageResult<Get>;

    fn handle(&mut self, _: Get, _: &mut Context<Self>) -> Self::Result {
        MessageResult(as_of(self.challenge.clone(), self.now()))
    }
}

impl Handler<Watch> for ChallengeActor {
    type Result = MessageResult<Watch>;

    fn handle(&mut self, msg: Watch, _: &mut Context<Self>) -> Self::Result {
        let current = self.challenge.life.state;
        if msg.unless.is_some_and(|s| s != current) {
            return MessageResult(Watching::Now(as_of(self.challenge.clone(), self.now())));
        }
        self.waiters.retain(|w| !w.is_closed());
        let (tx, rx) = oneshot::channel();
        self.waiters.push(tx);
        MessageResult(Watching::Later(rx))
    }
}

impl Handler<Answer> for ChallengeActor {
    type Result = AtomicResponse<Self, Result<View, ChallengeError>>;

    fn handle(&mut self, Answer(attempt): Answer, _: &mut Context<Self>) -> Self::Result {
        if attempt.method.is_some() || !self.challenge.methods().is_empty() {
            return AtomicResponse::new(self.answer_method(attempt));
        }
        let now = self.now();
        let verdict = match self.verdict(&attempt) {
            Ok(verdict) => verdict,
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        // Only failures are limited: a stranger spraying tokens must not lock out the
        // holder of the right one.
        if verdict == Verdict::Unrecognized {
            if self.anonymous_limited(now) {
                return AtomicResponse::new(Box::pin(fut::ready(Err(ChallengeError::RateLimited))));
            }
            self.anonymous_failures.1 += 1;
        }
        let transition = state::apply(self.challenge.life, Event::Answer(verdict), now);
        AtomicResponse::new(self.commit(transition))
    }
}

impl Handler<Cancel> for ChallengeActor {
    type Result = AtomicResponse<Self, Result<View, ChallengeError>>;

    fn handle(&mut self, _: Cancel, _: &mut Context<Self>) -> Self::Result {
        let transition = state::apply(self.challenge.life, Event::Cancel, self.now());
        AtomicResponse::new(self.commit(transition))
    }
}

impl Handler<Issue> for ChallengeActor {
    type Result = AtomicResponse<Self, Result<View, ChallengeError>>;

    /// `pending` → `issued`; a delivered kind's messages go out once that is durable, as
    /// a first send (held to the recipients' daily caps like one).
    fn handle(&mut self, msg: Issue, _: &mut Context<Self>) -> Self::Result {
        let now = self.now();
        let transition = state::apply(self.challenge.life, Event::Issue, now);
        let delivered = self.challenge.delivery().is_some();
        if transition.result.is_err() || !delivered {
            return AtomicResponse::new(self.commit_announced(transition, |_| {}, msg.announce));
        }
        let recipients = self
            .challenge
            .delivery()
            .into_iter()
            .flat_map(|plan| plan.actors.iter().map(|a| &*a.recipient));
        if self
            .services
            .recipients
            .take(&self.challenge.tenant, recipients, now)
            .is_none()
        {
            return AtomicResponse::new(Box::pin(fut::ready(Err(ChallengeError::RecipientLimit))));
        }
        let mark = move |next: &mut Challenge| {
            if let Some(plan) = next.delivery_mut() {
                plan.last_sent_at = Some(now);
                for actor in &mut plan.actors {
                    actor.status = DeliveryStatus::Pending;
                }
            }
        };
        AtomicResponse::new(Box::pin(self.commit_with(transition, mark).map(
            |issued, act, ctx| {
                if issued.is_ok() {
                    act.resume_deliveries(ctx);
                }
                issued
            },
        )))
    }
}

impl Handler<Retime> for ChallengeActor {
    type Result = AtomicResponse<Self, Result<View, ChallengeError>>;

    /// A new expiry for a `pending` or `issued` challenge: durable first, then the
    /// timer is armed again for it.
    fn handle(&mut self, msg: Retime, _: &mut Context<Self>) -> Self::Result {
        let ttl_ms = i64::try_from(msg.ttl_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        let expires_at = self.challenge.created_at.saturating_add(ttl_ms);
        let transition = state::apply(self.challenge.life, Event::Retime(expires_at), self.now());
        AtomicResponse::new(Box::pin(self.commit(transition).map(
            |retimed, act, ctx| {
                // One that ended in this step has no timer left (`ended`), and none is armed.
                if retimed.is_ok() {
                    if let Some(handle) = act.expiry.take() {
                        ctx.cancel_future(handle);
                    }
                    act.arm_expiry(ctx);
                }
                retimed
            },
        )))
    }
}

impl Handler<Complete> for ChallengeActor {
    type Result = AtomicResponse<Self, Result<View, ChallengeError>>;

    fn handle(&mut self, _: Complete, _: &mut Context<Self>) -> Self::Result {
        let transition = state::apply(self.challenge.life, Event::Complete, self.now());
        AtomicResponse::new(self.commit(transition))
    }
}

#[cfg(test)]
impl Handler<Crash> for ChallengeActor {
    type Result = ();

    fn handle(&mut self, _: Crash, ctx: &mut Context<Self>) {
        tracing::warn!(challenge = %self.challenge.id, "challenge actor stopping abruptly on request");
        ctx.terminate();
    }
}

impl Handler<ActionFinished> for ChallengeActor {
    type Result = ();

    fn handle(&mut self, msg: ActionFinished, ctx: &mut Context<Self>) {
        self.action_running = false;
        let mut next: Challenge = (*self.challenge).clone();
        let Some(plan) = next.actions_mut() else {
            return;
        };
        action::record(plan, msg.index, &msg.outcome, self.now());
        let finished = action::next_pending(plan).is_none();
        let webhook = finished
            .then(|| self.webhook(&next, "actions_finished", None))
            .flatten();
        ctx.wait(self.persist_with(next, webhook).map(|persisted, act, ctx| {
            if persisted.is_err() {
                // Not recorded: the action runs again (with the same idempotency key).
                ctx.run_later(Duration::from_secs(1), |act, ctx| {
                    act.run_pending_action(ctx)
                });
                return;
            }
            act.run_pending_action(ctx);
            act.settle_if_done(ctx);
        }));
    }
}

/// The secret a tenant's webhooks are signed with: derived from the server key, so it is
/// stable across restarts and differs per tenant (`GET /api/v1/webhooks/secret`).
pub fn webhook_secret(key: &super::HashKey, tenant: &crate::model::TenantId) -> String {
    hex::encode(key.hash(&format!("webhook-signing:{tenant}")).0)
}

impl Handler<Resend> for ChallengeActor {
    type Result = AtomicResponse<Self, Result<View, ChallengeError>>;

    fn handle(&mut self, _: Resend, _: &mut Context<Self>) -> Self::Result {
        let refuse = |e| AtomicResponse::new(Box::pin(fut::ready(Err(e))));
        let now = self.now();
        let Some(plan) = self.challenge.delivery() else {
            return refuse(ChallengeError::NotDeliverable);
        };
        // An expiry that is due counts even if its timer has not fired yet.
        let state = state::apply(self.challenge.life, Event::Expire, now)
            .life
            .state;
        if state != State::Issued {
            return refuse(ChallengeError::NotResendable(state));
        }
        if plan.resends >= plan.max_resends {
            return refuse(ChallengeError::ResendLimit(plan.max_resends));
        }
        if let Some(last) = plan.last_sent_at {
            let ready_at = last + i64::from(plan.resend_cooldown_seconds) * 1000;
            if now < ready_at {
                let retry_after_seconds = ((ready_at - now) as u64).div_ceil(1000);
                return refuse(ChallengeError::ResendCooldown {
                    retry_after_seconds,
                });
            }
        }
        let recipients = plan.actors.iter().map(|a| &*a.recipient);
        let tenant = &self.challenge.tenant;
        let Some(reservation) = self.services.recipients.take(tenant, recipients, now) else {
            return refuse(ChallengeError::RecipientLimit);
        };
        let rotate = plan.resend_mode == ResendMode::Rotate || self.secrets.is_none();
        let mut next: Challenge = (*self.challenge).clone();
        let secrets = if rotate {
            self.rotate_secrets(&mut next)
        } else {
            None
        };
        if let Some(plan) = next.delivery_mut() {
            plan.resends += 1;
            plan.last_sent_at = Some(now);
            for actor in &mut plan.actors {
                actor.status = DeliveryStatus::Pending;
                actor.attempts = 0;
                actor.last_error = None;
            }
        }
        AtomicResponse::new(Box::pin(self.persist(next).map(
            move |persisted, act, ctx| {
                if persisted.is_err() {
                    // Nothing is sent: the recipients' caps get their sends back.
                    act.services.recipients.refund(reservation);
                    persisted?;
                }
                if secrets.is_some() {
                    act.secrets = secrets;
                }
                act.send_pending(ctx);
                Ok(act.challenge.clone())
            },
        )))
    }
}

impl Handler<DeliveryReport> for ChallengeActor {
    type Result = ();

    fn handle(&mut self, report: DeliveryReport, _: &mut Context<Self>) {
        let current = match report.method {
            None => self.delivery_generation,
            Some(i) => self.method_generations.get(i).copied().unwrap_or_default(),
        };
        if report.generation != current {
            return;
        }
        let now = self.now();
        let mut next: Challenge = (*self.challenge).clone();
        let plan = match report.method {
            None => next.delivery_mut(),
            Some(i) => next
                .methods_mut()
                .and_then(|m| m.get_mut(i))
                .and_then(|m| m.delivery_mut()),
        };
        let Some(actor) = plan.and_then(|p| p.actors.get_mut(report.index)) else {
            return;
        };
        actor.attempts = report.attempt;
        match &report.outcome {
            Ok(()) => {
                actor.status = DeliveryStatus::Sent;
                actor.sent_at = Some(now);
                actor.last_error = None;
            }
            Err(reason) => {
                actor.last_error = Some(reason.chars().take(200).collect::<String>().into());
                actor.status = if report.last {
                    DeliveryStatus::Failed
                } else {
                    DeliveryStatus::Pending
                };
                tracing::info!(challenge = %next.id, attempt = report.attempt, error = %reason, "delivery attempt failed");
            }
        }
        // Delivery progress is news, not a promise: saved, published, flushed with the
        // next durable write.
        if let Err(e) = self.services.store.put(&next) {
            tracing::error!(error = %e, "cannot save a delivery report");
        }
        self.challenge = Arc::new(next);
        self.published.store(self.challenge.clone());
    }
}
