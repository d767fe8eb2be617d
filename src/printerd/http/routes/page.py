"""The web page: its HTML at ``/`` and its scripts and styles under ``/static/``."""

from __future__ import annotations

from twisted.web.iweb import IRequest

from printerd.http.params import ApiError
from printerd.http.responses import file_body, json_app
from printerd.web.files import CONTENT_SECURITY_POLICY, static_file


class PageRoutes:
    """Serves the page's files, read once from the installed package."""

    app = json_app()

    @app.route("/", methods=["GET"])
    def page(self, request: IRequest) -> bytes:
        return self._file(request, "index.html")

    @app.route("/static/<name>", methods=["GET"])
    def static(self, request: IRequest, name: str) -> bytes:
        return self._file(request, name)

    def _file(self, request: IRequest, name: str) -> bytes:
        found = static_file(name)
        if found is None:
            raise ApiError(404, "no such resource")
        content, content_type = found
        request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return file_body(request, content, content_type, b"no-cache")
