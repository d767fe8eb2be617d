"""
The HTTP API: the route modules (``printerd.http.routes``) mounted behind one gate.

JSON everywhere: every answer, errors included, is a JSON object; an error's body is
``{"error": "<clear message>"}`` with the status code that fits.  Each route module has its
own Klein app; ``RouteTable`` sends a request to the module one of whose rules matches it, so
a path that no module serves gets the same JSON 404 (or 405) whichever module is nearest.
"""

from __future__ import annotations

from typing import Optional, Protocol, Sequence, Union, cast

from klein import Klein
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect, Rule

from printerd.http.auth import ApiGate, Authenticator
from printerd.http.cors import CorsPolicy, CorsResource
from printerd.http.hosts import AllowedHosts
from printerd.http.measure import RequestMetrics
from printerd.http.ratelimit import RateLimiter
from printerd.http.responses import ROUTING_MESSAGES, error_body


class RouteModule(Protocol):
    """A class of routes: its Klein app is a class attribute, bound to the instance."""

    app: Klein


class DirectRoute(Protocol):
    """
    One route answered without Klein, for a path where Klein's cost per request matters (the
    stream: thousands set up at once, each held open): a fixed ``path``, its ``methods``, and
    ``render`` as a leaf ``Resource`` has it (its answer, or ``NOT_DONE_YET``).
    """

    path: str
    methods: frozenset[str]

    def render(self, request: IRequest) -> Union[bytes, int]:
        """Answer the request, errors included (as JSON)."""


class RouteTable(Resource):
    """
    Dispatches each request to the route module whose rules match its path and method.

    A path without variables (most requests: ``/api/recent``, ``/api/stream``...) is found in a
    dictionary; werkzeug's matcher runs for the others, and for every miss, so 404, 405 and
    redirects stay werkzeug's.
    """

    isLeaf = True

    def __init__(self, modules: Sequence[Union[RouteModule, DirectRoute]]) -> None:
        super().__init__()
        self._resources: list[Union[IResource, DirectRoute]] = []
        rules = []
        for index, module in enumerate(modules):
            if isinstance(getattr(module, "app", None), Klein):
                app = cast(RouteModule, module).app
                self._resources.append(app.resource())
                for rule in app.url_map.iter_rules():
                    mounted = rule.empty()
                    mounted.endpoint = index
                    rules.append(mounted)
            else:
                direct = cast(DirectRoute, module)
                self._resources.append(direct)
                rules.append(Rule(direct.path, methods=sorted(direct.methods), endpoint=index))
        self._map = Map(rules, merge_slashes=False)
        # The request whose match ``route_of`` found, and that match, for ``render`` to use:
        # the metrics ask first, and werkzeug's matcher is most of a variable route's routing.
        self._matched: Optional[tuple[IRequest, tuple[int, str]]] = None
        # path -> method -> (module index, rule), for the rules without variables.
        self._static: dict[str, dict[str, tuple[int, str]]] = {}
        for rule in self._map.iter_rules():
            if not rule.arguments:
                for method in rule.methods or ():
                    self._static.setdefault(rule.rule, {})[method] = (rule.endpoint, rule.rule)

    def rules(self) -> list[tuple[str, frozenset[str]]]:
        """Every route as (rule, methods), e.g. ("/api/receipts/<int:receipt_id>", {"GET", ...})."""
        return sorted((rule.rule, frozenset(rule.methods or ())) for rule in self._map.iter_rules())

    def _path(self, request: IRequest) -> str:
        """The request's path as routes see it; UnicodeDecodeError when it is not UTF-8."""
        return "/" + "/".join(segment.decode("utf-8") for segment in request.postpath or ())

    def _static_match(self, path: str, request: IRequest) -> Optional[tuple[int, str]]:
        methods = self._static.get(path)
        return None if methods is None else methods.get(request.method.decode("latin-1"))

    def _match(self, request: IRequest) -> tuple[int, str]:
        """
        The (module index, rule) a request matches; UnicodeDecodeError for a path that is not
        UTF-8, else werkzeug's NotFound, RequestRedirect or MethodNotAllowed.
        """
        matched, self._matched = self._matched, None
        if matched is not None and matched[0] is request:
            return matched[1]
        path = self._path(request)
        found = self._static_match(path, request)
        if found is not None:
            return found
        if "//" in path:  # werkzeug would redirect, or ignore leading slashes: not a route
            raise NotFound()
        rule, _ = self._map.bind("printerd", path_info=path).match(
            method=request.method.decode("latin-1"), return_rule=True)
        return rule.endpoint, str(rule.rule)

    def route_of(self, request: IRequest) -> str:
        """The rule a request matches (e.g. ``/api/receipts/<int:receipt_id>``), or unmatched."""
        try:
            found = self._match(request)
        except (UnicodeDecodeError, NotFound, RequestRedirect, MethodNotAllowed):
            return "unmatched"
        self._matched = (request, found)
        return found[1]

    def render(self, request: IRequest) -> Union[bytes, int]:
        try:
            index, _ = self._match(request)
        except UnicodeDecodeError:
            return error_body(request, 400, "path: not valid UTF-8")
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

    def __init__(self, modules: Sequence[Union[RouteModule, DirectRoute]],
                 authenticator: Authenticator,
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
