"""
The HTTP API: the route modules (``printerd.http.routes``) mounted behind one gate.

JSON everywhere: every answer, errors included, is a JSON object; an error's body is
``{"error": "<clear message>"}`` with the status code that fits.  Each route module has its
own Klein app; ``RouteTable`` sends a request to the module one of whose rules matches it, so
a path that no module serves gets the same JSON 404 (or 405) whichever module is nearest.
"""

from __future__ import annotations

from typing import Optional, Protocol, Sequence

from klein import Klein
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect

from printerd.http.auth import ApiGate, Authenticator
from printerd.http.hosts import AllowedHosts
from printerd.http.ratelimit import RateLimiter
from printerd.http.responses import ROUTING_MESSAGES, error_body


class RouteModule(Protocol):
    """A class of routes: its Klein app is a class attribute, bound to the instance."""

    app: Klein


class RouteTable(Resource):
    """Dispatches each request to the route module whose rules match its path and method."""

    isLeaf = True

    def __init__(self, modules: Sequence[RouteModule]) -> None:
        super().__init__()
        self._resources = [module.app.resource() for module in modules]
        rules = []
        for index, module in enumerate(modules):
            for rule in module.app.url_map.iter_rules():
                mounted = rule.empty()
                mounted.endpoint = index
                rules.append(mounted)
        self._map = Map(rules, merge_slashes=False)

    def rules(self) -> list[tuple[str, frozenset[str]]]:
        """Every route as (rule, methods), e.g. ("/api/receipts/<int:receipt_id>", {"GET", ...})."""
        return sorted((rule.rule, frozenset(rule.methods or ())) for rule in self._map.iter_rules())

    def render(self, request: IRequest) -> bytes:
        try:
            path = "/" + "/".join(segment.decode("utf-8") for segment in request.postpath or ())
        except UnicodeDecodeError:
            return error_body(request, 400, "path: not valid UTF-8")
        if "//" in path:  # werkzeug would redirect, or ignore leading slashes: not a route
            return error_body(request, 404, ROUTING_MESSAGES[404])
        adapter = self._map.bind("printerd", path_info=path)
        try:
            index, _ = adapter.match(method=request.method.decode("latin-1"))
        except (NotFound, RequestRedirect):
            return error_body(request, 404, ROUTING_MESSAGES[404])
        except MethodNotAllowed as e:
            request.setHeader(b"Allow", ", ".join(sorted(e.valid_methods or ())).encode())
            return error_body(request, 405, ROUTING_MESSAGES[405])
        return self._resources[index].render(request)


class HttpApi:
    """All of printerd's routes behind the body cap, the rate limit and the token check."""

    def __init__(self, modules: Sequence[RouteModule], authenticator: Authenticator,
                 limiter: Optional[RateLimiter] = None,
                 hosts: Optional[AllowedHosts] = None) -> None:
        self.modules = tuple(modules)
        self.routes = RouteTable(modules)
        self.authenticator = authenticator
        self.limiter = limiter
        self.hosts = hosts or AllowedHosts()

    def resource(self) -> IResource:
        return ApiGate(self.routes, self.authenticator, self.limiter, self.hosts)
