"""Pub/Sub push with authentication through the HTTP intake: the push's `Authorization: Bearer <ID token>` is
checked with google-auth against certificates served by a local server in Google's format
(`{key id: PEM certificate}`, `Cache-Control: max-age`), the tokens signed here with the test's own RSA key by
google-auth's signer, claims as Google documents them (iss, aud, email, email_verified, iat, exp)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from citysoc.store import ParquetEventStore
from collectors.attribution import SourceAccess, SourceRef
from collectors.drain import Drainer
from collectors.google_id import GoogleIdTokens
from tests.collectors.intake_helpers import SCHOOL_TOKEN, Running, running
from tests.collectors.pull_servers import Answer, ReplayServer, Request

PUSHER = "citysoc-push@council-prod.iam.gserviceaccount.com"
AUDIENCE = "https://intake.citysoc.example/v1/events?source=gcp.audit"
COUNCIL_PUSH = SourceRef(9, "riverside-council", "gcp push", "http", "gcp.audit")


class SigningKey:
    """An RSA key, its self-signed certificate (Google's v1 certs hold X.509 certificates) and a signer."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, key_id)])
        now = datetime.now(UTC)
        certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                       .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
                       .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
        self.certificate = certificate.public_bytes(serialization.Encoding.PEM).decode()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        self.signer = crypt.RSASigner.from_string(pem, key_id=key_id)  # type: ignore[no-untyped-call]

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        payload = {"aud": AUDIENCE, "azp": "113774264463038321964", "email": PUSHER, "email_verified": True,
                   "iat": now, "exp": now + 3600, "iss": "https://accounts.google.com", "sub": "113774264463038321964",
                   **claims}
        token: bytes = jwt.encode(self.signer, {k: v for k, v in payload.items() if v is not None})  # type: ignore[no-untyped-call]
        return token.decode()


class GoogleCerts:
    """`GET /oauth2/v1/certs` as Google answers it; `keys` may change (a rotation) and `down` fails it."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.down = False
        self.server = ReplayServer(self.handle)
        self.url = f"{self.server.url}/oauth2/v1/certs"

    def handle(self, request: Request) -> Answer:
        if self.down:
            return Answer(503, b"unavailable")
        return Answer.json({key.key_id: key.certificate for key in self.keys},
                           headers={"Cache-Control": "public, max-age=20000, must-revalidate, no-transform"})

    def fetches(self) -> int:
        return sum(request.path == "/oauth2/v1/certs" for request in self.server.requests)


@pytest.fixture(scope="module")
def google_key() -> SigningKey:
    return SigningKey("7d680d8c70d44e947133cbd499ebc1a61c3d5abc")


@pytest.fixture
def certs(google_key: SigningKey) -> Iterator[GoogleCerts]:
    certs = GoogleCerts(google_key)
    with certs.server:
        yield certs


@pytest.fixture
def intake(tmp_path: Path, certs: GoogleCerts) -> Iterator[Running]:
    council = SourceAccess(COUNCIL_PUSH, frozenset({"http"}), push_identity=(PUSHER, AUDIENCE))
    with running(tmp_path, kinds=("http",), more_sources=(council,), id_tokens=GoogleIdTokens(certs.url)) as service:
        yield service


def push_body(insert_id: str) -> bytes:
    entry = {"insertId": insert_id, "logName": "projects/council-prod/logs/cloudaudit.googleapis.com%2Factivity",
             "timestamp": "2026-12-01T10:00:00.123456Z",
             "resource": {"type": "service_account", "labels": {"project_id": "council-prod"}},
             "protoPayload": {"@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                              "serviceName": "iam.googleapis.com",
                              "methodName": "google.iam.admin.v1.CreateServiceAccountKey",
                              "authenticationInfo": {"principalEmail": "ops@council.example"}}}
    return json.dumps({"message": {"data": base64.b64encode(json.dumps(entry).encode()).decode(),
                                   "attributes": {"probe": insert_id},  # what `intake.records` finds
                                   "messageId": "2070443601311540", "publishTime": "2026-12-01T10:00:01Z"},
                       "subscription": "projects/council-prod/subscriptions/citysoc-push"}).encode()


def push(http: httpx.Client, token: str, insert_id: str = "push-oidc-1", **params: str) -> httpx.Response:
    return http.post("/v1/events", content=push_body(insert_id), params=params,
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def test_a_push_signed_for_the_sources_identity_is_filed_under_its_tenant(
        intake: Running, http: httpx.Client, certs: GoogleCerts, google_key: SigningKey, tmp_path: Path) -> None:
    for number in range(3):
        answer = push(http, google_key.token(), f"push-oidc-{number}")
        assert answer.status_code == 200, answer.text
    assert certs.fetches() == 1  # kept for the certificates' max-age
    [(tenant, source, _), *_] = intake.records("push-oidc-0")
    assert (tenant, source) == ("riverside-council", "gcp.audit")
    store = ParquetEventStore(tmp_path / "events")
    Drainer(intake.spool, store, intake.dead_letters).run_once()
    assert store.stored(tenant="riverside-council", dataset="gcp.audit") == 3


@pytest.mark.parametrize(("claims", "reason"), [
    ({"aud": "https://intake.citysoc.example/other"}, "no source of any member organisation takes pushes signed for"),
    ({"email": "someone@else-prod.iam.gserviceaccount.com"}, "no source of any member organisation takes pushes"),
    ({"email_verified": False}, "no verified service account email"),
    ({"email": None}, "no verified service account email"),
    ({"iss": "https://issuer.example"}, "is not Google's"),
    ({"exp": int(time.time()) - 600, "iat": int(time.time()) - 4200}, "Token expired"),
])
def test_a_push_token_failing_a_check_is_401_and_nothing_is_kept(
        intake: Running, http: httpx.Client, google_key: SigningKey, claims: dict[str, Any], reason: str) -> None:
    answer = push(http, google_key.token(**claims), "push-refused")
    assert answer.status_code == 401 and reason in answer.json()["detail"], answer.text
    assert intake.records("push-refused") == []


def test_a_token_signed_by_another_key_is_refused_after_one_fresh_look_at_the_certificates(
        intake: Running, http: httpx.Client, certs: GoogleCerts, google_key: SigningKey) -> None:
    assert push(http, google_key.token()).status_code == 200
    stranger = SigningKey("not-googles-key")
    answer = push(http, stranger.token(), "push-forged")
    assert answer.status_code == 401 and "Certificate for key id not-googles-key not found" in answer.json()["detail"]
    assert certs.fetches() == 2  # the unknown key id fetched the certificates again once (a rotation looks so)
    impostor = SigningKey(google_key.key_id)  # Google's key id, another key
    answer = push(http, impostor.token(), "push-forged")
    assert answer.status_code == 401 and "Could not verify token signature" in answer.json()["detail"]
    assert intake.records("push-forged") == []


def test_a_rotated_key_is_taken_once_google_serves_it(
        intake: Running, http: httpx.Client, certs: GoogleCerts, google_key: SigningKey) -> None:
    assert push(http, google_key.token()).status_code == 200
    rotated = SigningKey("rotated-key")
    certs.keys.append(rotated)
    assert push(http, rotated.token(), "push-rotated").status_code == 200  # before the cached max-age ran out


def test_certificates_out_of_reach_are_503_so_pubsub_delivers_again(
        intake: Running, http: httpx.Client, certs: GoogleCerts, google_key: SigningKey) -> None:
    certs.down = True
    answer = push(http, google_key.token(), "push-later")
    assert answer.status_code == 503 and answer.headers["Retry-After"] and intake.records("push-later") == []
    certs.down = False
    assert push(http, google_key.token(), "push-later").status_code == 200


def test_the_endpoint_url_token_stays_for_push_subscriptions_without_authentication(
        intake: Running, http: httpx.Client) -> None:
    answer = http.post("/v1/events", content=push_body("push-url-token"),
                       params={"token": SCHOOL_TOKEN, "source": "gcp.audit"})
    assert answer.status_code == 200, answer.text
    [(tenant, _, _)] = intake.records("push-url-token")
    assert tenant == "harbour-school"
