//! Scopes and what they grant (see `spec/native-api.md`). A token's unknown scopes are
//! ignored, never an error.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Scope {
    /// Create challenges.
    Post = 1 << 0,
    /// Read one, list, long-poll.
    Get = 1 << 1,
    /// Cancel.
    Delete = 1 << 2,
    /// Answer on a user's behalf.
    Answer = 1 << 3,
    /// Resend a delivery.
    Resend = 1 << 4,
    /// Complete a verified challenge.
    Complete = 1 << 5,
    PolicyGet = 1 << 6,
    PolicyPost = 1 << 7,
    PolicyPut = 1 << 8,
    PolicyDelete = 1 << 9,
    ConfigurationGet = 1 << 10,
    ConfigurationPut = 1 << 11,
    /// Read a user's enrolled factors.
    EnrollmentGet = 1 << 12,
    /// Enroll a factor and verify it.
    EnrollmentPost = 1 << 13,
    /// Delete a factor.
    EnrollmentDelete = 1 << 14,
    /// Read the secret the tenant's webhooks are signed with.
    WebhookGet = 1 << 15,
    /// Read `/metrics`, when `metrics.require_scope` is set.
    MetricsGet = 1 << 16,
}

impl Scope {
    pub const ALL: [Scope; 17] = [
        Scope::Post,
        Scope::Get,
        Scope::Delete,
        Scope::Answer,
        Scope::Resend,
        Scope::Complete,
        Scope::PolicyGet,
        Scope::PolicyPost,
        Scope::PolicyPut,
        Scope::PolicyDelete,
        Scope::ConfigurationGet,
        Scope::ConfigurationPut,
        Scope::EnrollmentGet,
        Scope::EnrollmentPost,
        Scope::EnrollmentDelete,
        Scope::WebhookGet,
        Scope::MetricsGet,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Post => "challenge:post",
            Scope::Get => "challenge:get",
            Scope::Delete => "challenge:delete",
            Scope::Answer => "challenge:answer",
            Scope::Resend => "challenge:resend",
            Scope::Complete => "challenge:complete",
            Scope::PolicyGet => "challenge:policy:get",
            Scope::PolicyPost => "challenge:policy:post",
            Scope::PolicyPut => "challenge:policy:put",
            Scope::PolicyDelete => "challenge:policy:delete",
            Scope::ConfigurationGet => "challenge:configuration:get",
            Scope::ConfigurationPut => "challenge:configuration:put",
            Scope::EnrollmentGet => "challenge:enrollment:get",
            Scope::EnrollmentPost => "challenge:enrollment:post",
            Scope::EnrollmentDelete => "challenge:enrollment:delete",
            Scope::WebhookGet => "challenge:webhook:get",
            Scope::MetricsGet => "challenge:metrics:get",
        }
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u32);

impl Scopes {
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope as u32 != 0
    }
    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope as u32;
    }
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Scopes {
        let mut scopes = Scopes::default();
        for scope in names.into_iter().filter_map(Scope::parse) {
            scopes.insert(scope);
        }
        scopes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_ignored() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.name()), Some(s));
        }
        let set = Scopes::from_names("challenge:get openid challenge:answer".split(' '));
        assert!(set.contains(Scope::Get) && set.contains(Scope::Answer));
        assert!(!set.contains(Scope::Post));
    }
}
