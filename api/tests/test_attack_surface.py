"""The attack matrix of the public surface (issue 14): request limits, no 5xx from any
input, security headers and exposure, secrets.

Limits are attacked over raw sockets against a real `planwise serve` (the protocol it
runs is part of what is tested: a refusal must come before the refused bytes are held),
everything else in-process. Property tests are bounded and derandomised.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from websockets.exceptions import ConnectionClosed, InvalidStatus

from planwise.config import ConfigError, Settings
from planwise.supabase.keys import api_key
from tests.support.accounts import PASSWORD, Account, new_account, new_admin, put_place
from tests.support.cli import PLANWISE
from tests.support.databases import TEST_JWT_SECRET, TEST_SUPABASE_JWT_SECRET, DatabaseUnderTest
from tests.support.served import free_port, planwise_serve, serve_environment

MIB = 1024 * 1024
ANON_KEY = api_key(TEST_SUPABASE_JWT_SECRET, "anon")
JOIN_TIMEOUT_S = 1.0
MAX_SOCKETS_PER_CLIENT = 3
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


# -- a real `planwise serve`, attacked over raw sockets -----------------------------------


@dataclass(frozen=True)
class Served:
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def peak_rss_mib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
        raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def served(api_db: DatabaseUnderTest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`planwise serve` with the default limits, a 1 s join timeout, 3 sockets a client."""
    home = tmp_path_factory.mktemp("surface")
    env = serve_environment(
        api_db,
        home,
        REALTIME_JOIN_TIMEOUT_SECONDS=str(JOIN_TIMEOUT_S),
        REALTIME_MAX_CONNECTIONS_PER_CLIENT=str(MAX_SOCKETS_PER_CLIENT),
    )
    with planwise_serve(env, home / "serve.log") as (base, pid):
        yield Served(int(base.rsplit(":", 1)[1]), pid)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    sent: int

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(port: int, chunks: Iterable[bytes], timeout: float = 5.0) -> Answer:
    """Send `chunks` from a thread while reading the answer, as an attacker would; the
    answer may come (and the server close) before everything was sent."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(timeout)
    sent = [0]

    def write() -> None:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass

    started = time.perf_counter()
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    data = bytearray()
    try:
        while b"\r\n\r\n" not in data or len(data) < _answer_length(data):
            part = sock.recv(65536)
            if not part:
                break
            data += part
    except TimeoutError:
        pytest.fail(f"no answer within {timeout} s (got {bytes(data[:200])!r})")
    except ConnectionResetError:
        pass
    seconds = time.perf_counter() - started
    sock.close()
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), f"not an HTTP answer: {bytes(data[:200])!r}"
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return Answer(int(lines[0].split()[1]), headers, body, seconds, sent[0])


def _answer_length(data: bytearray) -> int:
    head, _, _ = bytes(data).partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return len(data) + 1


def repeated(total: int, piece: bytes = b"x" * 65536) -> Iterator[bytes]:
    while total > 0:
        yield piece[:total]
        total -= len(piece)


def test_a_declared_100_mb_json_body_is_refused_before_it_is_sent(served: Served) -> None:
    head = (
        "POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {100_000_000}\r\n\r\n"
    ).encode()
    answer = exchange(served.port, [head])  # not one byte of the body
    assert answer.status == 413
    assert answer.json() == {"detail": f"the request body exceeds {MIB} bytes"}
    assert answer.headers["connection"] == "close"  # too much to drain
    assert answer.seconds < 2


def test_a_chunked_body_is_cut_off_at_the_limit(served: Served) -> None:
    head = (
        b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )

    def body() -> Iterator[bytes]:
        yield head + b'6\r\n{"a":"\r\n'
        for piece in repeated(8 * MIB):
            yield b"%x\r\n%s\r\n" % (len(piece), piece)
        yield b'2\r\n"}\r\n0\r\n\r\n'

    before = served.peak_rss_mib()
    answer = exchange(served.port, body())
    assert answer.status == 413, answer.body
    assert answer.json() == {"detail": f"the request body exceeds {MIB} bytes"}
    assert served.peak_rss_mib() - before < 16


def test_a_64_mib_authorization_header_is_refused_as_it_arrives(served: Served) -> None:
    def head() -> Iterator[bytes]:
        yield b"GET /api/v1/users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        yield from repeated(64 * MIB)
        yield b"\r\n\r\n"

    before = served.peak_rss_mib()
    answer = exchange(served.port, head())
    assert answer.status == 431
    assert answer.json() == {"detail": "the header fields exceed 65536 bytes"}
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.seconds < 2
    assert answer.sent < 32 * MIB  # refused long before the end, not read to the end
    assert served.peak_rss_mib() - before < 16
    assert httpx.get(f"{served.url}/health").status_code == 200  # and still serving


def test_long_urls_and_many_headers_are_refused(served: Served) -> None:
    long_url = f"GET /api/v1/places?q={'a' * 20_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    answer = exchange(served.port, [long_url])
    assert answer.status == 414
    assert answer.json() == {"detail": "the request target exceeds 16384 bytes"}
    many = "".join(f"X-Filler-{n}: {n}\r\n" for n in range(150))
    answer = exchange(served.port, [f"GET /health HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode()])
    assert answer.status == 431
    assert answer.json() == {"detail": "more than 100 header fields"}
    # /rest/v1 answers in PostgREST's shape, even from the protocol.
    rest = f"GET /rest/v1/place?{'a' * 20_000} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    body = exchange(served.port, [rest]).json()
    assert body["code"] == "PGRST100" and "16384 bytes" in body["message"]
    # Within the limits nothing changes, keep-alive included.
    with httpx.Client(base_url=served.url) as client:
        for _ in range(3):
            assert client.get("/health", headers={"X-Big": "b" * 60_000}).status_code == 200


def test_unjoined_websockets_time_out_and_each_client_holds_few(served: Served) -> None:
    url = f"ws://127.0.0.1:{served.port}/realtime/v1/websocket?vsn=1.0.0"
    started = time.monotonic()
    with websockets.sync.client.connect(url) as idle, pytest.raises(ConnectionClosed) as closed:
        idle.recv(timeout=JOIN_TIMEOUT_S + 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert time.monotonic() - started < JOIN_TIMEOUT_S + 2
    held = [websockets.sync.client.connect(url) for _ in range(MAX_SOCKETS_PER_CLIENT)]
    try:
        with pytest.raises(InvalidStatus) as refused:  # refused before the upgrade
            websockets.sync.client.connect(url, open_timeout=5)
        assert refused.value.response.status_code == 403
        held.pop().close()
        held.append(_connect_within(url, seconds=3))  # the freed slot is taken again
    finally:
        for connection in held:
            connection.close()
    # A socket that joins stays (the anon key reads places only, but it is a valid join).
    with websockets.sync.client.connect(f"{url}&apikey={ANON_KEY}") as joined:
        join = {"topic": "realtime:x", "event": "phx_join", "ref": "1",
                "payload": {"config": {"postgres_changes": []}}}  # fmt: skip
        joined.send(json.dumps(join))
        assert json.loads(joined.recv(timeout=5))["payload"]["status"] == "ok"
        time.sleep(JOIN_TIMEOUT_S + 0.5)
        joined.send(json.dumps({"topic": "phoenix", "event": "heartbeat", "ref": "2",
                                "payload": {}}))  # fmt: skip
        assert json.loads(joined.recv(timeout=5))["payload"]["status"] == "ok"


def _connect_within(url: str, seconds: float) -> websockets.sync.client.ClientConnection:
    """A websocket, retried while the server is still releasing a closed one's slot."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return websockets.sync.client.connect(url, open_timeout=5)
        except InvalidStatus:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# -- refusals in each surface's shape; 422s that keep secrets ------------------------------


