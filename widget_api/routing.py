"""The routers of widget_api/routes: FastAPI's APIRouter, turning a request away at once when
its path cannot be one of theirs.

Why: FastAPI (0.165) matches a request by walking every included router in order and, in
each, every route, with scope bookkeeping per route (~4 µs each on this machine): the draft,
in the 12th router, was found after ~50 routes, 0.29 ms of CPU per request, before any of
its own work. A route's path can only match a request path that starts with its literal
head (Starlette compiles the text before the first `{param}` escaped, anchored at the
start), so a router none of whose heads starts the path has no route to offer: saying so
at once changes no answer (tests/test_routing.py compares every route's match with and
without it). The order of routers, hence every route's precedence and the OpenAPI
document, stays as it is.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.routing import Match, Route
from starlette.types import Scope

# Off: every router walks its routes as FastAPI's own does (the equivalence test flips it).
ENABLED = True


class PrefixRouter(APIRouter):
    """An APIRouter whose `matches` answers NONE without walking its routes when the request
    path starts with none of their literal heads. A router holding anything but plain routes
    (an included router, a mount) is walked as usual."""

    _heads_for: int = -1  # len(self.routes) the heads were computed for
    _heads: tuple[str, ...] | None = None

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if ENABLED:
            heads = self.literal_heads()
            if heads is not None and not get_route_path(scope).startswith(heads):
                return Match.NONE, {}
        return super().matches(scope)

    def literal_heads(self) -> tuple[str, ...] | None:
        """Each route's path up to its first parameter; None when a route has no such head."""
        if self._heads_for != len(self.routes):
            heads: list[str] | None = []
            for route in self.routes:
                if not isinstance(route, (APIRoute, Route)) or heads is None:
                    heads = None
                    continue
                heads.append(route.path.split("{", 1)[0])
            self._heads = tuple(dict.fromkeys(heads)) if heads is not None else None
            self._heads_for = len(self.routes)
        return self._heads
