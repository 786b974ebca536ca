"""Drives the real `twilio` SDK (tests/sdk/requirements.txt) against a running
challenge-server. The SDK is unchanged: a custom HTTP client only rewrites
https://verify.twilio.com to the server's base URL.

Environment: BASE (http://127.0.0.1:PORT), ACCOUNT_SID / AUTH_TOKEN (an account of
tenant A), OTHER_SID / OTHER_TOKEN (an account of tenant B), NATIVE_TOKEN (a native
bearer token of tenant A with challenge:get). Exits 0 and prints "twilio sdk: ok" when
every check passed.
"""

import base64
import binascii
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from datetime import datetime, timedelta, timezone

import pyotp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

BASE = os.environ["BASE"].rstrip("/")


class LocalClient(TwilioHttpClient):
    """Sends every request the SDK makes to BASE instead of Twilio."""

    def request(self, method, url, *args, **kwargs):
        url = url.replace("https://verify.twilio.com", BASE)
        return super().request(method, url, *args, **kwargs)


def client(sid, token):
    return Client(sid, token, http_client=LocalClient())


def refused(call, status, code=None):
    try:
        call()
    except TwilioRestException as e:
        assert e.status == status, (e.status, e.code, e.msg)
        if code is not None:
            assert e.code == code, (e.status, e.code, e.msg)
        return e
    raise AssertionError(f"expected HTTP {status} {code}")


def native(path, token, body=None):
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def native_id(yc):
    raw = binascii.unhexlify(yc[2:])
    return "ch_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def totp_code(secret, step, at=None):
    return pyotp.TOTP(secret, interval=step).at(at or time.time())