@pytest.fixture(scope="module")
def root(api_app: Any) -> Iterator[TestClient]:
    with TestClient(api_app) as client:
        yield client


def test_body_limits_answer_in_each_surfaces_shape(root: TestClient) -> None:
    big = b'{"a": "' + b"x" * (MIB + 1) + b'"}'
    headers = {"Content-Type": "application/json"}
    ours = root.post("/api/v1/auth/register", content=big, headers=headers)
    assert ours.status_code == 413 and ours.json() == {
        "detail": f"the request body exceeds {MIB} bytes"
    }
    gotrue = root.post("/auth/v1/signup", content=big, headers={**headers, "apikey": ANON_KEY})
    assert gotrue.status_code == 413
    assert gotrue.json() == {"code": 413, "error_code": "validation_failed",
                             "msg": f"the request body exceeds {MIB} bytes"}  # fmt: skip
    rest = root.post("/rest/v1/place", content=big, headers={**headers, "apikey": ANON_KEY})
    assert rest.status_code == 413 and rest.json()["code"] == "PGRST102"
    assert set(rest.json()) == {"code", "message", "details", "hint"}
    storage = root.post("/storage/v1/bucket", content=big, headers=headers)
    assert storage.status_code == 413
    assert storage.json()["statusCode"] == "413" and storage.json()["error"] == "Payload too large"
    # Storage uploads keep Storage's own limit (STORAGE_MAX_OBJECT_BYTES, 10 MiB): a 2 MiB
    # object is past the JSON limit but reaches Storage, which refuses it for its token.
    upload = root.post("/storage/v1/object/b/a.txt", content=b"x" * 2 * MIB)
    assert upload.status_code != 413 and "statusCode" in upload.json()


