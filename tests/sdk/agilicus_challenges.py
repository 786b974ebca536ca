"""Drives the real `agilicus` SDK (tests/sdk/requirements.txt) against a running
challenge-server, pointed at it with `Configuration(host=…)`, unchanged.

Environment: BASE (http://127.0.0.1:PORT, also the server's public_base_url), TOKEN (a
bearer token of tenant A with challenge:post and the enrollment scopes), READ_ONLY (a
token of tenant A with challenge:get only), ACTION_SCOPE (a scope actions may ask for).
Exits 0 and prints "agilicus sdk: ok" when every check passed.
"""

import base64
import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pyotp
from cryptography.hazmat.primitives.asymmetric import ec

import agilicus  # noqa: F401  (puts its bundled `agilicus_api` package on the path)
from agilicus_api import ApiClient, Configuration
from agilicus_api.api.challenges_api import ChallengesApi
from agilicus_api.exceptions import ApiException, NotFoundException
from agilicus_api.model.challenge import Challenge
from agilicus_api.model.challenge_actor import ChallengeActor
from agilicus_api.model.challenge_endpoint import ChallengeEndpoint
from agilicus_api.model.challenge_spec import ChallengeSpec
from agilicus_api.model.http_challenge_action import HTTPChallengeAction
from agilicus_api.model.one_time_use_action_challenge import (
    OneTimeUseActionChallenge,
)
from agilicus_api.model.one_time_use_action_challenge_spec import (
    OneTimeUseActionChallengeSpec,
)
from agilicus_api.model.token_scope import TokenScope
from agilicus_api.model.totp_enrollment import TOTPEnrollment
from agilicus_api.model.totp_enrollment_answer import TOTPEnrollmentAnswer
from agilicus_api.model.totp_enrollment_spec import TOTPEnrollmentSpec
from agilicus_api.model.web_auth_n_enrollment import WebAuthNEnrollment
from agilicus_api.model.web_auth_n_enrollment_answer import WebAuthNEnrollmentAnswer
from agilicus_api.model.web_auth_n_enrollment_spec import WebAuthNEnrollmentSpec

BASE = os.environ["BASE"].rstrip("/")
TOKEN = os.environ["TOKEN"]
READ_ONLY = os.environ["READ_ONLY"]
ACTION_SCOPE = os.environ["ACTION_SCOPE"]
RP_ID = os.environ["RP_ID"]
RP_ORIGIN = os.environ["RP_ORIGIN"]


def api(token=None):
    config = Configuration(host=BASE)
    if token is not None:
        config.access_token = token
    return ChallengesApi(ApiClient(config))


def refused(call, status):
    try:
        call()
    except ApiException as e:
        assert e.status == status, (e.status, e.body)
        return json.loads(e.body) if e.body else None
    raise AssertionError(f"expected HTTP {status}")


