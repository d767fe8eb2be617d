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
from twisted.web.server import Request
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect

from printerd.http.auth import ApiGate, Authenticator
from printerd.http.cors import CorsPolicy, CorsResource
from printerd.http.hosts import AllowedHosts
from printerd.http.measure import RequestMetrics
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

    def _path(self, request: IRequest) -> str:
        """The request's path as routes see it; UnicodeDecodeError when it is not UTF-8."""
        return "/" + "/".join(segment.decode("utf-8") for segment in request.postpath or ())

    def route_of(self, request: IRequest) -> str:
        """The rule a request matches (e.g. ``/api/receipts/<int:receipt_id>``), or unmatched."""
        try:
            path = self._path(request)
            if "//" in path:
                return "unmatched"
            rule, _ = self._map.bind("printerd", path_info=path).match(
                method=request.method.decode("latin-1"), return_rule=True)
        except (UnicodeDecodeError, NotFound, RequestRedirect, MethodNotAllowed):
            return "unmatched"
        return str(rule.rule)

    def render(self, request: IRequest) -> bytes:
        try:
            path = self._path(request)
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


class MeasuredApi(Resource):
    """Tells ``RequestMetrics`` of every request, refused ones included, with its route."""

    isLeaf = True

    def __init__(self, inner: Resource, routes: RouteTable, metrics: RequestMetrics) -> None:
        super().__init__()
        self.inner = inner
        self.routes = routes
        self.metrics = metrics

    def render(self, request: Request) -> bytes:
        self.metrics.started(request, self.routes.route_of(request))
        return self.inner.render(request)


class HttpApi:
    """All of printerd's routes behind the body cap, the rate limit and the token check."""

    def __init__(self, modules: Sequence[RouteModule], authenticator: Authenticator,
                 limiter: Optional[RateLimiter] = None,
                 hosts: Optional[AllowedHosts] = None,
                 requests: Optional[RequestMetrics] = None,
                 cors_origins: Sequence[str] = ()) -> None:
        self.modules = tuple(modules)
        self.routes = RouteTable(modules)
        self.authenticator = authenticator
        self.limiter = limiter
        self.hosts = hosts or AllowedHosts()
        self.requests = requests
        self.cors = CorsPolicy(cors_origins) if cors_origins else None

    def resource(self) -> IResource:
        resource: Resource = ApiGate(self.routes, self.authenticator, self.limiter, self.hosts)
        if self.cors is not None:
            # Outside the gate: preflights carry no token, refusals must carry the headers.
            resource = CorsResource(resource, self.cors)
        if self.requests is not None:
            resource = MeasuredApi(resource, self.routes, self.requests)
        return resource
