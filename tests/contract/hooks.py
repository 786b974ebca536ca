"""The contract check's own check (loaded by schemathesis.toml).

A request the document admits may still be refused 400 for a reason JSON Schema cannot
state: a bound the tenant's configuration or the named policy lowers (and this run
changes both), one field against another, a secret that is not the right one. The
built-in `positive_data_acceptance` therefore lets 400 through (schemathesis.toml), and
this check judges every such 400 by its stable error code: it must be one listed below
for that operation, each with its reason. Any other 400 to a schema-valid request is a
document that says less than the server does, and fails the run.
"""

import re

import schemathesis
from hypothesis.internal import lambda_sources
from schemathesis.specs.openapi.checks import is_unexpected_http_status_case

# CPython before 3.11.8 can raise SystemError ("AST constructor recursion depth
# mismatch") from ast.parse deep in a recursion, which hypothesis calls only to write a
# filter's name into a strategy's repr. A name it cannot find is "<unknown>" to it; this
# makes the crash one of those instead of an error of the run.
_describe = lambda_sources._lambda_description


def _describe_or_unknown(f):
    try:
        return _describe(f)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _describe_or_unknown

# (code, pattern the message must match): refusals that depend on what the request
# cannot show.
STATEFUL_BOUNDS = [
    # The tenant's configuration (PUT /api/v1/configuration, which this run calls) and
    # the named policy lower the server-wide bounds the document gives.
    ("ttl_out_of_range", ""),
    ("max_attempts_out_of_range", ""),
]
# A create that names a policy and no type takes the fields of the policy's type, which
# the document cannot know: these refusals pass only for such a create.
FROM_POLICY = [
    ("invalid_field", r"is not used by|is required for|^actions needs"),
    ("recipient_required", ""),
    ("invalid_phone", ""),
    ("invalid_field", r"^details\.message is required for push"),
    ("field_too_long", r"^details\."),
    ("too_many_items", r"^details\.fields"),
]
# A create with methods: a push method holds the common details to the push bounds (a
# message is required, and shorter texts), one item against the common fields.
WITH_PUSH_METHOD = [
    ("invalid_field", r"^details\.message is required for push"),
    ("field_too_long", r"^details\."),
    ("too_many_items", r"^details\.fields"),
    ("field_too_long", r"^hidden_details is larger than"),
]
CREATE = STATEFUL_BOUNDS + [
    # The named policy's type must be the request's; the policy is state.
    ("policy_type_mismatch", ""),
    # The outbound policy parses a URL further than `check_url`'s pattern says.
    ("invalid_url", r"with a host"),
    # The policy's conditions name the domains and prefixes allowed.
    ("recipient_not_allowed", ""),
    # The policy's templates render with the challenge's values.
    ("template_error", ""),
    # The outbound URL policy resolves hosts and refuses private and special ranges.
    ("url_not_allowed", ""),
    # Allowed action scopes come from the server, the tenant's configuration and the policy.
    ("scope_not_allowed", ""),
    # The factor a request names is state: its type decides which challenges it answers.
    ("factor_type_mismatch", ""),
    # Sizes of an encoding, in bytes, which JSON Schema cannot measure.
    ("field_too_long", r"^hidden_details is larger than"),
    ("field_too_long", r"\.body is larger than"),
    # The body's idempotency_key and the Idempotency-Key header must agree.
    ("invalid_field", r"^idempotency_key differs from the Idempotency-Key header"),
    # An email address is judged by the mail library (lettre), a stricter reader than
    # JSON Schema's `email` format.
    ("invalid_email", ""),
    # A create with methods offers each type once: one item against another.
    ("duplicate_method", ""),
]
POLICY = [
    # ttl_seconds is at most max_ttl_seconds, one field against another.
    ("out_of_range", r"^ttl_seconds must be between 1 and"),
    # templates.default_locale names one of templates.locales.
    ("template_not_found", ""),
    # Every template text must parse as a template.
    ("template_error", ""),
]
POLICY_REPLACE = POLICY + [
    # The body's alias, when given, must be the path's.
    ("invalid_field", r"^alias cannot change"),
]
CONFIGURATION = [
    # Each default is at most its own maximum, one field against another.
    ("out_of_range", r"^default_(ttl_seconds|max_attempts) must be between 1 and"),
]
ANSWER = [
    # Whether an answer must name a method depends on the challenge (state).
    ("method_required", ""),
    # Whether a token or a code is the right one is the point of the challenge.
    ("wrong_answer", ""),
    ("answer_rejected", ""),
    ("invalid_signature", ""),
    # What answers a challenge depends on its type and its actors, which are state.
    ("unknown_actor", ""),
    ("actor_required", ""),
    ("code_required", ""),
    ("device_answer_required", ""),
    ("invalid_field", r"^code answers one-time-code challenges"),
    # A WebAuthn assertion is the JSON of a PublicKeyCredential: its binary fields,
    # client data and authenticator data are a parser's judgement, not a schema's.
    ("invalid_credential", r"navigator\.credentials\.get"),
]
VERIFY = [
    # Whether a code or a signature is right, and which one the factor (state) takes.
    ("wrong_answer", ""),
    ("invalid_field", r"^this factor is verified with"),
    # A WebAuthn attestation is the JSON of a PublicKeyCredential: a parser's judgement.
    ("invalid_credential", r"navigator\.credentials\.create"),
]
ENROLL = [
    # A public key is base64 of the SPKI DER of a P-256 key: a parser's judgement.
    ("invalid_public_key", ""),
    # The relying parties a tenant may enroll under are configuration ([webauthn]).
    ("unknown_relying_party", ""),
]
LIST = [
    # A long-poll's wait is at most the tenant's long_poll_max_seconds (configuration).
    ("invalid_query", r"wait"),
]

CONTEXTUAL = {
    "challenges_create": CREATE,
    "policies_create": POLICY,
    "policies_replace": POLICY_REPLACE,
    "configuration_replace": CONFIGURATION,
    "challenges_answer": ANSWER,
    "devices_answer": ANSWER,
    "factors_verify": VERIFY,
    "factors_enroll": ENROLL,
    "challenges_get": LIST,
}


@schemathesis.check
def refused_only_for_what_the_schema_cannot_say(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return None
    if response.status_code != 400 or is_unexpected_http_status_case(case):
        return None
    operation_id = case.operation.definition.raw.get("operationId", "")
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
    except Exception:
        raise AssertionError("a 400 without the {error: {code, message}} body")
    allowed_here = list(CONTEXTUAL.get(operation_id, []))
    body = case.body if isinstance(case.body, dict) else {}
    if operation_id == "challenges_create" and body.get("type") is None and body.get("policy"):
        allowed_here += FROM_POLICY
    methods = body.get("methods") if operation_id == "challenges_create" else None
    if isinstance(methods, list) and any(
        isinstance(m, dict) and m.get("type") == "push" for m in methods
    ):
        allowed_here += WITH_PUSH_METHOD
    for allowed, pattern in allowed_here:
        if code == allowed and re.search(pattern, message):
            return None
    raise AssertionError(
        f"schema-valid request refused 400 {code}: {message}\n"
        f"(the document admits this request; {operation_id} refuses it for a reason "
        "that is not a known contextual one, see tests/contract/hooks.py)"
    )