def raw(method, path, body=None, token=None):
    """A request the SDK would not make (bad JSON, a GET of an answer URI)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = path if path.startswith("http") else BASE + path
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, json.loads(text) if text else None


def spec(user, kind, **extra):
    """A challenge spec, sent now unless `send_now` says otherwise (its default is false)."""
    extra.setdefault("send_now", True)
    return Challenge._from_openapi_data(
        spec=ChallengeSpec._from_openapi_data(user_id=user, challenge_types=[kind], **extra)
    )


def seconds_of(rfc3339):
    """Seconds since the epoch of a native RFC 3339 time (UTC, `Z`)."""
    from datetime import datetime

    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def eventually(check, seconds=20):
    deadline = time.time() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.time() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


class Receiver(BaseHTTPRequestHandler):
    """Keeps every action request sent to it."""

    seen = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Receiver.seen.append(
            (self.path, self.headers.get("Authorization"), body.decode())
        )
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def code_challenges(bearer, anonymous):
    created = bearer.create_challenge(
        spec("alice", "code", answer_data={"secret": "s3cr3t"}, origin="login")
    )
    cid = created.metadata.id
    code = created.status.code
    assert created.status.state == "issued", created.status
    assert 1 <= len(code) <= 40 and code.isalnum(), code
    assert created.spec.user_id == "alice"

    # Read without a token: no code, and never the answer data.
    got = anonymous.get_challenge(cid)
    assert got.status.state == "issued"
    assert "code" not in got.status
    status, body = raw("GET", f"/v1/challenges/{cid}")
    assert status == 200 and "s3cr3t" not in json.dumps(body), body
    assert "answer_data" not in body["spec"] and "code" not in body["status"], body

    # Wrong answers: 400 with nothing more; the wrong type, the wrong user alike.
    refused(lambda: anonymous.get_answer(cid, "0" * 40, True, "code"), 400)
    refused(lambda: anonymous.get_answer(cid, code, True, "totp"), 400)
    refused(lambda: anonymous.get_answer(cid, code, True, "code", challenge_uid="bob"), 400)
    assert anonymous.get_challenge(cid).status.state == "issued"

    answer = anonymous.get_answer(cid, code, True, "code", challenge_uid="alice")
    assert answer.spec.answer == code
    assert answer.spec.challenge_id == cid
    assert answer.spec.answer_data["secret"] == "s3cr3t", answer.spec
    passed = anonymous.get_challenge(cid)
    assert passed.status.state == "challenge_passed"
    assert "answered_at" in passed.status
    # One answer ends it: the right code again is refused, and the data is gone.
    refused(lambda: anonymous.get_answer(cid, code, True, "code"), 400)

    # allowed=False with the right code declines; no answer data for a refusal.
    declined = bearer.create_challenge(spec("alice", "code", answer_data={"k": "v"}))
    answer = anonymous.get_answer(
        declined.metadata.id, declined.status.code, False, "code"
    )
    assert "answer_data" not in answer.spec
    assert anonymous.get_challenge(declined.metadata.id).status.state == "challenge_declined"

    # Replace: mutable fields change, user_id never does.
    live = bearer.create_challenge(spec("carol", "code"))
    lid = live.metadata.id
    changed = anonymous.replace_challenge(
        lid,
        Challenge._from_openapi_data(
            spec=ChallengeSpec._from_openapi_data(
                user_id="mallory",
                challenge_types=["code"],
                send_now=True,
                response_uri="https://app.example/answer",
            )
        ),
    )
    assert changed.spec.user_id == "carol"
    assert changed.spec.response_uri == "https://app.example/answer"
    refused(
        lambda: anonymous.replace_challenge(lid, spec("carol", "totp")),
        400,
    )

    # send_now=false (the default) holds it pending: no answer counts until a replace
    # sets send_now; after that, setting it again changes nothing.
    held = bearer.create_challenge(
        Challenge._from_openapi_data(
            spec=ChallengeSpec._from_openapi_data(user_id="erin", challenge_types=["code"])
        )
    )
    hid = held.metadata.id
    assert held.status.state == "pending" and held.spec.send_now is False
    refused(lambda: anonymous.get_answer(hid, held.status.code, True, "code"), 400)
    assert anonymous.get_challenge(hid).status.state == "pending"
    # timeout_seconds may change, counted from the creation; send_now left false.
    retimed = anonymous.replace_challenge(
        hid, spec("erin", "code", timeout_seconds=300, send_now=False)
    )
    assert retimed.status.state == "pending" and retimed.spec.timeout_seconds == 300, retimed
    status, native = raw("GET", f"/api/v1/challenges/{hid}", token=READ_ONLY)
    assert status == 200, native
    lifetime = seconds_of(native["expires_at"]) - seconds_of(native["created_at"])
    assert native["state"] == "pending" and lifetime == 300, native
    # Out of range: refused, nothing changed.
    status, body = raw(
        "PUT",
        f"/v1/challenges/{hid}",
        json.dumps({"spec": {"user_id": "erin", "challenge_types": ["code"], "timeout_seconds": 86401}}).encode(),
    )
    assert status == 400 and body["error_code"] == "out_of_range", body
    assert anonymous.get_challenge(hid).spec.timeout_seconds == 300
    sent = anonymous.replace_challenge(hid, spec("erin", "code"))
    assert sent.status.state == "issued" and sent.spec.send_now is True
    assert anonymous.replace_challenge(hid, spec("erin", "code")).status.state == "issued"
    anonymous.get_answer(hid, held.status.code, True, "code")
    assert anonymous.get_challenge(hid).status.state == "challenge_passed"
    # An answered challenge keeps its time: 409 not_retimable.
    body = refused(
        lambda: anonymous.replace_challenge(hid, spec("erin", "code", timeout_seconds=120)), 409
    )
    assert body["error_code"] == "not_retimable", body
    assert anonymous.get_challenge(hid).spec.timeout_seconds == 300
    # A timeout shortened to one second times the challenge out a second after its
    # creation, and answers then fail.
    short = bearer.create_challenge(spec("erin", "code"))
    shortened = anonymous.replace_challenge(
        short.metadata.id, spec("erin", "code", timeout_seconds=1)
    )
    assert shortened.spec.timeout_seconds == 1
    eventually(lambda: anonymous.get_challenge(short.metadata.id).status.state == "timed_out")
    refused(lambda: anonymous.get_answer(short.metadata.id, short.status.code, True, "code"), 400)

    # Delete: gone for every call after it.
    anonymous.delete_challenge(lid)
    refused(lambda: anonymous.get_challenge(lid), 404)
    refused(lambda: anonymous.get_answer(lid, live.status.code, True, "code"), 404)
    refused(lambda: anonymous.delete_challenge(lid), 404)
    # An ended one too.
    anonymous.delete_challenge(cid)
    refused(lambda: anonymous.get_challenge(cid), 404)
    try:
        anonymous.get_challenge("ch_AAAAAAAAAAAAAAAAAAAAAA")
        raise AssertionError("an unknown id was found")
    except NotFoundException:
        pass


def bad_inputs(bearer):
    refused(lambda: api().create_challenge(spec("alice", "code")), 401)
    refused(lambda: api("not-a-jwt").create_challenge(spec("alice", "code")), 401)
    refused(lambda: api(READ_ONLY).create_challenge(spec("alice", "code")), 403)
    refused(lambda: bearer.create_challenge(spec("alice", "nonsense")), 400)
    body = refused(
        lambda: bearer.create_challenge(
            Challenge._from_openapi_data(
                spec=ChallengeSpec._from_openapi_data(
                    user_id="alice", challenge_types=["webauthn", "code"]
                )
            )
        ),
        400,
    )
    assert body["error_code"] == "unsupported_challenge_types", body
    # No push device: nothing to send a web_push challenge to.
    body = refused(lambda: bearer.create_challenge(spec("nobody", "web_push")), 400)
    assert body["error_code"] == "no_enrolled_factor", body
    # The SDK checks these ranges itself; the server holds them as well.
    for timeout in [0, 86401]:
        payload = {"spec": {"user_id": "a", "challenge_types": ["code"], "timeout_seconds": timeout}}
        status, body = raw("POST", "/v1/challenges", json.dumps(payload).encode(), TOKEN)
        assert status == 400 and body["error_code"] == "out_of_range", (timeout, body)
    refused(
        lambda: bearer.create_challenge(spec("alice", "code", response_uri="ftp://x")), 400
    )
    # No TOTP enrollment: nothing to answer a totp challenge with.
    body = refused(lambda: bearer.create_challenge(spec("nobody", "totp")), 400)
    assert body["error_code"] == "no_enrolled_factor", body
    for payload, code in [
        (b"{", "malformed_json"),
        (b"{}", "invalid_field"),
        (b'{"spec": {"challenge_types": ["code"]}}', "invalid_field"),
        (b'{"spec": {"user_id": 7, "challenge_types": ["code"]}}', "invalid_field"),
        (b'{"spec": {"user_id": "a", "challenge_types": ["code"], "timeout_seconds": "x"}}', "invalid_field"),
    ]:
        status, body = raw("POST", "/v1/challenges", payload, TOKEN)
        assert status == 400 and body["error_code"] == code, (payload, status, body)
    # Answers with a missing or unreadable parameter.
    created = bearer.create_challenge(spec("alice", "code"))
    cid = created.metadata.id
    for query in [
        "allowed=True&challenge_type=code",
        f"challenge_answer={created.status.code}&challenge_type=code",
        f"challenge_answer={created.status.code}&allowed=maybe&challenge_type=code",
        f"challenge_answer={created.status.code}&allowed=True",
    ]:
        status, body = raw("GET", f"/v1/challenges/{cid}/answers?{query}")
        assert status == 400 and body["error_code"] == "invalid_query", (query, body)
    assert api().get_challenge(cid).status.state == "issued"
    # Python writes bools capitalised; lower-case and digits are taken too.
    status, body = raw(
        "GET",
        f"/v1/challenges/{cid}/answers?challenge_answer={created.status.code}&allowed=1&challenge_type=code",
    )
    assert status == 200, body


def one_time_use_actions(bearer, anonymous, receiver_url):
    def http(path, scopes=None):
        return HTTPChallengeAction(
            challenge_action_type="http_action",
            method="POST",
            uri=receiver_url + path,
            body='{"ok": true}',
            content_type="application/json",
            **({"scopes": [TokenScope(s) for s in scopes]} if scopes else {}),
        )

    request = OneTimeUseActionChallenge(
        spec=OneTimeUseActionChallengeSpec(
            approved_actions=[http("/approved", [ACTION_SCOPE])],
            declined_actions=[http("/declined")],
            actors=[
                ChallengeActor(user_id="approver-1", org_id="org-1"),
                ChallengeActor(user_id="approver-2", org_id="org-2"),
            ],
            timeout_seconds=600,
            user_id="requester",
        )
    )
    response = bearer.create_one_time_use_action(request)
    cid = response.challenge.metadata.id
    assert response.challenge.spec.user_id == "requester"
    assert response.challenge.status.state == "issued"
    assert len(response.one_time_use_challenge.spec.actors) == 2
    details = response.answer_details
    assert [d.actor.user_id for d in details] == ["approver-1", "approver-2"]
    for d in details:
        assert d.approve_uri.startswith(BASE + "/v1/challenges/"), d.approve_uri
        assert d.approve_uri != d.decline_uri
    assert details[0].approve_uri != details[1].approve_uri

    # OTUA challenges are immutable.
    refused(lambda: anonymous.replace_challenge(cid, spec("requester", "one_time_use_action")), 400)

    # A plain GET of actor 1's approve URI approves and fires the approved list.
    status, body = raw("GET", details[0].approve_uri)
    assert status == 200, body
    hit = eventually(lambda: [s for s in Receiver.seen if s[0] == "/approved"])
    assert hit[0][1] and hit[0][1].startswith("Bearer "), hit
    # The action's token is the answering actor's, of its organisation.
    claims = hit[0][1].split(" ", 1)[1].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert claims["sub"] == "approver-1" and claims["org"] == "org-1", claims
    assert ACTION_SCOPE in claims["scope"].split(), claims
    assert hit[0][2] == '{"ok": true}'
    assert anonymous.get_challenge(cid).status.state == "challenge_passed"

    # Every other URI now fails, and runs nothing.
    for uri in [details[1].decline_uri, details[1].approve_uri, details[0].approve_uri, details[0].decline_uri]:
        status, _ = raw("GET", uri)
        assert status == 400, (uri, status)
    time.sleep(0.5)
    assert len([s for s in Receiver.seen if s[0] == "/approved"]) == 1, Receiver.seen
    assert not [s for s in Receiver.seen if s[0] == "/declined"], Receiver.seen

    # A decline fires the declined list, without a token (no scopes).
    response = bearer.create_one_time_use_action(request)
    status, _ = raw("GET", response.answer_details[1].decline_uri)
    assert status == 200
    hit = eventually(lambda: [s for s in Receiver.seen if s[0] == "/declined"])
    assert hit[0][1] is None, hit
    assert (
        anonymous.get_challenge(response.challenge.metadata.id).status.state
        == "challenge_declined"
    )

    # An actor's secret in another actor's name is refused.
    response = bearer.create_one_time_use_action(request)
    forged = response.answer_details[0].approve_uri.replace("approver-1", "approver-2")
    status, _ = raw("GET", forged)
    assert status == 400
    assert anonymous.get_challenge(response.challenge.metadata.id).status.state == "issued"

    # Bad specs.
    status, body = raw(
        "POST",
        "/v1/challenges/one_time_use_actions",
        json.dumps(
            {
                "spec": {
                    "approved_actions": [],
                    "declined_actions": [],
                    "actors": [],
                    "timeout_seconds": 60,
                }
            }
        ).encode(),
        TOKEN,
    )
    assert status == 400, body
    status, body = raw(
        "POST",
        "/v1/challenges/one_time_use_actions",
        json.dumps({"spec": {"actors": [{"user_id": "a", "org_id": "o"}]}}).encode(),
        TOKEN,
    )
    assert status == 400 and body["error_code"] == "invalid_field", body


def totp(bearer, anonymous):
    created = bearer.create_totp_enrollment(
        TOTPEnrollment._from_openapi_data(spec=TOTPEnrollmentSpec._from_openapi_data(user_id="dave"))
    )
    tid = created.metadata.id
    key = created.status.key
    assert created.status.state == "pending"
    assert created.spec.user_id == "dave"
    got = bearer.get_totp_enrollment(tid)
    assert got.status.state == "pending" and "key" not in got.status
    listed = bearer.list_totp_enrollment(user_id="dave", limit=10)
    assert listed.limit == 10 and [t.metadata.id for t in listed.totp] == [tid]
    assert tid in [t.metadata.id for t in bearer.list_totp_enrollment().totp]
    for kind in ["totp", "webauthn"]:
        for limit in ["0", "501", "x"]:
            status, body = raw(
                "GET", f"/v1/challenge_enrollment/{kind}?limit={limit}", token=TOKEN
            )
            assert status == 400 and body["error_code"] == "invalid_query", (kind, limit, body)

    wrong = "000000" if pyotp.TOTP(key).now() != "000000" else "111111"
    refused(
        lambda: bearer.update_totp_enrollment(
            tid, TOTPEnrollmentAnswer._from_openapi_data(user_id="dave", answer=wrong)
        ),
        400,
    )
    assert bearer.get_totp_enrollment(tid).status.state == "pending"
    done = bearer.update_totp_enrollment(
        tid,
        TOTPEnrollmentAnswer._from_openapi_data(user_id="dave", answer=pyotp.TOTP(key).now()),
    )
    assert done.status.state == "success"
    refused(lambda: api(READ_ONLY).get_totp_enrollment(tid), 403)

    # A totp challenge, answered with a later step's code (the enrollment used this one).
    challenge = bearer.create_challenge(spec("dave", "totp"))
    assert challenge.status.state == "issued"
    cid = challenge.metadata.id
    assert "code" not in challenge.status
    refused(lambda: anonymous.get_answer(cid, wrong, True, "totp"), 400)
    code = pyotp.TOTP(key).at(time.time() + 30)
    answer = anonymous.get_answer(cid, code, True, "totp", challenge_uid="dave")
    assert answer.spec.answer == code
    assert anonymous.get_challenge(cid).status.state == "challenge_passed"

    # Several types: one challenge, answered by any one of them; the first decides.
    # (Another user: each TOTP step answers once, and dave's next one is used.)
    enrolled = bearer.create_totp_enrollment(
        TOTPEnrollment._from_openapi_data(spec=TOTPEnrollmentSpec._from_openapi_data(user_id="erin"))
    )
    key = enrolled.status.key
    bearer.update_totp_enrollment(
        enrolled.metadata.id,
        TOTPEnrollmentAnswer._from_openapi_data(user_id="erin", answer=pyotp.TOTP(key).now()),
    )
    both = Challenge._from_openapi_data(
        spec=ChallengeSpec._from_openapi_data(
            user_id="erin", challenge_types=["totp", "code"], send_now=True
        )
    )
    challenge = bearer.create_challenge(both)
    cid = challenge.metadata.id
    assert challenge.status.state == "issued"
    assert sorted(challenge.spec.challenge_types) == ["code", "totp"]
    relayed = challenge.status.code
    assert len(relayed) == 40 and relayed.isalnum(), relayed
    assert "code" not in anonymous.get_challenge(cid).status
    refused(lambda: anonymous.get_answer(cid, relayed, True, "sms"), 400)
    refused(lambda: anonymous.get_answer(cid, relayed, True, "totp"), 400)
    code = pyotp.TOTP(key).at(time.time() + 30)
    assert anonymous.get_answer(cid, code, True, "totp").spec.answer == code
    assert anonymous.get_challenge(cid).status.state == "challenge_passed"
    refused(lambda: anonymous.get_answer(cid, relayed, True, "code"), 400)
    # The relayed code answers the next one; held pending first, its types fixed.
    both.spec.send_now = False
    challenge = bearer.create_challenge(both)
    cid = challenge.metadata.id
    assert challenge.status.state == "pending"
    refused(lambda: anonymous.replace_challenge(cid, spec("erin", "code")), 400)
    again = Challenge._from_openapi_data(
        spec=ChallengeSpec._from_openapi_data(
            user_id="erin", challenge_types=["code", "totp"], send_now=True
        )
    )
    assert anonymous.replace_challenge(cid, again).status.state == "issued"
    anonymous.get_answer(cid, challenge.status.code, False, "code")
    assert anonymous.get_challenge(cid).status.state == "challenge_declined"

    bearer.delete_totp_enrollment(tid)
    refused(lambda: bearer.get_totp_enrollment(tid), 404)
    refused(lambda: bearer.delete_totp_enrollment(tid), 404)
    refused(lambda: bearer.get_totp_enrollment("fac_AAAAAAAAAAAAAAAAAAAAAA"), 404)


def cbor(value):
    """The few CBOR items an attestation object needs (RFC 8949)."""

    def head(major, n):
        if n < 24:
            return bytes([major << 5 | n])
        if n < 256:
            return bytes([major << 5 | 24, n])
        return bytes([major << 5 | 25]) + n.to_bytes(2, "big")

    if isinstance(value, bool):
        raise TypeError("no bools here")
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        raw = value.encode()
        return head(3, len(raw)) + raw
    if isinstance(value, dict):
        out = head(5, len(value))
        for k, v in value.items():
            out += cbor(k) + cbor(v)
        return out
    raise TypeError(type(value))


def b64url(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def software_registration(challenge):
    """What a platform authenticator with attestation "none" returns for `challenge`,
    with user presence and verification: (credential id, clientDataJSON, attestation
    object)."""
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    credential_id = os.urandom(32)
    cose = cbor(
        {
            1: 2,
            3: -7,
            -1: 1,
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        }
    )
    auth_data = (
        hashlib.sha256(RP_ID.encode()).digest()
        + bytes([0x45])  # UP | UV | AT
        + (0).to_bytes(4, "big")
        + bytes(16)
        + len(credential_id).to_bytes(2, "big")
        + credential_id
        + cose
    )
    client_data = json.dumps(
        {"type": "webauthn.create", "challenge": challenge, "origin": RP_ORIGIN, "crossOrigin": False}
    )
    attestation = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
    software_registration.keys[credential_id] = key
    return credential_id, client_data, attestation


software_registration.keys = {}


def software_assertion(credential_id, options, counter):
    """The PublicKeyCredential JSON of `credential_id`'s assertion for request options
    `options` (`{"publicKey": …}`)."""
    from cryptography.hazmat.primitives import hashes

    challenge = options["publicKey"]["challenge"]
    auth_data = (
        hashlib.sha256(RP_ID.encode()).digest() + bytes([0x05]) + counter.to_bytes(4, "big")
    )
    client_data = json.dumps(
        {"type": "webauthn.get", "challenge": challenge, "origin": RP_ORIGIN, "crossOrigin": False}
    ).encode()
    key = software_registration.keys[credential_id]
    signature = key.sign(
        auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
    )
    return json.dumps(
        {
            "id": b64url(credential_id),
            "rawId": b64url(credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
            },
            "clientExtensionResults": {},
        }
    )


def webauthn(bearer):
    def enrollment(rp, **extra):
        return WebAuthNEnrollment(spec=WebAuthNEnrollmentSpec(user_id="frank", relying_party_id=rp, **extra))

    body = refused(lambda: bearer.create_webauthn_enrollment(enrollment("nowhere.example")), 400)
    assert body["error_code"] == "unknown_relying_party", body
    created = bearer.create_webauthn_enrollment(enrollment(RP_ID, user_verification="discouraged"))
    wid = created.metadata.id
    challenge = created.status.challenge
    assert challenge and created.spec.user_verification == "discouraged"
    assert bearer.get_webauthn_enrollment(wid).status.challenge == challenge
    assert [w.metadata.id for w in bearer.list_webauthn_enrollments(user_id="frank").webauthn] == [wid]

    def answer(credential_id, client_data, attestation, **extra):
        return WebAuthNEnrollmentAnswer._from_openapi_data(
            user_id="frank",
            credential_id=b64url(credential_id),
            client_data=client_data,
            authenticator_data=b64url(attestation),
            **extra,
        )

    # Refusals: garbage, another challenge's registration, no attestation.
    cred, data, att = software_registration(b64url(b"not the challenge"))
    refused(lambda: bearer.update_webauthn_enrollment(wid, answer(cred, data, att)), 400)
    refused(lambda: bearer.update_webauthn_enrollment(wid, answer(cred, data, b"\xa0")), 400)
    status, body = raw(
        "POST",
        f"/v1/challenge_enrollment/webauthn/{wid}",
        json.dumps({"user_id": "frank", "credential_id": "AQID", "client_data": "{}"}).encode(),
        TOKEN,
    )
    assert status == 400 and body["error_code"] == "invalid_field", body
    assert "credential_id" not in bearer.get_webauthn_enrollment(wid).status

    # The ceremony, by a software authenticator.
    cred, data, att = software_registration(challenge)
    done = bearer.update_webauthn_enrollment(wid, answer(cred, data, att, transports=["internal"]))
    assert done.status.credential_id == b64url(cred), done.status
    assert done.status.transports == ["internal"]
    assert "challenge" not in done.status
    # A registration is answered once.
    refused(lambda: bearer.update_webauthn_enrollment(wid, answer(cred, data, att)), 400)

    # A webauthn challenge on that enrollment, answered with an assertion.
    body = refused(lambda: bearer.create_challenge(spec("frank", "webauthn")), 400)
    assert body["error_code"] == "invalid_field", body
    endpoint = ChallengeEndpoint(endpoint=wid, type="webauthn")
    challenge = bearer.create_challenge(spec("frank", "webauthn", challenge_endpoints=[endpoint]))
    cid = challenge.metadata.id
    options = json.loads(challenge.status.public_challenge)
    anonymous = api()
    assert anonymous.get_challenge(cid).status.public_challenge == challenge.status.public_challenge
    refused(lambda: anonymous.get_answer(cid, "{}", True, "webauthn"), 400)
    other = dict(options, publicKey=dict(options["publicKey"], challenge=b64url(b"another")))
    refused(lambda: anonymous.get_answer(cid, software_assertion(cred, other, 1), True, "webauthn"), 400)
    assertion = software_assertion(cred, options, 2)
    answered = anonymous.get_answer(cid, assertion, True, "webauthn", challenge_uid="frank")
    assert answered.spec.challenge_id == cid
    assert anonymous.get_challenge(cid).status.state == "challenge_passed"
    refused(lambda: anonymous.get_answer(cid, assertion, True, "webauthn"), 400)

    bearer.delete_webauthn_enrollment(wid)
    refused(lambda: bearer.get_webauthn_enrollment(wid), 404)
    refused(lambda: bearer.get_webauthn_enrollment("fac_AAAAAAAAAAAAAAAAAAAAAA"), 404)


def main():
    receiver = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    receiver_url = f"http://127.0.0.1:{receiver.server_address[1]}"
    bearer = api(TOKEN)
    anonymous = api()
    code_challenges(bearer, anonymous)
    bad_inputs(bearer)
    one_time_use_actions(bearer, anonymous, receiver_url)
    totp(bearer, anonymous)
    webauthn(bearer)
    print("agilicus sdk: ok")


if __name__ == "__main__":
    main()
