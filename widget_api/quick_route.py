"""A route whose ordinary requests skip FastAPI's dependency solving: the endpoint's arguments
are read by a function of its own, and any request it is not sure of goes to FastAPI's
handler, unchanged.

Why: FastAPI (0.165) solves a route's parameters on every request by re-deriving what the
declaration already says (is a field a sequence, its aliases, which multidict to read, one
level of recursion per sub-dependency). For the draft (a query model, a header, a query
parameter, two sub-dependencies) that was ~0.2 ms of event-loop CPU per request, as much as
the token check, the account lookup and the two record lookups together.

Why nothing changes:
- The route is an APIRoute declared as before: its dependant, hence the OpenAPI document,
  and FastAPI's own handler are built exactly as for any route.
- The route's `read` returns the endpoint's arguments, or None when it is not certain they are what
  FastAPI would pass (a value that does not validate, a missing token): FastAPI's handler
  then answers the request, errors included, as it always did.
- FastAPI's handler also takes every request when its dependencies were overridden (tests),
  when OpenTelemetry records the request (its spans and data come from that handler), and
  always when the route was included with dependencies of a router or the app (`read`
  knows the route's own only).
- The endpoint must be async and return a Response: FastAPI's handler then only passes that
  response on (its background is None: no BackgroundTasks parameter), so there is nothing
  of its to repeat.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from functools import cache
from types import NoneType, UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import fastapi.routing
from fastapi.routing import APIRoute
from fastapi.telemetry import get_telemetry_data
from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

# Off: every request goes through FastAPI's handler (the equivalence tests flip it).
ENABLED = True

M = TypeVar("M", bound=BaseModel)
SCALARS = (str, int, float, bool, NoneType)


class QuickRoute(APIRoute):
    """Subclass it with its own `read`, and add the endpoint with `route_class_override`."""

    async def read(self, request: Request) -> dict[str, Any] | None:
        """The endpoint's arguments, or None: FastAPI's handler answers the request."""
        return None

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        slow = super().get_route_handler()
        route = self._built_route()
        # Only this route's own dependencies: a router's or the app's ones (an include's
        # `dependencies=`) are solved by FastAPI's handler, never skipped.
        if route is None or route.dependant is None or len(route.dependant.dependencies) != len(self.dependant.dependencies):
            return slow
        call, provider, read = route.dependant.call, route.dependency_overrides_provider, self.read
        if not inspect.iscoroutinefunction(call):
            return slow  # FastAPI runs a sync endpoint in the thread pool: only its handler does

        async def handler(request: Request) -> Response:
            if not ENABLED or getattr(provider, "dependency_overrides", None) or get_telemetry_data() is not None:
                return await slow(request)
            values = await read(request)
            if values is None:
                return await slow(request)
            response = await call(**values)
            if not isinstance(response, Response):
                raise TypeError(f"a QuickRoute's endpoint returns a Response, not {type(response).__name__}")
            return response

        return handler

    def _built_route(self) -> Any:
        """The route (or the include's copy of it, FastAPI's private `_EffectiveRouteContext`)
        the handler is being built for. None when this FastAPI no longer says (a later
        version): FastAPI's handler then takes every request."""
        var = getattr(fastapi.routing, "_effective_route_context_var", None)
        if var is None:
            return None
        context = var.get()
        if context is None:
            return self
        return context if getattr(context, "original_route", None) is self else None


@cache
def _plain_field_names(model: type[BaseModel]) -> tuple[str, ...] | None:
    """The fields FastAPI reads for `Annotated[model, Query()]` as `query.get(name)`, or None
    when it reads them otherwise (an alias, a list, extra fields kept or refused)."""
    if model.model_config.get("extra", "ignore") != "ignore":
        return None
    names = []
    for name, info in model.model_fields.items():
        if info.alias or info.validation_alias or not _is_scalar(info.annotation):
            return None
        names.append(name)
    return tuple(names)


def _is_scalar(annotation: Any) -> bool:
    """str, int, float, bool, or an optional one (`Annotated` constraints allowed): one value."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _is_scalar(get_args(annotation)[0])
    if origin is Union or origin is UnionType:
        return all(_is_scalar(arg) for arg in get_args(annotation))
    return annotation in SCALARS


def query_model(model: type[M], query: QueryParams) -> M | None:
    """The query parameters as `model`, as FastAPI builds a `Annotated[model, Query()]`
    parameter (each field's last value; other parameters ignored), or None when they do not
    validate or the model is not a plain one (FastAPI's handler says why)."""
    names = _plain_field_names(model)
    if names is None:
        return None
    try:
        return model.model_validate({name: query[name] for name in names if name in query})
    except ValidationError:
        return None