def test_422s_never_echo_secrets_and_stay_small(root: TestClient) -> None:
    secret = "hunter2-do-not-echo-" + uuid.uuid4().hex
    missing_name = {"username": "ok_user", "password": secret}  # the whole body is the input
    short_password = {"username": "ok_user", "password": "short", "full_name": "x"}
    huge = {"username": "ok_user", "password": secret, "full_name": "y" * 900_000}
    for body in (missing_name, short_password, huge):
        answer = root.post("/api/v1/auth/register", json=body)
        assert answer.status_code == 422, answer.text
        assert secret not in answer.text and '"short"' not in answer.text
        assert len(answer.content) < 4096, len(answer.content)
    many = root.get("/api/v1/places", params=[(f"p{n}", "x") for n in range(10)])
    assert many.status_code == 200  # unknown parameters are not errors
    form = root.post("/api/v1/auth/token", data={"password": secret})  # no username
    assert form.status_code == 422 and secret not in form.text


# -- no 500 from any input -----------------------------------------------------------------


@pytest.fixture(scope="module")
def user(api_app: Any, api_db: DatabaseUnderTest) -> Account:
    with TestClient(api_app, base_url="http://testserver/api/v1") as client:
        admin = new_admin(client, api_db)
        tag = uuid.uuid4().hex[:8]
        for n in range(3):
            put_place(client, admin, f"surface_{tag}_{n}", types=["museum"])
        account = new_account(client, "surface")
        client.put("/preferences/museum", json={"rating": 0.5}, headers=account.headers)
        return account


def _cursor(value: Any) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


CURSOR_KEYS = {"/reviews": ("id",), "/places": ("id",), "/places?near=48.85,2.35": ("d", "id")}


@given(path=st.sampled_from(sorted(CURSOR_KEYS)), values=st.lists(JSON, min_size=2, max_size=2))
@example(path="/reviews", values=[True, True])
@example(path="/places?near=48.85,2.35", values=[True, "a"])
@example(path="/places?near=48.85,2.35", values=[float("inf"), "a"])
@example(path="/reviews", values=[2**70, 0])
@example(path="/places", values=["\x00", 0])
@PROPERTY
def test_cursors_holding_any_json_are_400_never_500(
    client: TestClient, user: Account, path: str, values: list[Any]
) -> None:
    key = dict(zip(CURSOR_KEYS[path], values, strict=False))
    for cursor in (_cursor(key), _cursor(values[0])):
        answer = client.get(path, params={"cursor": cursor}, headers=user.headers)
        assert answer.status_code in (200, 400), (path, key, answer.text)


