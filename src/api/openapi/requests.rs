//! The request bodies whose shape depends on their `type`: a challenge create, a policy,
//! a factor enrollment. Each is a `oneOf` with a branch per type this server has
//! enabled, built from what that type's rules say it takes ([`Kind::accepts`],
//! [`Kind::requires`], [`Kind::policy_applies`]) and from the bounds the engine holds a
//! request to (`engine::input`, `engine::policies`, the server's `[limits]` and
//! `[actions]`). A field a type does not take is declared `null`: the server reads a
//! `null` as absent, and refuses any other value.
//!
//! What JSON Schema cannot say is left to the server, which answers 400 with a code of
//! its own: bounds a tenant's configuration or the named policy lowers
//! (`ttl_out_of_range`, `max_attempts_out_of_range`), the outbound URL policy
//! (`url_not_allowed`), allowed action scopes (`scope_not_allowed`), one field against
//! another (`templates.default_locale` naming one of `locales`), and the size of an
//! encoding (`hidden_details`, an action's `body` in bytes).

use serde_json::{json, Map, Value};

use crate::challenge::kinds::{self, DetailBounds, Field, Kind, PolicyField};
use crate::config::Settings;
use crate::engine::input::{MAX_IDEMPOTENCY_KEY, MAX_URL, MAX_USER_ID};
use crate::engine::methods::{MAX_METHODS, METHOD_TYPES};
use crate::engine::policies::{
    MAX_CONDITION_ITEMS, MAX_HTML, MAX_LOCALE, MAX_LOCALES, MAX_RESENDS,
    MAX_RESEND_COOLDOWN_SECONDS, MAX_SMS, MAX_SUBJECT, MAX_TEXT,
};
use crate::model::configuration::{
    CODE_LENGTH, MAX_ALLOWED_ACTION_SCOPES, MAX_ANONYMOUS_FAILURES, MAX_RETENTION_SECONDS,
};
use crate::model::{ChallengeType, DeliveryChannel};

/// No control character (what `check_text` refuses).
const NO_CONTROL: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// No control character but tab, line feed and carriage return (template texts).
const TEMPLATE_TEXT: &str = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$";
/// An action's scope, or an allowed one: no control character and no white space.
const SCOPE: &str = "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]*$";
/// What `check_url` takes: `http://` or `https://` (any case), a host without white
/// space or `@`, then anything.
const URL: &str =
    "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\\s\\u0000-\\u001f\\u007f-\\u009f]+([/?#][^\\u0000-\\u001f\\u007f-\\u009f]*)?$";
/// E.164, as `delivery::parse_e164` reads it.
const E164: &str = "^\\+[1-9][0-9]{7,14}$";
/// A message locale (`nl`, `nl-BE`): parts of 1–8 letters or digits.
const LOCALE: &str = "^[A-Za-z0-9]{1,8}(-[A-Za-z0-9]{1,8})*$";
/// A template's locale (`en`, `pt-BR`): a language of 2–8 letters, then subtags.
const TEMPLATE_LOCALE: &str = "^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$";
/// A DNS name of at least two labels (case is folded).
const DOMAIN: &str =
    "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$";
/// An action's method, any case.
const METHOD: &str =
    "^([Gg][Ee][Tt]|[Pp][Oo][Ss][Tt]|[Pp][Uu][Tt]|[Pp][Aa][Tt][Cc][Hh]|[Dd][Ee][Ll][Ee][Tt][Ee])$";
/// A header value `reqwest` takes: visible ASCII and space.
const HEADER_VALUE: &str = "^[\\u0020-\\u007e]*$";

/// A string of 1..=max characters without control characters.
pub fn text(max: usize) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": NO_CONTROL})
}

