"""
The OpenAPI 3.1 document of printerd's HTTP API, served at ``GET /api/openapi.json``.

Written by hand, next to the routes it describes; ``tests/test_openapi.py`` keeps it honest:
its paths and methods equal the route table's, the document passes openapi-spec-validator, and
the API's answers in the tests (stub and end-to-end) validate against its schemas.
"""

from __future__ import annotations

from typing import Any

from twisted.web.iweb import IRequest

from printerd import __version__
from printerd.http.responses import encode_json, json_app, json_body_encoded

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


INTEGER_ID = {"type": "integer", "minimum": 1}
ERRORS = {"default": _error("an error: 400 names the bad parameter, 401, 404, 405, 413, 421, "
                            "429 (with Retry-After), 503")}
PROBE = {"type": "object", "required": ["status"],
         "properties": {"status": {"type": "string"},
                        "version": {"type": "string"},
                        "checks": {"type": "object",
                                   "additionalProperties": {"type": "string"}}}}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "additionalProperties": False,
              "properties": {"error": {"type": "string"}}},
    "Receipt": {
        "type": "object",
        "required": ["id", "printer", "peer", "received_at", "job", "bytes", "text", "cut",
                     "truncated", "sha256"],
        "properties": {
            "id": INTEGER_ID, "printer": {"type": "string"}, "peer": {"type": "string"},
            "received_at": {"type": "string", "description": "UTC, ISO 8601"},
            "job": {"type": "integer"}, "bytes": {"type": "integer", "minimum": 0},
            "text": {"type": "string"},
            "cut": {"type": "string", "enum": ["full", "partial", "none"]},
            "truncated": {"type": "boolean"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "barcodes": {"type": "array"}, "codes_2d": {"type": "array"},
            "images": {"type": "object"}, "drawer_kicks": {"type": "array"},
            "unknown_commands": {"type": "object"}, "dialects": {"type": "object"},
            "line_styles": {"type": "array"},
            "site": {"type": "string", "description": "the site setting of the printerd that "
                                                      "received it"},
            "site_receipt_id": {"type": "integer", "description": "a forwarded receipt's id "
                                                                  "at its site"},
        },
    },
    "ReceiptPage": {"type": "object", "required": ["receipts"],
                    "properties": {"receipts": {"type": "array", "items": _ref("Receipt")},
                                   "next": {"type": ["string", "null"]}}},
    "Printer": {"type": "object", "required": ["name", "state"],
                "properties": {"name": {"type": "string"},
                               "addresses": {"type": "array", "items": {"type": "string"},
                                             "description": "host:port as a POS types it"},
                               "emulation": {"type": "string", "enum": ["epson", "star"]},
                               "state": {"type": "object", "properties": {
                                   "online": {"type": "boolean"},
                                   "paper": {"type": "string",
                                             "enum": ["ok", "near_end", "out"]},
                                   "cover_open": {"type": "boolean"},
                                   "drawer_open": {"type": "boolean"}}}}},
    "Probe": PROBE,
    "Session": {"type": "object", "required": ["tokens", "logged_in"],
                "properties": {"tokens": {"type": "boolean"}, "logged_in": {"type": "boolean"}}},
    "CommandListing": {
        "type": "object", "required": ["commands", "summary", "next"],
        "properties": {
            "commands": {"type": "array", "items": {
                "type": "object", "required": ["offset", "length", "kind", "name", "known"],
                "properties": {
                    "offset": {"type": "integer", "minimum": 0},
                    "length": {"type": "integer", "minimum": 1},
                    "kind": {"type": "string", "enum": ["command", "text", "control"]},
                    "name": {"type": "string"}, "known": {"type": "boolean"},
                    "params": {"type": "array", "items": {"type": "integer"}},
                    "more_bytes": {"type": "integer"}, "cut_off": {"type": "integer"},
                    "text": {"type": "string"},
                    "reply": {"type": ["string", "null"],
                              "description": "a status query's reply, hex; null: none"}}}},
            "summary": {"type": "object", "required": ["emulation", "bytes", "complete"],
                        "properties": {"emulation": {"type": "string"},
                                       "bytes": {"type": "integer"},
                                       "complete": {"type": "boolean"}}},
            "next": {"type": ["string", "null"]}}},
}

RENDERING_TYPES = {"txt": "text/plain", "html": "text/html", "png": "image/png",
                   "pdf": "application/pdf"}


def _get(summary: str, responses: dict[str, Any], parameters: list | None = None,
         open_route: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "responses": {**responses, **ERRORS}}
    if parameters:
        operation["parameters"] = parameters
    if open_route:
        operation["security"] = []
    return operation