# What the API takes as input, operation by operation: (method, path, body or None).
OPERATIONS = [
    ("POST", "/auth/register", "json"), ("POST", "/auth/token", "form"),
    ("PATCH", "/users/me", "json"), ("PUT", "/places/p", "json"), ("POST", "/reviews", "json"),
    ("PATCH", "/reviews/1", "json"), ("PUT", "/preferences/museum", "json"),
    ("GET", "/places", None), ("GET", "/recommendations", None), ("GET", "/reviews", None),
]  # fmt: skip
QUERY = st.dictionaries(
    st.sampled_from(["lat", "lng", "radius_km", "limit", "near", "category", "q", "cursor",
                     "exclude_reviewed", "place_id"]),
    st.one_of(st.text(max_size=30), st.integers().map(str), st.floats().map(str)),
    max_size=4,
)  # fmt: skip
BODY = st.dictionaries(
    st.sampled_from(["username", "password", "full_name", "name", "lat", "lng", "rating",
                     "place_id", "comment", "types", "category", "new_password"]),
    JSON,
    max_size=5,
)  # fmt: skip


def _claims() -> st.SearchStrategy[dict[str, Any]]:
    value = JSON | st.integers(min_value=-(2**80), max_value=2**80).map(str)
    return st.fixed_dictionaries(
        {"sub": value},
        optional={"exp": value, "aud": value, "role": value, "iat": value, "iss": value},
    )


def _signed(claims: dict[str, Any], secret: str) -> str:
    """A validly signed HS256 JWT of any claims (PyJWT refuses to sign some)."""

    def part(value: Any) -> bytes:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    signing_input = part({"alg": "HS256", "typ": "JWT"}) + b"." + part(claims)
    mac = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()


TOKENS = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
    _claims().map(lambda claims: _signed(claims, TEST_JWT_SECRET)),
    _claims().map(lambda claims: _signed(claims, TEST_SUPABASE_JWT_SECRET)),
)


@given(
    operation=st.sampled_from(OPERATIONS), query=QUERY, body=BODY,
    token=st.none() | TOKENS, secret=st.sampled_from(["pw-" + uuid.uuid4().hex]),
)  # fmt: skip
@PROPERTY
def test_bodies_queries_and_tokens_never_answer_5xx_nor_echo_secrets(
    root: TestClient, user: Account, operation: tuple[str, str, str | None],
    query: dict[str, str], body: dict[str, Any], token: str | None, secret: str,
) -> None:  # fmt: skip
    method, path, kind = operation
    body = {**body, "password": secret} if kind else body
    headers = {"Authorization": f"Bearer {token}"} if token is not None else user.headers
    request: dict[str, Any] = {"params": query, "headers": headers}
    if kind == "json":
        request["content"] = json.dumps(body, allow_nan=True)
        request["headers"] = {**headers, "Content-Type": "application/json"}
    elif kind == "form":
        request["data"] = {k: json.dumps(v) for k, v in body.items()}
    answer = root.request(method, f"/api/v1{path}", **request)
    assert answer.status_code < 500, answer.text
    assert secret not in answer.text
    assert answer.headers["x-content-type-options"] == "nosniff"


# -- headers and exposure ------------------------------------------------------------------


def test_every_response_carries_the_security_headers(root: TestClient, user: Account) -> None:
    answers = {
        "ok": root.get("/api/v1/places"),
        "401": root.get("/api/v1/users/me"),
        "404": root.get("/nowhere"),
        "422": root.get("/api/v1/places", params={"limit": "x"}),
        "health": root.get("/health"),
        "metrics": root.get("/metrics"),
        "openapi": root.get("/openapi.json"),
        "gotrue": root.get("/auth/v1/health"),
        "rest": root.get("/rest/v1/place"),
        "storage": root.get("/storage/v1/bucket"),
    }
    for name, answer in answers.items():
        assert answer.headers.get("x-content-type-options") == "nosniff", name
        csp = answer.headers.get("content-security-policy", "")
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, name
        assert answer.headers.get("referrer-policy") == "no-referrer", name
    docs = root.get("/docs")
    assert docs.status_code == 200
    assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
    assert "https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]


def test_token_responses_are_never_stored(root: TestClient) -> None:
    username = f"nostore_{uuid.uuid4().hex[:8]}"
    account = {"username": username, "password": PASSWORD, "full_name": "N"}
    registered = root.post("/api/v1/auth/register", json=account)
    assert registered.status_code == 201
    token = root.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert token.status_code == 200 and token.headers["cache-control"] == "no-store"
    anon = {"apikey": ANON_KEY}
    email = f"{username}@example.com"
    signup = root.post("/auth/v1/signup", json={"email": email, "password": PASSWORD},
                       headers=anon)  # fmt: skip
    assert signup.status_code == 200 and signup.headers["cache-control"] == "no-store"
    session = root.post("/auth/v1/token", params={"grant_type": "password"},
                        json={"email": email, "password": PASSWORD}, headers=anon)  # fmt: skip
    assert session.status_code == 200 and session.headers["cache-control"] == "no-store"
    assert "no-store" not in root.get("/api/v1/places").headers.get("cache-control", "")