/// The schema, or `null` (read as absent).
fn nullable(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

fn object(properties: Map<String, Value>, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn integer(min: u64, max: u64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

pub fn url() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": MAX_URL, "pattern": URL})
}

/// The types this server creates challenges of: those with rules, and of those
/// delivered, the ones whose transport is configured (else `channel_not_configured`).
pub fn enabled_types(settings: &Settings) -> Vec<ChallengeType> {
    ChallengeType::ALL
        .into_iter()
        .filter(|t| match kinds::of(*t).map(|k| k.delivery()) {
            None => false,
            Some(None) => true,
            Some(Some(delivery)) => match delivery.channel {
                DeliveryChannel::Email => !settings.email.smtp_host.is_empty(),
                DeliveryChannel::Sms => !settings.sms.gateway_url.is_empty(),
            },
        })
        .collect()
}

fn details(bounds: DetailBounds) -> Value {
    let field = object(
        Map::from_iter([
            ("label".to_string(), text(bounds.label)),
            ("value".to_string(), text(bounds.value)),
        ]),
        &["label", "value"],
    );
    let message = text(bounds.message);
    let mut properties = Map::new();
    properties.insert(
        "fields".into(),
        json!({"type": "array", "maxItems": bounds.fields, "items": field}),
    );
    if bounds.message_required {
        properties.insert("message".into(), message);
        object(properties, &["message"])
    } else {
        properties.insert("message".into(), nullable(message));
        object(properties, &[])
    }
}

/// An actor's or a request's recipient for `channel` (the other address is not read).
fn recipient(channel: DeliveryChannel) -> Value {
    let email = json!({"type": "string", "format": "email", "minLength": 1, "maxLength": 254, "pattern": NO_CONTROL});
    let phone = json!({"type": "string", "maxLength": 16, "pattern": E164});
    let any = json!({"type": ["string", "null"]});
    match channel {
        DeliveryChannel::Email => object(
            Map::from_iter([("email".to_string(), email), ("phone".to_string(), any)]),
            &["email"],
        ),
        DeliveryChannel::Sms => object(
            Map::from_iter([("phone".to_string(), phone), ("email".to_string(), any)]),
            &["phone"],
        ),
    }
}

/// A recipient that is not read: any shape the request type allows, or `null`.
fn unread_recipient() -> Value {
    nullable(object(
        Map::from_iter([
            ("email".to_string(), json!({"type": ["string", "null"]})),
            ("phone".to_string(), json!({"type": ["string", "null"]})),
        ]),
        &[],
    ))
}

fn actors(settings: &Settings, recipient: Value) -> Value {
    let actor = object(
        Map::from_iter([
            ("user_id".to_string(), text(MAX_USER_ID)),
            ("recipient".to_string(), recipient),
        ]),
        &["user_id"],
    );
    json!({"type": "array", "minItems": 1, "maxItems": settings.limits.max_actors, "items": actor})
}

fn actions(settings: &Settings) -> Value {
    let action = object(
        Map::from_iter([
            (
                "method".to_string(),
                json!({"type": "string", "pattern": METHOD}),
            ),
            ("uri".to_string(), url()),
            (
                "content_type".to_string(),
                nullable(json!({
                    "type": "string", "minLength": 1,
                    "maxLength": kinds::action::MAX_CONTENT_TYPE, "pattern": HEADER_VALUE,
                })),
            ),
            (
                "body".to_string(),
                nullable(json!({"type": "string", "maxLength": settings.actions.max_body_bytes})),
            ),
            (
                "scopes".to_string(),
                nullable(json!({
                    "type": "array", "maxItems": kinds::action::MAX_SCOPES,
                    "items": {"type": "string", "minLength": 1, "maxLength": kinds::action::MAX_SCOPE, "pattern": SCOPE},
                })),
            ),
        ]),
        &["method", "uri"],
    );
    let list = json!({"type": "array", "maxItems": settings.actions.max_actions, "items": action});
    let mut schema = object(
        Map::from_iter([
            ("approved".to_string(), list.clone()),
            ("declined".to_string(), list),
        ]),
        &[],
    );
    schema["anyOf"] = json!([
        {"required": ["approved"], "properties": {"approved": {"minItems": 1}}},
        {"required": ["declined"], "properties": {"declined": {"minItems": 1}}},
    ]);
    schema
}

/// The fields of a create that every type takes.
fn common_create_fields(settings: &Settings, bounds: DetailBounds) -> Map<String, Value> {
    let limits = &settings.limits;
    Map::from_iter([
        ("user_id".to_string(), text(MAX_USER_ID)),
        (
            "policy".to_string(),
            nullable(json!({"type": "string", "pattern": super::ALIAS_PATTERN})),
        ),
        (
            "ttl_seconds".to_string(),
            nullable(integer(1, limits.max_ttl_seconds)),
        ),
        (
            "max_attempts".to_string(),
            nullable(integer(1, u64::from(limits.max_attempts))),
        ),
        ("details".to_string(), nullable(details(bounds))),
        (
            "hidden_details".to_string(),
            json!({"type": ["object", "null"]}),
        ),
        ("callback_url".to_string(), nullable(url())),
        ("issue".to_string(), json!({"type": ["boolean", "null"]})),
        (
            "idempotency_key".to_string(),
            nullable(text(MAX_IDEMPOTENCY_KEY)),
        ),
    ])
}

/// `POST /api/v1/challenges`: a branch per enabled type, and one for a create that
/// names a policy and no type (the policy's type then decides which fields apply).
pub fn create_challenge(settings: &Settings) -> Value {
    let mut branches = Vec::new();
    for kind in enabled_types(settings) {
        let rules = kinds::of(kind).expect("an enabled type has rules");
        branches.extend(create_branches(settings, kind, rules));
    }
    let mut from_policy = common_create_fields(settings, DetailBounds::COMMON);
    from_policy.insert("type".into(), json!({"type": "null"}));
    from_policy.insert(
        "policy".into(),
        json!({"type": "string", "pattern": super::ALIAS_PATTERN}),
    );
    from_policy.insert(
        "actors".into(),
        nullable(actors(settings, unread_recipient())),
    );
    from_policy.insert("recipient".into(), unread_recipient());
    from_policy.insert("send".into(), json!({"type": ["boolean", "null"]}));
    from_policy.insert(
        "locale".into(),
        nullable(json!({"type": "string", "maxLength": 35, "pattern": LOCALE})),
    );
    from_policy.insert("actions".into(), nullable(actions(settings)));
    from_policy.insert("factor_id".into(), json!({"type": ["string", "null"]}));
    let mut from_policy = object(from_policy, &["user_id", "policy"]);
    from_policy["title"] = json!("from a policy");
    branches.push(from_policy);
    if let Some(methods) = create_with_methods(settings) {
        branches.push(methods);
    }
    json!({
        "description": "`POST /api/v1/challenges`: the fields each type takes; a field another type takes is `null` or left out. Bounds a tenant's configuration or the named policy lowers answer 400 `ttl_out_of_range` / `max_attempts_out_of_range`.",
        "oneOf": branches,
    })
}

/// A create with `methods`: the common fields, no field of one kind, and one to
/// [`MAX_METHODS`] methods of the enabled method types, each with its own fields. That
/// each type is there once is the server's to say (400 `duplicate_method`).
fn create_with_methods(settings: &Settings) -> Option<Value> {
    let enabled = enabled_types(settings);
    let mut items = Vec::new();
    for kind in METHOD_TYPES.into_iter().filter(|k| enabled.contains(k)) {
        let rules = kinds::of(kind).expect("an enabled type has rules");
        let null = json!({"type": "null"});
        let mut fields = Map::new();
        fields.insert(
            "type".into(),
            json!({"type": "string", "const": kind.as_str()}),
        );
        let mut required = vec!["type"];
        match rules.delivery() {
            Some(delivery) => {
                fields.insert("recipient".into(), recipient(delivery.channel));
                fields.insert(
                    "locale".into(),
                    nullable(json!({"type": "string", "maxLength": 35, "pattern": LOCALE})),
                );
                required.push("recipient");
            }
            None => {
                fields.insert("recipient".into(), null.clone());
                fields.insert("locale".into(), null.clone());
            }
        }
        if rules.accepts(Field::Factor) {
            fields.insert("factor_id".into(), json!({"type": "string"}));
            required.push("factor_id");
        } else {
            fields.insert("factor_id".into(), null);
        }
        let mut item = object(fields, &required);
        item["title"] = json!(kind.as_str());
        items.push(item);
    }
    if items.is_empty() {
        return None;
    }
    let mut fields = common_create_fields(settings, DetailBounds::COMMON);
    for field in [
        "type",
        "policy",
        "actors",
        "recipient",
        "send",
        "locale",
        "actions",
        "factor_id",
    ] {
        fields.insert(field.into(), json!({"type": "null"}));
    }
    fields.insert(
        "methods".into(),
        json!({"type": "array", "minItems": 1, "maxItems": MAX_METHODS, "items": {"oneOf": items}}),
    );
    let mut branch = object(fields, &["user_id", "methods"]);
    branch["title"] = json!("several methods");
    Some(branch)
}

/// A type's branches: one, or for a delivered type two (one recipient for the request,
/// or one per actor).
fn create_branches(settings: &Settings, kind: ChallengeType, rules: &dyn Kind) -> Vec<Value> {
    let mut fields = common_create_fields(settings, rules.detail_bounds());
    fields.insert(
        "type".into(),
        json!({"type": "string", "const": kind.as_str()}),
    );
    let take = |field: Field, schema: Value| {
        if !rules.accepts(field) {
            json!({"type": "null"})
        } else if rules.requires(field) {
            schema
        } else {
            nullable(schema)
        }
    };
    fields.insert("send".into(), take(Field::Send, json!({"type": "boolean"})));
    fields.insert(
        "locale".into(),
        take(
            Field::Locale,
            json!({"type": "string", "maxLength": 35, "pattern": LOCALE}),
        ),
    );
    fields.insert("actions".into(), take(Field::Actions, actions(settings)));
    fields.insert(
        "factor_id".into(),
        take(Field::Factor, json!({"type": "string"})),
    );
    let mut required = vec!["type", "user_id"];
    let bounds = rules.detail_bounds();
    if bounds.message_required {
        fields.insert("details".into(), details(bounds));
        required.push("details");
    }
    for (field, name) in [(Field::Actions, "actions"), (Field::Factor, "factor_id")] {
        if rules.accepts(field) && rules.requires(field) {
            required.push(name);
        }
    }
    let title = kind.as_str();
    match rules.delivery() {
        None => {
            fields.insert(
                "actors".into(),
                take(Field::Actors, actors(settings, json!({"type": "null"}))),
            );
            fields.insert("recipient".into(), json!({"type": "null"}));
            let mut branch = object(fields, &required);
            branch["title"] = json!(title);
            vec![branch]
        }
        Some(delivery) => {
            // One recipient for the request: no actors, or one without a recipient.
            let mut one = fields.clone();
            let single = json!({"type": "array", "minItems": 1, "maxItems": 1, "items": object(
                Map::from_iter([
                    ("user_id".to_string(), text(MAX_USER_ID)),
                    ("recipient".to_string(), json!({"type": "null"})),
                ]),
                &["user_id"],
            )});
            one.insert("actors".into(), nullable(single));
            one.insert("recipient".into(), recipient(delivery.channel));
            let mut with_recipient = required.clone();
            with_recipient.push("recipient");
            let mut one = object(one, &with_recipient);
            one["title"] = json!(format!("{title}, one recipient"));
            // A recipient per actor: the request's own is then not read.
            let mut each = fields;
            each.insert(
                "actors".into(),
                actors(settings, recipient(delivery.channel)),
            );
            each.insert("recipient".into(), unread_recipient());
            let mut with_actors = required;
            with_actors.push("actors");
            let mut each = object(each, &with_actors);
            each["title"] = json!(format!("{title}, a recipient per actor"));
            if let Some(required) = each["properties"]["actors"]["items"]["required"].as_array_mut()
            {
                required.push(json!("recipient"));
            }
            vec![one, each]
        }
    }
}

/// A template's texts for a type delivered over `channel`: the others are `null`, and
/// at least one is given.
fn template(channel: DeliveryChannel) -> Value {
    let texts: [(&str, usize, bool); 4] = [
        ("subject", MAX_SUBJECT, channel == DeliveryChannel::Email),
        ("text", MAX_TEXT, channel == DeliveryChannel::Email),
        ("html", MAX_HTML, channel == DeliveryChannel::Email),
        ("sms", MAX_SMS, channel == DeliveryChannel::Sms),
    ];
    let mut properties = Map::new();
    let mut one_of_them = Vec::new();
    for (name, max, applies) in texts {
        if applies {
            let value = json!({"type": "string", "minLength": 1, "maxLength": max, "pattern": TEMPLATE_TEXT});
            properties.insert(name.to_string(), nullable(value.clone()));
            one_of_them.push(json!({"required": [name], "properties": {name: value}}));
        } else {
            properties.insert(name.to_string(), json!({"type": "null"}));
        }
    }
    let mut schema = object(properties, &[]);
    schema["anyOf"] = Value::Array(one_of_them);
    schema
}

fn templates(channel: DeliveryChannel) -> Value {
    object(
        Map::from_iter([
            (
                "default_locale".to_string(),
                json!({"type": "string", "description": "one of `locales`' keys"}),
            ),
            (
                "locales".to_string(),
                json!({
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": MAX_LOCALES,
                    "propertyNames": {"maxLength": MAX_LOCALE, "pattern": TEMPLATE_LOCALE},
                    "additionalProperties": template(channel),
                }),
            ),
        ]),
        &["default_locale", "locales"],
    )
}

fn conditions(channel: DeliveryChannel) -> Value {
    let list = |item: Value| {
        nullable(
            json!({"type": "array", "minItems": 1, "maxItems": MAX_CONDITION_ITEMS, "items": item}),
        )
    };
    let domains = list(json!({"type": "string", "maxLength": 253, "pattern": DOMAIN}));
    let prefixes = list(json!({"type": "string", "pattern": "^\\+[0-9]{1,4}$", "maxLength": 5}));
    let null = json!({"type": "null"});
    let (domains, prefixes) = match channel {
        DeliveryChannel::Email => (domains, null),
        DeliveryChannel::Sms => (null, prefixes),
    };
    object(
        Map::from_iter([
            ("email_domains".to_string(), domains),
            ("phone_prefixes".to_string(), prefixes),
        ]),
        &[],
    )
}

/// A policy body (`POST /api/v1/policies`, `PUT /api/v1/policies/{alias}`): a branch
/// per enabled type with the fields its policies take. `alias`: required on create,
/// optional on a replace (where it must equal the path's). What the server sets
/// (`version`, `created_at`, `updated_at`) may be sent back with any value.
pub fn policy(settings: &Settings, alias_required: bool) -> Value {
    let limits = &settings.limits;
    let mut branches = Vec::new();
    for kind in enabled_types(settings) {
        let rules = kinds::of(kind).expect("an enabled type has rules");
        let channel = rules.delivery().map(|d| d.channel);
        let take = |field: PolicyField, schema: Value| {
            if rules.policy_applies(field) {
                nullable(schema)
            } else {
                json!({"type": "null"})
            }
        };
        let mut fields = Map::from_iter([
            (
                "alias".to_string(),
                json!({"type": "string", "pattern": super::ALIAS_PATTERN}),
            ),
            (
                "type".to_string(),
                json!({"type": "string", "const": kind.as_str()}),
            ),
            (
                "ttl_seconds".to_string(),
                nullable(integer(1, limits.max_ttl_seconds)),
            ),
            (
                "max_ttl_seconds".to_string(),
                nullable(integer(1, limits.max_ttl_seconds)),
            ),
            (
                "max_attempts".to_string(),
                nullable(integer(1, u64::from(limits.max_attempts))),
            ),
            (
                "retention_seconds".to_string(),
                nullable(integer(0, MAX_RETENTION_SECONDS)),
            ),
            (
                "one_active_per_user".to_string(),
                json!({"type": "boolean"}),
            ),
            ("callback_url".to_string(), nullable(url())),
        ]);
        if !alias_required {
            fields["alias"] = nullable(fields["alias"].clone());
        }
        for server_set in ["version", "created_at", "updated_at"] {
            fields.insert(
                server_set.into(),
                json!({"description": "set by the server; ignored in a request"}),
            );
        }
        fields.insert(
            "code_length".into(),
            take(
                PolicyField::CodeLength,
                integer(
                    u64::from(*CODE_LENGTH.start()),
                    u64::from(*CODE_LENGTH.end()),
                ),
            ),
        );
        fields.insert(
            "code_alphabet".into(),
            take(
                PolicyField::CodeAlphabet,
                json!({"type": "string", "enum": ["digits", "alphanumeric"]}),
            ),
        );
        fields.insert(
            "resend_cooldown_seconds".into(),
            take(
                PolicyField::ResendCooldownSeconds,
                integer(0, MAX_RESEND_COOLDOWN_SECONDS),
            ),
        );
        fields.insert(
            "max_resends".into(),
            take(PolicyField::MaxResends, integer(0, u64::from(MAX_RESENDS))),
        );
        fields.insert(
            "resend_mode".into(),
            take(
                PolicyField::ResendMode,
                json!({"type": "string", "enum": ["same", "rotate"]}),
            ),
        );
        let (templates, conditions) = match channel {
            Some(channel) => (templates(channel), conditions(channel)),
            None => (json!({}), json!({})),
        };
        fields.insert("templates".into(), take(PolicyField::Templates, templates));
        fields.insert(
            "conditions".into(),
            take(PolicyField::Conditions, conditions),
        );
        fields.insert(
            "allowed_action_scopes".into(),
            take(
                PolicyField::ActionScopes,
                json!({
                    "type": "array", "maxItems": MAX_ALLOWED_ACTION_SCOPES,
                    "items": {"type": "string", "minLength": 1, "maxLength": kinds::action::MAX_SCOPE, "pattern": SCOPE},
                }),
            ),
        );
        let required: &[&str] = if alias_required {
            &["alias", "type"]
        } else {
            &["type"]
        };
        let mut branch = object(fields, required);
        branch["title"] = json!(kind.as_str());
        branches.push(branch);
    }
    json!({
        "description": "A policy: the fields its type takes (another type's are `null` or left out). `ttl_seconds` is at most `max_ttl_seconds`; `templates.default_locale` names one of `templates.locales`.",
        "oneOf": branches,
    })
}

/// A tenant's configuration as a PUT sends it: every property, within the server's
/// `[limits]`. A default above its own maximum (`default_ttl_seconds` over
/// `max_ttl_seconds`) answers 400 `out_of_range`.
pub fn configuration(settings: &Settings) -> Value {
    let limits = &settings.limits;
    let mut properties = Map::from_iter([
        (
            "default_ttl_seconds".to_string(),
            integer(1, limits.max_ttl_seconds),
        ),
        (
            "max_ttl_seconds".to_string(),
            integer(1, limits.max_ttl_seconds),
        ),
        (
            "default_max_attempts".to_string(),
            integer(1, u64::from(limits.max_attempts)),
        ),
        (
            "max_attempts".to_string(),
            integer(1, u64::from(limits.max_attempts)),
        ),
        (
            "default_code_length".to_string(),
            integer(
                u64::from(*CODE_LENGTH.start()),
                u64::from(*CODE_LENGTH.end()),
            ),
        ),
        (
            "retention_seconds".to_string(),
            integer(0, MAX_RETENTION_SECONDS),
        ),
        (
            "max_live_challenges".to_string(),
            integer(1, limits.max_live_challenges),
        ),
        (
            "long_poll_max_seconds".to_string(),
            integer(0, limits.long_poll_max_seconds),
        ),
        (
            "anonymous_failures_per_challenge_per_minute".to_string(),
            integer(0, u64::from(MAX_ANONYMOUS_FAILURES)),
        ),
        (
            "allowed_action_scopes".to_string(),
            json!({
                "type": "array", "maxItems": MAX_ALLOWED_ACTION_SCOPES,
                "items": {"type": "string", "minLength": 1, "maxLength": kinds::action::MAX_SCOPE, "pattern": SCOPE},
            }),
        ),
    ]);
    let mut required: Vec<String> = properties
        .keys()
        .filter(|p| *p != "allowed_action_scopes")
        .cloned()
        .collect();
    required.sort_unstable();
    for server_set in ["version", "updated_at"] {
        properties.insert(
            server_set.into(),
            json!({"description": "set by the server; ignored in a request"}),
        );
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// `POST /api/v1/users/{user_id}/factors`: a branch per factor type this server
/// enrolls, with the options that type takes (the others `null`).
pub fn enroll_factor() -> Value {
    use crate::engine::factors::{MAX_FRIENDLY_NAME, MAX_ISSUER};
    use crate::factors::FactorType;
    let null = || json!({"type": "null"});
    let mut branches = Vec::new();
    for kind in FactorType::ALL.into_iter().filter(|t| t.enabled()) {
        let totp = kind == FactorType::Totp;
        let push = kind == FactorType::Push;
        let webauthn = kind == FactorType::Webauthn;
        let option = |applies: bool, schema: Value| if applies { nullable(schema) } else { null() };
        let properties = Map::from_iter([
            (
                "type".to_string(),
                json!({"type": "string", "const": kind.as_str()}),
            ),
            (
                "friendly_name".to_string(),
                nullable(text(MAX_FRIENDLY_NAME)),
            ),
            ("issuer".to_string(), option(totp, text(MAX_ISSUER))),
            (
                "algorithm".to_string(),
                option(
                    totp,
                    json!({"type": "string", "enum": ["sha1", "sha256", "sha512"]}),
                ),
            ),
            ("digits".to_string(), option(totp, integer(6, 8))),
            ("period_seconds".to_string(), option(totp, integer(20, 60))),
            ("skew_steps".to_string(), option(totp, integer(0, 2))),
            ("relying_party_id".to_string(), option(webauthn, text(253))),
            (
                "public_key".to_string(),
                if push {
                    json!({"type": "string", "description": "base64 of the SPKI DER of a P-256 key"})
                } else {
                    null()
                },
            ),
            (
                "notification".to_string(),
                option(
                    push,
                    object(
                        Map::from_iter([(
                            "platform".to_string(),
                            json!({"type": "string", "enum": ["webhook", "none"]}),
                        )]),
                        &["platform"],
                    ),
                ),
            ),
        ]);
        let required: &[&str] = if push {
            &["type", "public_key"]
        } else {
            &["type"]
        };
        let mut branch = object(properties, required);
        branch["title"] = json!(kind.as_str());
        branches.push(branch);
    }
    json!({"description": "`POST /api/v1/users/{user_id}/factors`", "oneOf": branches})
}

/// `POST …/factors/{factor_id}/verify`: a code (TOTP) or a signature (push), not both.
pub fn verify_factor() -> Value {
    use crate::engine::input::MAX_CODE;
    let credential = || {
        json!({
            "type": ["object", "string"],
            "description": "the PublicKeyCredential navigator.credentials.create returned, as JSON (or a string of it)",
        })
    };
    let one = |given: &str, schema: Value| {
        let mut properties = Map::new();
        for name in ["code", "signature", "credential"] {
            let field = if name == given {
                schema.clone()
            } else {
                json!({"type": "null"})
            };
            properties.insert(name.to_string(), field);
        }
        object(properties, &[given])
    };
    json!({
        "description": "`POST …/factors/{factor_id}/verify`: `code` for a TOTP factor, `signature` for a push factor, `credential` for a WebAuthn factor",
        "oneOf": [
            one("code", text(MAX_CODE)),
            one("signature", text(512)),
            one("credential", credential()),
        ],
    })
}

/// `POST /api/v1/challenges/{id}/answer`: which of these a challenge takes depends on
/// its type and its actors (400 `code_required`, `actor_required`, …).
pub fn answer() -> Value {
    use crate::engine::input::MAX_CODE;
    object(
        Map::from_iter([
            (
                "answer_token".to_string(),
                json!({"type": ["string", "null"]}),
            ),
            ("allowed".to_string(), json!({"type": ["boolean", "null"]})),
            ("code".to_string(), nullable(text(MAX_CODE))),
            ("actor_id".to_string(), json!({"type": ["string", "null"]})),
            ("method_id".to_string(), json!({"type": ["string", "null"]})),
            (
                "credential".to_string(),
                json!({
                    "type": ["object", "string", "null"],
                    "description": "a `webauthn` challenge's answer: the assertion navigator.credentials.get returned, as JSON (or a string of it)",
                }),
            ),
        ]),
        &[],
    )
}
