"""CORS: a dashboard on another origin may use the API and the stream when cors_origins allows."""

from __future__ import annotations

import http.client

import pytest

from bench.daemon import Daemon
from printerd.config import ConfigError, load_settings
from support import Api, request, request_json

DASHBOARD = "https://dash.example.com"
TOKEN = "cors-token"


def headers_of(response) -> dict[str, str]:
    return {name.decode().lower(): b", ".join(values).decode()
            for name, values in response.headers.getAllRawHeaders()}


def test_without_cors_origins_no_page_of_another_origin_may_read_answers(inline_store, clock):
    stub = Api(inline_store, clock).stub
    response, _ = request(stub, "/api/recent", headers={"Origin": DASHBOARD})
    assert "access-control-allow-origin" not in headers_of(response)


def test_an_allowed_origin_reads_answers_refusals_included(inline_store, clock):
    stub = Api(inline_store, clock, tokens=(TOKEN,), cors_origins=(DASHBOARD,)).stub
    response, _ = request(stub, "/api/recent",
                          headers={"Origin": DASHBOARD, "Authorization": f"Bearer {TOKEN}"})
    headers = headers_of(response)
    assert response.code == 200
    assert headers["access-control-allow-origin"] == DASHBOARD
    assert headers["access-control-allow-credentials"] == "true"
    assert headers["vary"] == "Origin"
    # The dashboard sees why it was refused, and when to retry.
    response, _ = request(stub, "/api/recent", headers={"Origin": DASHBOARD})
    assert response.code == 401
    assert headers_of(response)["access-control-allow-origin"] == DASHBOARD
    assert "Retry-After" in headers_of(response)["access-control-expose-headers"]


def test_a_preflight_is_answered_without_a_token(inline_store, clock):
    stub = Api(inline_store, clock, tokens=(TOKEN,), cors_origins=(DASHBOARD,)).stub
    response, body = request(stub, "/api/printers/default/state", method="OPTIONS", headers={
        "Origin": DASHBOARD, "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization, content-type"})
    headers = headers_of(response)
    assert response.code == 204 and body == b""
    assert "PUT" in headers["access-control-allow-methods"]
    assert "Authorization" in headers["access-control-allow-headers"]
    assert headers["access-control-allow-origin"] == DASHBOARD


def test_another_origin_gets_no_cors_headers_and_its_preflight_fails(inline_store, clock):
    stub = Api(inline_store, clock, tokens=(TOKEN,), cors_origins=(DASHBOARD,)).stub
    response, _ = request(stub, "/api/recent", method="OPTIONS", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert response.code in (401, 405)
    assert "access-control-allow-origin" not in headers_of(response)


def test_star_allows_any_origin_and_tokens_are_still_required(inline_store, clock):
    stub = Api(inline_store, clock, tokens=(TOKEN,), cors_origins=("*",)).stub
    code, body = request_json(stub, "/api/recent", headers={"Origin": "https://any.example"})
    assert code == 401


@pytest.mark.parametrize("value", ["dash.example.com", "https://dash.example.com/app",
                                   "ftp://dash.example.com"])
def test_a_value_that_is_not_an_origin_is_a_config_error(value):
    with pytest.raises(ConfigError, match="--cors-origins: .*is not an origin"):
        load_settings({"cors_origins": value}, {})


@pytest.mark.e2e
def test_the_real_daemons_stream_is_readable_from_an_allowed_origin(tmp_path):
    daemon = Daemon(tmp_path, "--database=var/printerd.sqlite3",
                    f"--cors-origins={DASHBOARD},http://127.0.0.1:3000")
    try:
        connection = http.client.HTTPConnection("127.0.0.1", daemon.http_port, timeout=10)
        connection.request("GET", "/api/stream", headers={"Origin": DASHBOARD})
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("text/event-stream")
        assert response.getheader("Access-Control-Allow-Origin") == DASHBOARD
        assert response.getheader("Access-Control-Allow-Credentials") == "true"
        connection.close()
    finally:
        daemon.stop()