OPS_CREDENTIAL = "ops-" + "Zq8vT3kLm2Xw9Rj4Nc7Bp1Hd6Fs5Gy0A"


@pytest.mark.parametrize(
    ("access", "anonymous", "with_credential"),
    [("public", 200, 200), ("credential", 401, 200), ("off", 404, 404)],
)
def test_docs_and_metrics_can_be_off_or_behind_a_credential(
    api_settings: Settings, access: str, anonymous: int, with_credential: int
) -> None:
    from planwise.app import create_app

    changed = {"docs_access": access, "metrics_access": access,
               "ops_credential": SecretStr(OPS_CREDENTIAL)}  # fmt: skip
    app = create_app(api_settings.model_copy(update=changed))
    basic = base64.b64encode(f"prometheus:{OPS_CREDENTIAL}".encode()).decode()
    try:
        with TestClient(app) as client:
            for path in ("/docs", "/redoc", "/openapi.json", "/metrics"):
                assert client.get(path).status_code == anonymous, path
                for authorization in (f"Bearer {OPS_CREDENTIAL}", f"Basic {basic}"):
                    answer = client.get(path, headers={"Authorization": authorization})
                    assert answer.status_code == with_credential, (path, authorization)
                wrong = client.get(path, headers={"Authorization": "Bearer wrong"})
                assert wrong.status_code == anonymous, path
            if access == "credential":
                assert client.get("/metrics").headers["www-authenticate"].startswith("Basic")
            assert client.get("/health").status_code == 200  # the rest is untouched
    finally:
        app.state.engine.dispose()


def test_a_credential_setting_needs_the_credential(api_settings: Settings) -> None:
    unset = api_settings.model_copy(update={"metrics_access": "credential", "ops_credential": None})
    with pytest.raises(ConfigError, match="OPS_CREDENTIAL"):
        unset.check_servable()


# -- secrets -------------------------------------------------------------------------------

STRONG = "nXb4-Q9rT_Lk2vZm8WcYp3JhEa7Ud1Gs6Fo0Ri5"


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("JWT_SECRET", "a" * 32, "distinct character"),
        ("JWT_SECRET", "0123456789" * 4, "repeats"),
        ("JWT_SECRET", "passwordpasswordpasswordpassword", "distinct character"),
        ("SUPABASE_JWT_SECRET", "s", "shorter than 32"),
        ("SUPABASE_JWT_SECRET", "b" * 64, "distinct character"),
    ],
)
def test_production_refuses_short_or_guessable_secrets(
    settings: Settings, variable: str, value: str, reason: str
) -> None:
    secrets = {"jwt_secret": SecretStr(STRONG), "supabase_jwt_secret": SecretStr(STRONG[::-1])}
    secrets[variable.lower()] = SecretStr(value)
    weak = settings.model_copy(update={"planwise_env": "production", **secrets})
    with pytest.raises(ConfigError, match=f"^{variable} .*{reason}"):
        weak.check_servable()
    strong = {"jwt_secret": SecretStr(STRONG), "supabase_jwt_secret": SecretStr(STRONG[::-1])}
    settings.model_copy(update={"planwise_env": "production", **strong}).check_servable()


def test_serve_exits_with_a_message_naming_the_weak_secret(settings: Settings) -> None:
    env = {**os.environ, "PLANWISE_ENV": "production", "JWT_SECRET": "j" * 32,
           "SUPABASE_JWT_SECRET": STRONG}  # fmt: skip
    refused = _serve_until_exit(env)
    assert refused.returncode == 2, refused.stderr
    assert "JWT_SECRET has only 1 distinct character" in refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout


def _serve_until_exit(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [PLANWISE, "serve", "--port", str(free_port())], env=env, capture_output=True,
            text=True, timeout=20, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("planwise serve started (and kept running) with a weak secret")
