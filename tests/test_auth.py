"""Authentication: every protected route needs a token or a session cookie."""

from __future__ import annotations

import json

import pytest
from twisted.internet.task import Clock

from support import Api, request, request_json
from printerd.http.auth import SESSION_SECONDS
from printerd.tap import listens_only_on_loopback

TOKEN = "s3cret-token"
PROTECTED = [
    ("GET", "/api/receipts"), ("GET", "/api/receipts/1"), ("GET", "/api/receipts/1/raw"),
    ("GET", "/api/recent"), ("GET", "/api/stats"), ("GET", "/api/stream"), ("GET", "/metrics"),
    ("GET", "/api/forwarder"), ("GET", "/api/forwarder/dead"),
    ("POST", "/api/forwarder/dead/1/retry"), ("POST", "/api/forwarder/dead/retry"),
    ("GET", "/api/printers"), ("PUT", "/api/printers/default/state"),
    ("GET", "/api/receipts/1.txt"), ("GET", "/api/receipts/1.html"), ("GET", "/api/receipts/1.png"),
    ("GET", "/api/receipts/1.pdf"), ("POST", "/api/ingest"),
    ("GET", "/api/no-such-route"),
]
OPEN_ROUTES = {"/", "/static/<name>", "/api/health", "/api/session", "/livez", "/readyz"}


def test_the_protected_list_covers_every_route_but_the_open_ones(inline_store, clock):
    """A new route is protected unless listed as open: this list must name it to be tested."""
    import re

    routes = set()
    for rule, methods in Api(inline_store, clock).api.routes.rules():
        example = re.sub(r"<int:\w+>", "1", re.sub(r"<(?:string:)?name>", "default", rule))
        # <any(a, b):x> matches each of its words: one example per word.
        choices = re.search(r"<any\(([^)]*)\):\w+>", example)
        examples = [example.replace(choices.group(0), word.strip())
                    for word in choices.group(1).split(",")] if choices else [example]
        routes |= {(method, each) for method in methods - {"HEAD", "OPTIONS"}
                   for each in examples if rule not in OPEN_ROUTES}
    assert routes == set(PROTECTED) - {("GET", "/api/no-such-route")}


@pytest.fixture
def stub(inline_store, clock):
    return Api(inline_store, clock, tokens=(TOKEN, "second-token")).stub


@pytest.mark.parametrize("method, path", PROTECTED)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic czNjcmV0LXRva2Vu",
                                           "Bearer " + TOKEN[:-1]])
def test_protected_routes_refuse_missing_and_wrong_tokens(stub, method, path,
                                                                authorization):
    headers = {"Authorization": [authorization]} if authorization else {}
    code, body = request_json(stub, path, method=method, headers=headers)
    assert code == 401
    assert "authentication required" in body["error"]


@pytest.mark.parametrize("method, path", [("GET", "/api/receipts"), ("GET", "/api/stats"),
                                          ("POST", "/api/forwarder/dead/retry")])
def test_the_right_token_opens_them(stub, method, path):
    for token in (TOKEN, "second-token"):
        code, _ = request_json(stub, path, method=method,
                                 headers={"Authorization": [f"Bearer {token}"]})
        assert code == 200


def test_tokens_are_never_read_from_the_query_string(stub):
    for name in ("token", "access_token", "api_token"):
        code, _ = request_json(stub, f"/api/receipts?{name}={TOKEN}")
        assert code == 401


def test_health_tells_only_the_status_without_a_token(stub):
    assert request_json(stub, "/api/health") == (200, {"status": "ok"})
    code, body = request_json(stub, "/api/health",
                                headers={"Authorization": [f"Bearer {TOKEN}"]})
    assert "checks" in body


def test_session_cookie_for_browsers(stub, clock):
    response, body = request(stub, "/api/session", method="POST",
                               data=json.dumps({"token": "nope"}).encode())
    assert response.code == 401
    response, body = request(stub, "/api/session", method="POST",
                               data=json.dumps({"token": TOKEN}).encode())
    assert response.code == 200
    (cookie,) = response.headers.getRawHeaders("set-cookie")
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower() and "Path=/" in cookie
    session = cookie.split(";")[0]
    code, _ = request_json(stub, "/api/receipts", headers={"Cookie": [session]})
    assert code == 200
    code, _ = request_json(stub, "/api/receipts", headers={"Cookie": ["printerd_session=x"]})
    assert code == 401
    clock.advance(SESSION_SECONDS + 1)  # sessions expire
    code, _ = request_json(stub, "/api/receipts", headers={"Cookie": [session]})
    assert code == 401


@pytest.mark.parametrize("body", [b"", b"not json", b"[1]", b'{"tok": 1}', b"x" * 5000])
def test_bad_session_bodies_are_4xx(stub, body):
    response, _ = request(stub, "/api/session", method="POST", data=body)
    assert response.code in (400, 413)


@pytest.mark.parametrize("description, loopback", [
    ("tcp:8000:interface=127.0.0.1", True), ("tcp:8000", False),
    ("tcp:8000:interface=0.0.0.0", False), ("tcp6:8000:interface=\\:\\:1", True),
    ("tcp:8000:interface=192.168.1.5", False), ("unix:/run/printerd.sock", True),
    ("tcp:port=8000:interface=localhost", True),
])
def test_which_http_listeners_count_as_local(description, loopback):
    assert listens_only_on_loopback(description) is loopback


def test_token_bucket_refills_with_the_clock():
    from printerd.http.ratelimit import RateLimiter

    clock = Clock()
    limiter = RateLimiter(clock, rate=2, burst=3)
    assert [limiter.allow("a")[0] for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("a") == (False, 1)
    assert limiter.allow("b")[0]  # other clients are not affected
    clock.advance(0.5)
    assert limiter.allow("a")[0]
    assert limiter.limited_total == 2


def test_rate_limited_clients_get_429_with_retry_after(inline_store, clock):
    from printerd.http.ratelimit import RateLimiter

    stub = Api(inline_store, clock, limiter=RateLimiter(clock, rate=1, burst=2)).stub
    codes = [(request_json(stub, "/api/recent"))[0] for _ in range(3)]
    assert codes == [200, 200, 429]
    response, body = request(stub, "/api/recent")
    assert response.headers.getRawHeaders("retry-after") == ["1"]
    assert "too many requests" in json.loads(body)["error"]
    assert (request_json(stub, "/api/health"))[0] == 200  # health is never limited
    clock.advance(1)
    assert (request_json(stub, "/api/recent"))[0] == 200
