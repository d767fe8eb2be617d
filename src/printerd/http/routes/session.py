"""``POST /api/session``: a browser trades a token for a session cookie; ``DELETE`` logs out."""

from __future__ import annotations

from twisted.web.server import Request

from printerd.http.auth import COOKIE, SESSION_SECONDS, Authenticator, bearer_token
from printerd.http.params import ApiError, parse_json_body
from printerd.http.responses import json_app, json_body

MAX_SESSION_BODY = 4096


class SessionRoutes:
    """Logs browsers in (EventSource cannot send an Authorization header, a cookie it can)."""

    app = json_app()

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    @app.route("/api/session", methods=["POST"])
    def open_session(self, request: Request) -> bytes:
        """A token (JSON body or bearer header) buys an HttpOnly cookie."""
        token = bearer_token(request)
        if token is None:
            expected = 'expected {"token": "..."}'
            body = parse_json_body(request, MAX_SESSION_BODY, expected)
            if not isinstance(body, dict) or not isinstance(body.get("token"), str):
                raise ApiError(400, f"body: {expected}")
            token = body["token"].encode()
        if not self.authenticator.enabled:
            raise ApiError(404, "no tokens are configured: the API is open")
        try:
            session = self.authenticator.open_session(token)
        except ValueError:
            raise ApiError(401, "wrong token") from None
        request.addCookie(COOKIE, session, path=b"/", httpOnly=True,
                          sameSite="strict", max_age=str(SESSION_SECONDS).encode(),
                          secure=request.isSecure() or None)
        return json_body(request, {"ok": True})

    @app.route("/api/session", methods=["GET"])
    def session_state(self, request: Request) -> bytes:
        """Whether tokens are needed and whether this browser is logged in (for Log out)."""
        return json_body(request, {"tokens": self.authenticator.enabled,
                                   "logged_in": self.authenticator.authenticated(request)})

    @app.route("/api/session", methods=["DELETE"])
    def close_session(self, request: Request) -> bytes:
        """Log out: the session ends on the server and the browser drops the cookie."""
        session = request.getCookie(COOKIE)
        if session is not None:
            self.authenticator.close_session(session)
        request.addCookie(COOKIE, b"", path=b"/", httpOnly=True, sameSite="strict",
                          max_age=b"0", secure=request.isSecure() or None)
        return json_body(request, {"ok": True})