class Receiver(BaseHTTPRequestHandler):
    """Keeps every webhook POSTed to it, with whether its signature validates."""

    received = []
    native = []
    token = ""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        if self.path.startswith("/native"):
            Receiver.native.append((json.loads(body), self.headers.get("X-Challenge-Signature")))
            self.send_response(204)
            self.end_headers()
            return
        params = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
        url = f"http://127.0.0.1:{self.server.server_port}{self.path}"
        valid = RequestValidator(Receiver.token).validate(
            url, params, self.headers.get("X-Twilio-Signature", "")
        )
        forged = RequestValidator("not-the-token").validate(
            url, params, self.headers.get("X-Twilio-Signature", "")
        )
        Receiver.received.append((params, valid, forged, self.headers.get("Content-Type")))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    account, token = os.environ["ACCOUNT_SID"], os.environ["AUTH_TOKEN"]
    tw = client(account, token)
    verify = tw.verify.v2
    other = client(os.environ["OTHER_SID"], os.environ["OTHER_TOKEN"]).verify.v2

    # Services.
    svc = verify.services.create(friendly_name="Acme", totp_issuer="AcmeBank", totp_time_step=30)
    assert svc.sid.startswith("VA") and len(svc.sid) == 34, svc.sid
    assert svc.account_sid == account
    # Wrong credentials, or none that match an account.
    refused(lambda: client(account, "wrong").verify.v2.services(svc.sid).fetch(), 401, 20003)
    refused(lambda: client("AC" + "1" * 32, token).verify.v2.services(svc.sid).fetch(), 401, 20003)
    assert isinstance(svc.date_created, datetime), svc.date_created
    assert svc.totp["issuer"] == "AcmeBank" and svc.totp["time_step"] == 30
    fetched = verify.services(svc.sid).fetch()
    assert fetched.friendly_name == "Acme"
    updated = verify.services(svc.sid).update(friendly_name="Acme 2", totp_skew=1)
    assert updated.friendly_name == "Acme 2" and updated.totp["skew"] == 1
    assert svc.sid in [s.sid for s in verify.services.list()]
    refused(lambda: other.services(svc.sid).fetch(), 404, 20404)
    refused(lambda: verify.services("VA" + "0" * 32).fetch(), 404, 20404)
    refused(lambda: verify.services("nonsense").fetch(), 404, 20404)
    gone = verify.services.create(friendly_name="Temp")
    assert verify.services(gone.sid).delete() is True
    refused(lambda: verify.services(gone.sid).fetch(), 404, 20404)
    refused(lambda: verify.services.create(friendly_name="x" * 65), 400, 60200)

    # Entities.
    service = verify.services(svc.sid)
    entity = service.entities.create(identity="user-0001")
    assert entity.sid.startswith("YE") and entity.identity == "user-0001"
    assert service.entities("user-0001").fetch().sid == entity.sid
    assert [e.identity for e in service.entities.list()] == ["user-0001"]
    refused(lambda: service.entities.create(identity="user-0001"), 409)
    refused(lambda: service.entities.create(identity="bad identity!"), 400, 60200)
    refused(lambda: service.entities("nobody-here").fetch(), 404, 20404)
    temp = service.entities.create(identity="user-temp")
    assert service.entities(temp.identity).delete() is True
    refused(lambda: service.entities("user-temp").fetch(), 404, 20404)

    # TOTP factor: binding only in the create response; verified with a code.
    user = service.entities("user-0001")
    factor = user.new_factors.create(friendly_name="alice phone", factor_type="totp")
    assert factor.sid.startswith("YF") and factor.status == "unverified"
    secret = factor.binding["secret"]
    assert factor.binding["uri"].startswith("otpauth://totp/"), factor.binding
    assert factor.config["time_step"] == 30 and factor.config["code_length"] == 6
    again = user.factors(factor.sid).fetch()
    assert again.status == "unverified"
    assert not getattr(again, "binding", None)
    # A challenge on an unverified factor is refused.
    refused(lambda: user.challenges.create(factor_sid=factor.sid), 403, 60318)
    wrong = user.factors(factor.sid).update(auth_payload="000000" if totp_code(secret, 30) != "000000" else "111111")
    assert wrong.status == "unverified"
    # Verify with the previous step's code, so the current step stays unused.
    verified = user.factors(factor.sid).update(auth_payload=totp_code(secret, 30, time.time() - 30))
    assert verified.status == "verified", verified.status
    assert [f.sid for f in user.factors.list()] == [factor.sid]
    renamed = user.factors(factor.sid).update(friendly_name="alice new phone")
    assert renamed.friendly_name == "alice new phone" and renamed.status == "verified"
    refused(lambda: user.factors(factor.sid).update(friendly_name="x" * 65), 400, 60200)
    # A TOTP factor's code parameters change after enrollment; its seed stays, and a
    # code of a time already used does not answer again.
    tuned = user.new_factors.create(friendly_name="alice tablet", factor_type="totp")
    tuned_secret = tuned.binding["secret"]
    at = time.time()
    tuned = user.factors(tuned.sid).update(auth_payload=totp_code(tuned_secret, 30, at))
    assert tuned.status == "verified", tuned.status
    tuned = user.factors(tuned.sid).update(
        config_time_step=60, config_code_length=8, config_skew=2, config_alg="sha256"
    )
    assert tuned.config["time_step"] == 60 and tuned.config["code_length"] == 8, tuned.config
    assert tuned.config["skew"] == 2 and tuned.config["alg"] == "sha256", tuned.config
    assert user.factors(tuned.sid).fetch().config["time_step"] == 60
    longer = pyotp.TOTP(tuned_secret, interval=60, digits=8, digest="sha256")
    refused_code = user.challenges.create(factor_sid=tuned.sid, auth_payload=longer.at(at))
    assert refused_code.status == "pending", refused_code.status
    done = user.challenges.create(factor_sid=tuned.sid, auth_payload=longer.at(at + 60))
    assert done.status == "approved", done.status
    for bad in [dict(config_time_step=61), dict(config_code_length=9), dict(config_alg="md5")]:
        refused(lambda: user.factors(tuned.sid).update(**bad), 400, 60200)
    assert user.factors(tuned.sid).fetch().config["code_length"] == 8
    assert user.factors(tuned.sid).delete() is True

    # A challenge created with AuthPayload is verified at once; the same step is used once.
    code = totp_code(secret, 30)
    at_once = user.challenges.create(factor_sid=factor.sid, auth_payload=code)
    assert at_once.status == "approved", at_once.status
    assert at_once.sid.startswith("YC") and isinstance(at_once.date_created, datetime)
    replay = user.challenges.create(factor_sid=factor.sid, auth_payload=code)
    assert replay.status == "pending", replay.status
    refused(lambda: user.challenges(at_once.sid).update(auth_payload=code), 403, 60322)

    # A challenge answered later; a wrong code leaves it pending.
    later = user.challenges.create(
        factor_sid=factor.sid,
        details_message="Log in?",
        details_fields=[json.dumps({"label": "IP", "value": "10.0.0.1"})],
        hidden_details=json.dumps({"ip": "10.0.0.1"}),
    )
    assert later.status == "pending" and later.details["message"] == "Log in?"
    assert later.details["fields"] == [{"label": "IP", "value": "10.0.0.1"}]
    assert later.hidden_details == {"ip": "10.0.0.1"}
    left = user.challenges(later.sid).update(auth_payload="12345678")
    assert left.status == "pending"
    # The native API reads the same challenge with native names.
    seen = native(f"/api/v1/challenges/{native_id(later.sid)}", os.environ["NATIVE_TOKEN"])
    assert seen["state"] == "issued" and seen["type"] == "totp", seen

    # Bad inputs.
    soon = datetime.now(timezone.utc) + timedelta(minutes=61)
    refused(lambda: user.challenges.create(factor_sid=factor.sid, expiration_date=soon), 400, 60200)
    fields = [json.dumps({"label": f"l{i}", "value": "v"}) for i in range(21)]
    refused(lambda: user.challenges.create(factor_sid=factor.sid, details_fields=fields), 400, 60200)
    refused(lambda: user.challenges.create(factor_sid=factor.sid, details_message="m" * 257), 400, 60200)
    refused(lambda: user.challenges.create(factor_sid="YF" + "0" * 32), 404, 20404)
    refused(lambda: user.challenges("YC" + "0" * 32).fetch(), 404, 20404)
    refused(lambda: other.services(svc.sid).entities("user-0001").challenges(later.sid).fetch(), 404, 20404)

    # A local receiver for the service's webhooks.
    Receiver.token = token
    receiver = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    listening = service.webhooks.create(
        friendly_name="receiver",
        event_types=["challenge.approved", "challenge.denied", "factor.verified"],
        webhook_url=f"http://127.0.0.1:{receiver.server_port}/hooks?v=1",
    )
    assert listening.status == "enabled" and listening.version == "v2"
    # The tenant's native policy for this face's push challenges: its callback_url gets
    # the native webhooks of challenges created here.
    native(
        "/api/v1/policies",
        os.environ["NATIVE_TOKEN"],
        {
            "alias": "twilio-push",
            "type": "push",
            "callback_url": f"http://127.0.0.1:{receiver.server_port}/native",
        },
    )

    # Push factor with a real P-256 key.
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    device = service.entities("device-0001")
    push = device.new_factors.create(
        friendly_name="alice pixel",
        factor_type="push",
        binding_alg="ES256",
        binding_public_key=public,
        config_app_id="com.example.app",
        config_notification_platform="none",
        config_sdk_version="1.0.0",
    )
    assert push.status == "unverified" and push.binding["alg"] == "ES256"

    def sign(text):
        return base64.b64encode(key.sign(text.encode(), ec.ECDSA(hashes.SHA256()))).decode()

    push = device.factors(push.sid).update(auth_payload=sign(push.sid))
    assert push.status == "verified", push.status
    entity_sid = device.fetch().sid

    def push_challenge(message):
        return device.challenges.create(factor_sid=push.sid, details_message=message)

    def answer(challenge_sid, status, forged=False, iso=False):
        c = device.challenges(challenge_sid).fetch()
        stamp = (lambda d: d.isoformat()) if iso else (lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))
        text = "".join(
            [
                account,
                svc.sid,
                entity_sid,
                push.sid,
                c.sid,
                stamp(c.date_created),
                stamp(c.date_updated),
                c.status,
                json.dumps(c.details),
                json.dumps(c.hidden_details),
            ]
        )
        if forged:
            text += "x"
        payload = json.dumps({"signature": sign(text), "status": status})
        return device.challenges(challenge_sid).update(auth_payload=payload)

    approve = push_challenge("Approve login?")
    # A native long-poll is woken by the answer through this face.
    woken = {}

    def watch():
        woken["view"] = native(
            f"/api/v1/challenges/{native_id(approve.sid)}?wait=20", os.environ["NATIVE_TOKEN"]
        )

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(0.5)
    bad = refused(lambda: answer(approve.sid, "approved", forged=True), 403, 60324)
    assert device.challenges(approve.sid).fetch().status == "pending"
    approved = answer(approve.sid, "approved")
    assert approved.status == "approved" and isinstance(approved.date_responded, datetime)
    watcher.join(30)
    assert woken["view"]["state"] == "verified", woken
    refused(lambda: answer(approve.sid, "approved"), 403, 60322)
    deny = push_challenge("Approve payment?")
    denied = answer(deny.sid, "denied", iso=True)
    assert denied.status == "denied" and denied.date_responded is not None
    refused(lambda: device.challenges.create(factor_sid=push.sid), 400, 60200)

    # The webhooks arrived, form-encoded and signed with the account's auth token.
    deadline = time.time() + 20
    wanted = {("challenge.approved", approve.sid), ("challenge.denied", deny.sid), ("factor.verified", None)}

    def got():
        return {
            (p["type"], p.get("challenge_sid")) for p, _, _, _ in Receiver.received
        }

    while not wanted <= got():
        assert time.time() < deadline, Receiver.received
        time.sleep(0.1)
    for params, valid, forged, content_type in Receiver.received:
        assert valid and not forged, params
        assert content_type.startswith("application/x-www-form-urlencoded"), content_type
        assert params["account_sid"] == account and params["service_sid"] == svc.sid
        assert params["entity_identity"] == "device-0001", params
    statuses = {p.get("challenge_sid"): p.get("challenge_status") for p, _, _, _ in Receiver.received}
    assert statuses[approve.sid] == "approved" and statuses[deny.sid] == "denied"
    # No event of a type the webhook does not take (factor.created), none from the TOTP user.
    assert all(p["type"] != "factor.created" for p, _, _, _ in Receiver.received)
    service.webhooks(listening.sid).delete()
    # ... and the native webhooks of the same answers.
    wanted_native = {(native_id(approve.sid), "verified"), (native_id(deny.sid), "declined")}
    while not wanted_native <= {(b.get("id"), b.get("state")) for b, _ in Receiver.native}:
        assert time.time() < deadline, Receiver.native
        time.sleep(0.1)
    assert all(signature for _, signature in Receiver.native)

    # Expired: a challenge that lived two or three seconds.
    short = device.challenges.create(
        factor_sid=push.sid,
        details_message="Quick",
        expiration_date=datetime.now(timezone.utc) + timedelta(seconds=3),
    )
    deadline = time.time() + 20
    while device.challenges(short.sid).fetch().status != "expired":
        assert time.time() < deadline, "the challenge never expired"
        time.sleep(0.2)
    refused(lambda: answer(short.sid, "approved"), 403, 60323)

    # The device's own routes, with a JWT its key signed (Basic token:<JWT>).
    def b64url(data):
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    def device_jwt(factor_sid=None, key_=None, lifetime=300):
        now = int(time.time())
        header = b64url(json.dumps({"alg": "ES256", "typ": "JWT"}).encode())
        claims = b64url(json.dumps({
            "iss": account, "sub": svc.sid, "iat": now, "exp": now + lifetime,
            "grants": {"verify_push": {"factor_sid": factor_sid or push.sid,
                                       "entity_sid": "device-0001", "service_sid": svc.sid}},
        }).encode())
        der = (key_ or key).sign(f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
        r, s_ = decode_dss_signature(der)
        return f"{header}.{claims}.{b64url(r.to_bytes(32, 'big') + s_.to_bytes(32, 'big'))}"

    def as_device(method, path, jwt, form=None):
        auth = base64.b64encode(f"token:{jwt}".encode()).decode()
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(
            f"{BASE}/v2/Services/{svc.sid}/Entities/device-0001/Factors/{push.sid}{path}",
            data=data, method=method, headers={"Authorization": f"Basic {auth}"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    on_device = push_challenge("Approve on the device?")
    status, page_ = as_device("GET", "/Challenges?Status=pending", device_jwt())
    assert status == 200 and page_["meta"]["key"] == "challenges", page_
    assert on_device.sid in [c["sid"] for c in page_["challenges"]]
    status, fetched_ = as_device("GET", f"/Challenges/{on_device.sid}", device_jwt())
    assert status == 200 and fetched_["status"] == "pending"
    text = "".join([account, svc.sid, entity_sid, push.sid, on_device.sid,
                    fetched_["date_created"], fetched_["date_updated"], fetched_["status"],
                    json.dumps(fetched_["details"], separators=(",", ":")),
                    json.dumps(fetched_["hidden_details"], separators=(",", ":"))])
    payload = json.dumps({"signature": sign(text), "status": "approved"})
    stranger = ec.generate_private_key(ec.SECP256R1())
    for bad in [device_jwt(key_=stranger), device_jwt(factor_sid="YF" + "0" * 32), device_jwt(lifetime=600)]:
        status, body = as_device("POST", f"/Challenges/{on_device.sid}", bad, {"AuthPayload": payload})
        assert status == 401 and body["code"] == 20003, (status, body)
    status, answered_ = as_device("POST", f"/Challenges/{on_device.sid}", device_jwt(), {"AuthPayload": payload})
    assert status == 200 and answered_["status"] == "approved", answered_

    # Notifications and access tokens.
    pending = push_challenge("Still there?")
    note = device.challenges(pending.sid).notifications.create(ttl=60)
    assert note.challenge_sid == pending.sid and note.ttl == 60
    token_ = service.access_tokens.create(identity="device-0002", factor_type="push", ttl=120)
    assert token_.token.count(".") == 2 and token_.ttl == 120

    # Paging across pages, newest first, with filters carried in the page URLs.
    for i in range(4):
        push_challenge(f"page {i}")
    page = device.challenges.page(factor_sid=push.sid, status="pending", order="desc", page_size=2)
    seen = [c.sid for c in page]
    assert len(seen) == 2
    while page.next_page_url:
        assert "Status=pending" in page.next_page_url and "Order=desc" in page.next_page_url
        page = page.next_page()
        seen.extend(c.sid for c in page)
    listed = device.challenges.list(factor_sid=push.sid, status="pending", order="desc")
    assert seen == [c.sid for c in listed], (seen, [c.sid for c in listed])
    assert len(seen) == 5, len(seen)
    created = [c.date_created for c in listed]
    assert created == sorted(created, reverse=True)
    assert [c.status for c in device.challenges.list(status="denied")] == ["denied"]

    # Webhooks.
    hook = service.webhooks.create(
        friendly_name="events",
        event_types=["challenge.approved", "challenge.denied"],
        webhook_url="http://127.0.0.1:9/hook",
    )
    assert hook.sid.startswith("YW") and hook.event_types == ["challenge.approved", "challenge.denied"]
    assert service.webhooks(hook.sid).update(status="disabled").status == "disabled"
    assert [w.sid for w in service.webhooks.list()] == [hook.sid]
    assert service.webhooks(hook.sid).fetch().status == "disabled"
    refused(lambda: service.webhooks.create(friendly_name="x", event_types=["nope"], webhook_url="http://127.0.0.1:9/"), 400, 60200)
    assert service.webhooks(hook.sid).delete() is True

    # Deleting a factor ends its use.
    assert user.factors(factor.sid).delete() is True
    refused(lambda: user.factors(factor.sid).fetch(), 404, 20404)
    print("twilio sdk: ok")


if __name__ == "__main__":
    main()
