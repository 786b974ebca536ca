//! Getting a challenge to a person, and news of it back to the calling service: email
//! through an SMTP relay, SMS through an HTTP gateway, signed status webhooks, and the
//! templates that turn a challenge into message text ([`templates`]).

pub mod templates;

pub use templates::{
    check, EmailContent, LocaleTemplates, MessageKind, MessageVars, TemplateError, TemplateSet,
    Templates,
};