PATHS: dict[str, Any] = {
    "/": {"get": _get("the web page", {"200": {"description": "HTML",
                                               "content": {"text/html": {}}}},
                      open_route=True)},
    "/static/{name}": {"get": _get(
        "the page's script and stylesheet", {"200": {"description": "a file"}},
        [_path_param("name", {"type": "string"})], open_route=True)},
    "/livez": {"get": _get("liveness: the process and its reactor answer",
                           {"200": _json(_ref("Probe"), "alive")}, open_route=True)},
    "/readyz": {"get": _get("readiness: raw listeners up and the database writable",
                            {"200": _json(_ref("Probe"), "ready"),
                             "503": _json(_ref("Probe"), "not ready")}, open_route=True)},
    "/api/health": {"get": _get("the health checks (checks and version with a token)",
                                {"200": _json(_ref("Probe"), "ok or degraded"),
                                 "503": _json(_ref("Probe"), "failing")}, open_route=True)},
    "/api/openapi.json": {"get": _get("this document", {"200": _json({"type": "object"},
                                                                     "OpenAPI 3.1")},
                                      open_route=True)},
    "/api/session": {"get": _get("whether tokens are needed and this browser is logged in",
                                 {"200": _json(_ref("Session"), "the session")},
                                 open_route=True),
                     "delete": {
        "summary": "log out: the session ends on the server, the cookie is dropped",
        "security": [],
        "responses": {"200": _json({"type": "object", "required": ["ok"],
                                    "properties": {"ok": {"const": True}}}, "logged out"),
                      **ERRORS}},
                     "post": {
        "summary": "trade a token for the session cookie", "security": [],
        "requestBody": {"required": True, "content": {JSON: {"schema": {
            "type": "object", "required": ["token"],
            "properties": {"token": {"type": "string"}}}}}},
        "responses": {"200": _json({"type": "object", "required": ["ok"],
                                    "properties": {"ok": {"const": True}}}, "logged in"),
                      **ERRORS}}},
    "/api/receipts": {"get": _get("receipts, newest first", {
        "200": _json(_ref("ReceiptPage"), "a page; next is null on the last")}, [
        _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "default 50"),
        _query("before", INTEGER_ID, "ids below"), _query("after", INTEGER_ID, "ids above"),
        _query("since", {"type": "string"}, "ISO 8601 (naive: UTC)"),
        _query("until", {"type": "string"}, "ISO 8601 (naive: UTC)"),
        _query("printer", {"type": "string"}, "one printer's"),
        _query("q", {"type": "string"}, "text contains, case-insensitive")])},
    "/api/receipts/{receipt_id}": {"get": _get(
        "one receipt", {"200": _json(_ref("Receipt"), "the receipt")},
        [_path_param("receipt_id", INTEGER_ID)])},
    "/api/receipts/{receipt_id}/raw": {"get": _get(
        "the receipt's original bytes",
        {"200": {"description": "raw ESC/POS", "content": {"application/octet-stream": {}}}},
        [_path_param("receipt_id", INTEGER_ID)])},
    "/api/receipts/{receipt_id}/commands": {"get": _get(
        "what the printer was sent, element by element, as its printer reads it",
        {"200": _json(_ref("CommandListing"), "one page of the listing")},
        [_path_param("receipt_id", INTEGER_ID),
         _query("start", {"type": "integer", "minimum": 0}, "the first element, from 0"),
         _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "default 500")])},
    "/api/receipts/{receipt_id}.{format}": {"get": _get(
        "a rendering, from the raw bytes",
        {"200": {"description": "the rendering",
                 "content": {media: {} for media in RENDERING_TYPES.values()}}},
        [_path_param("receipt_id", INTEGER_ID),
         _path_param("format", {"type": "string", "enum": list(RENDERING_TYPES)}),
         _query("width", {"type": "integer"}, "columns (txt, html: 32, 42, 48, 56, 64) or "
                "dots (png, pdf: 576, 512, 384); default: the printer's paper"),
         _query("db", {"type": "string"}, "the database_id the client expects: 404 if "
                "printerd serves another database")])},
    "/api/recent": {"get": _get("the newest receipts, from memory", {
        "200": _json({"type": "object", "required": ["receipts", "database_id"],
                      "properties": {"receipts": {"type": "array", "items": _ref("Receipt")},
                                     "database_id": {"type": "string"}}},
                     "newest first, and the database they come from")},
        [_query("limit", {"type": "integer", "minimum": 1}, "up to recent_size, default 50")])},
    "/api/stats": {"get": _get("printerd's figures (the table in the README)", {
        "200": _json({"type": "object", "additionalProperties": {
            "type": ["number", "object"]}}, "figures")})},
    "/api/stream": {"get": _get("receipts as Server-Sent Events", {
        "200": {"description": "first event: database (data: {\"database_id\": ...}); then "
                               "event: receipt, data: a Receipt",
                "content": {"text/event-stream": {}}}},
        [_query("after", INTEGER_ID, "replay the receipts after this id"),
         _query("printer", {"type": "string"}, "one printer's"),
         {"name": "Last-Event-ID", "in": "header", "required": False,
          "schema": {"type": "string"}}])},
    "/api/printers": {"get": _get("the printers, their state and counters", {
        "200": _json({"type": "object", "required": ["printers"], "properties": {
            "printers": {"type": "array", "items": _ref("Printer")}}}, "every printer")})},
    "/api/printers/{name}/state": {"put": {
        "summary": "set what the printer's status replies say",
        "parameters": [_path_param("name", {"type": "string"})],
        "requestBody": {"required": True, "content": {JSON: {"schema": {
            "type": "object", "additionalProperties": False, "properties": SCHEMAS[
                "Printer"]["properties"]["state"]["properties"]}}}},
        "responses": {"200": _json(_ref("Printer"), "the printer"), **ERRORS}}},
    "/api/printers/{name}/test-receipt": {"post": {
        "summary": "send a test receipt through the printer's own raw port, as a POS would",
        "parameters": [_path_param("name", {"type": "string"})],
        "responses": {"202": _json({"type": "object",
                                    "required": ["printer", "sent_to", "bytes", "check"],
                                    "properties": {"sent_to": {"type": "string"},
                                                   "bytes": {"type": "integer"},
                                                   "check": {"type": "string"}}},
                                   "the port took the whole job"), **ERRORS}}},
    "/api/forwarder": {"get": _get("webhook targets and their deliveries", {
        "200": _json({"type": "object", "required": ["targets"],
                      "properties": {"targets": {"type": "array"}}}, "per target")})},
    "/api/forwarder/dead": {"get": _get("dead-lettered deliveries", {
        "200": _json({"type": "object", "required": ["dead"],
                      "properties": {"dead": {"type": "array"}}}, "dead letters")},
        [_query("limit", {"type": "integer", "minimum": 1}, "how many")])},
    "/api/forwarder/dead/{delivery_id}/retry": {"post": {
        "summary": "retry one dead letter",
        "parameters": [_path_param("delivery_id", INTEGER_ID)],
        "responses": {"200": _json({"type": "object", "required": ["retried"]}, "retried"),
                      **ERRORS}}},
    "/api/forwarder/dead/retry": {"post": {
        "summary": "retry every dead letter",
        "responses": {"200": _json({"type": "object", "required": ["retried"]}, "retried"),
                      **ERRORS}}},
    "/api/ingest": {"post": {
        "summary": "store a receipt another printerd forwarded (a Standard Webhooks delivery "
                   "of its receipt.printed payload, signed with one of ingest_secrets)",
        "parameters": [{"name": name, "in": "header", "required": True,
                        "schema": {"type": "string"}}
                       for name in ("webhook-id", "webhook-timestamp", "webhook-signature")],
        "requestBody": {"required": True, "content": {JSON: {"schema": {
            "type": "object", "required": ["type", "receipt"],
            "properties": {"type": {"const": "receipt.printed"}, "site": {"type": "string"},
                           "receipt": _ref("Receipt")}}}}},
        "responses": {"200": _json({"type": "object", "required": ["id", "origin"],
                                    "properties": {"id": INTEGER_ID,
                                                   "origin": {"type": "string"}}},
                                   "stored (or stored before: the same id)"), **ERRORS}}},
    "/metrics": {"get": _get("Prometheus metrics", {
        "200": {"description": "the Prometheus text format",
                "content": {"text/plain": {}}}})},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "printerd", "version": __version__,
             "description": "A network receipt printer stand-in: receipts printed on the raw "
                            "port, served over HTTP. Errors are {\"error\": \"...\"}."},
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "printerd_session"}},
    },
    "security": [{"bearer": []}, {"session": []}],
}


class OpenApiRoutes:
    """``GET /api/openapi.json``: the document, for anyone (it holds no data)."""

    app = json_app()

    def __init__(self) -> None:
        self._encoded = encode_json(DOCUMENT)  # the document never changes

    @app.route("/api/openapi.json", methods=["GET"])
    def document(self, request: IRequest) -> bytes:
        return json_body_encoded(request, self._encoded)
