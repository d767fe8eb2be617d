"""
Validates the API's JSON answers against the OpenAPI document (jsonschema, Draft 2020-12: the
dialect of OpenAPI 3.1's schemas). ``support.request_json`` and the end-to-end ``Daemon.get``
call ``check_response`` on every answer the tests read.
"""

from __future__ import annotations

import re
from typing import Any, Optional
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator

from printerd.http.openapi import DOCUMENT


def _template(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{\w+\\\}", "[^/]+?", re.escape(path)) + "$")


_OPERATIONS = [(_template(path), path, item) for path, item in DOCUMENT["paths"].items()]


def response_schema(method: str, url: str, status: int) -> Optional[dict[str, Any]]:
    """The JSON schema the document gives for this answer; None when it documents none."""
    path = urlsplit(url).path or "/"
    matches = [(template, item) for pattern, template, item in _OPERATIONS
               if pattern.match(path)]
    # The most specific template first (fewest parameters): /api/forwarder/dead/retry before
    # /api/forwarder/dead/{delivery_id}/retry.
    matches.sort(key=lambda match: match[0].count("{"))
    for _, item in matches:
        operation = item.get(method.lower())
        if operation is None:
            continue
        response = operation["responses"].get(str(status)) or operation["responses"]["default"]
        return response.get("content", {}).get("application/json", {}).get("schema")
    # No operation for this path and method: the answer is the routing error.
    return DOCUMENT["components"]["schemas"]["Error"]


def check_response(method: str, url: str, status: int, body: Any) -> None:
    schema = response_schema(method, url, status)
    if schema is None:
        raise AssertionError(f"{method} {url} answered {status} with JSON the OpenAPI "
                             "document does not describe")
    # $refs point into the document's components: validate with them at hand.
    Draft202012Validator({**schema, "components": DOCUMENT["components"]}).validate(body)
