"""Authentication: every protected route needs a token or a session cookie."""

from __future__ import annotations

import json

import pytest
from twisted.internet.task import Clock

from support import Api, request, request_json, result_of
from printerd.http.auth import SESSION_SECONDS

TOKEN = "s3cret-token"
PROTECTED = [
    ("GET", "/api/receipts"), ("GET", "/api/receipts/1"), ("GET", "/api/receipts/1/raw"),
    ("GET", "/api/recent"), ("GET", "/api/stats"), ("GET", "/api/stream"), ("GET", "/metrics"),
    ("GET", "/api/forwarder"), ("GET", "/api/forwarder/dead"),
    ("POST", "/api/forwarder/dead/1/retry"), ("POST", "/api/forwarder/dead/retry"),
    ("GET", "/api/printers"), ("PUT", "/api/printers/default/state"),
    ("GET", "/api/receipts/1.txt"), ("GET", "/api/receipts/1.html"), ("GET", "/api/receipts/1.png"),
    ("GET", "/api/receipts/1.pdf"), ("GET", "/api/receipts/1/commands"),
    ("POST", "/api/printers/default/test-receipt"), ("POST", "/api/ingest"),
    ("GET", "/api/no-such-route"),
]
OPEN_ROUTES = {"/", "/static/<name>", "/api/health", "/api/session", "/livez", "/readyz",
               "/api/openapi.json"}


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


DEEP = b"[" * 100_000  # RecursionError in json.loads, which is not a ValueError


@pytest.mark.parametrize("body, code", [
    (b"", 400), (b"not json", 400), (b"[1]", 400), (b'{"tok": 1}', 400), (b'{"token": 7}', 400),
    (b"x" * 5000, 413), (DEEP[:4000], 400), (b'{"token": ' + b"[" * 2000 + b"]" * 2000 + b"}", 400),
])
def test_bad_session_bodies_are_a_json_4xx_never_a_500(stub, body, code):
    assert request_json(stub, "/api/session", method="POST", data=body)[0] == code


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


def test_strangers_failing_at_the_owners_address_do_not_spend_the_owners_requests(
        inline_store, clock):
    """Today's bucket is per address and spent before the token check: 260 strangers' 401s
    put the owner at 429.  Requests with a token are limited per token."""
    from printerd.http.ratelimit import RateLimiter

    stub = Api(inline_store, clock, tokens=(TOKEN, "second-token"),
               limiter=RateLimiter(clock, rate=1, burst=5)).stub
    strangers = [request_json(stub, "/api/receipts")[0] for _ in range(20)]
    assert strangers == [401] * 5 + [429] * 15
    owner = {"Authorization": [f"Bearer {TOKEN}"]}
    assert [request_json(stub, "/api/receipts", headers=owner)[0] for _ in range(6)] \
        == [200] * 5 + [429]
    other = {"Authorization": ["Bearer second-token"]}
    assert request_json(stub, "/api/receipts", headers=other)[0] == 200  # its own bucket
    assert request_json(stub, "/api/health")[0] == 200  # health is never limited


def test_a_session_is_limited_with_the_token_it_was_opened_with(inline_store, clock):
    from printerd.http.ratelimit import RateLimiter

    stub = Api(inline_store, clock, tokens=(TOKEN,),
               limiter=RateLimiter(clock, rate=1, burst=3)).stub
    response, _ = request(stub, "/api/session", method="POST",
                          data=json.dumps({"token": TOKEN}).encode())
    session = {"Cookie": [response.headers.getRawHeaders("set-cookie")[0].split(";")[0]]}
    bearer = {"Authorization": [f"Bearer {TOKEN}"]}
    codes = [request_json(stub, "/api/recent", headers=h)[0] for h in (session, bearer) * 2]
    assert codes == [200, 200, 200, 429]


def test_opening_the_stream_is_not_refused_by_the_rest_limit(inline_store, clock):
    """An EventSource never reconnects after a 429: the stream has its own caps instead."""
    from printerd.http.ratelimit import RateLimiter
    from printerd.http.stream import StreamHub

    hub = StreamHub(clock, inline_store.receipts_after, max_per_client=3)
    stub = Api(inline_store, clock, tokens=(TOKEN,), hub=hub,
               limiter=RateLimiter(clock, rate=1, burst=2)).stub
    owner = {"Authorization": [f"Bearer {TOKEN}"]}
    while request_json(stub, "/api/recent", headers=owner)[0] != 429:
        pass
    streams = [stub.get("http://printerd/api/stream", headers=owner) for _ in range(4)]
    stub.flush()
    codes = [result_of(d).code for d in streams]
    assert codes == [200, 200, 200, 503]  # the fourth is over this client's stream cap
    assert request_json(stub, "/api/stream")[0] == 401  # without a token: still refused


@pytest.mark.parametrize("host, code", [("printerd", 200), ("localhost:8000", 200),
                                        ("evil.example", 421), ("printerd.evil.example", 421)])
def test_a_host_the_api_does_not_answer_to_gets_421(stub, host, code):
    headers = {"Authorization": [f"Bearer {TOKEN}"], "Host": [host]}
    got, body = request_json(stub, "/api/receipts", headers=headers)
    assert got == code
    if code == 421:
        assert "http_allowed_hosts" in body["error"]
