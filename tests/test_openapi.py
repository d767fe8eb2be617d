"""The OpenAPI 3.1 document: valid, served, and equal to the route table."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from printerd.http.openapi import DOCUMENT
from support import Api, request, request_json


def openapi_path(rule: str) -> str:
    """A werkzeug rule as an OpenAPI path: <int:receipt_id> -> {receipt_id}."""
    return re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", r"{\1}", rule)


def test_the_document_is_valid_openapi_3_1():
    assert DOCUMENT["openapi"].startswith("3.1")
    validate(DOCUMENT)  # raises on any error


def test_its_paths_and_methods_are_exactly_the_routes(inline_store, clock):
    routes = {(openapi_path(rule), method.lower())
              for rule, methods in Api(inline_store, clock).api.routes.rules()
              for method in methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, item in DOCUMENT["paths"].items()
                  for method in item if method in {"get", "put", "post", "delete", "patch"}}
    assert documented == routes


def test_it_is_served_to_anyone_at_api_openapi_json(inline_store, clock):
    stub = Api(inline_store, clock, tokens=("t",)).stub
    assert request_json(stub, "/api/openapi.json") == (200, DOCUMENT)


def test_a_405_says_which_methods_the_route_takes(inline_store, clock):
    stub = Api(inline_store, clock).stub
    response, _ = request(stub, "/api/receipts", method="DELETE")
    assert response.code == 405
    assert response.headers.getRawHeaders("allow") == ["GET, HEAD"]
    assert request_json(stub, "/api/stats", method="POST") == (
        405, {"error": "method not allowed"})


def test_the_checker_the_tests_use_refuses_an_answer_the_document_does_not_allow():
    import pytest
    from jsonschema import ValidationError

    from openapi_check import check_response

    check_response("GET", "/api/receipts?limit=2", 200, {"receipts": [], "next": None})
    with pytest.raises(ValidationError):
        check_response("GET", "/api/receipts/7", 200, {"id": "seven"})
    with pytest.raises(ValidationError):
        check_response("GET", "/api/receipts/7", 404, {"message": "no receipt 7"})
    with pytest.raises(ValidationError):  # a probe's status is a string
        check_response("GET", "/readyz", 503, {"status": False})
