"""widget_api.routing: a router that turns away paths none of its routes can match answers
every request exactly as FastAPI's own walk of all routes does, and faster."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Match

from widget_api import routing
from widget_api.main import create_app, router_modules

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def all_paths(app: FastAPI) -> list[str]:
    """Every route's path with its parameters filled in, and paths next to them that match
    nothing (one segment more, a trailing slash, a prefix alone)."""
    paths: set[str] = {"/", "/nope", "/api", "/api/v1", "/api/v1/", "/api/v1/nope"}
    for name in router_modules():
        module = __import__(f"widget_api.routes.{name}", fromlist=["router"])
        for route in module.router.routes:
            concrete = re.sub(r"\{[^}]+\}", "1", route.path)
            paths |= {concrete, concrete + "/", concrete + "/nope", concrete.rsplit("/", 1)[0] or "/"}
    for route in app.routes:
        if hasattr(route, "path"):
            paths.add(route.path)
    return sorted(paths)


def resolve(app: FastAPI, path: str, method: str) -> tuple[Any, ...]:
    """What the app's router picks for a request, the way its dispatch loop walks routes."""
    scope: dict[str, Any] = {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "query_string": b"", "state": {}}
    partial = None
    for index, route in enumerate(app.router.routes):
        match, child = route.matches(dict(scope))
        if match == Match.FULL:
            return ("full", index, child.get("endpoint"), tuple(sorted(child.get("path_params", {}).items())))
        if match == Match.PARTIAL and partial is None:
            partial = ("partial", index, child.get("endpoint"))
    return partial or ("none",)


@pytest.fixture()
def app(runtime) -> FastAPI:  # type: ignore[no-untyped-def]
    return create_app(runtime.settings, runtime)


def test_every_router_module_uses_it() -> None:
    for name in router_modules():
        module = __import__(f"widget_api.routes.{name}", fromlist=["router"])
        assert isinstance(module.router, routing.PrefixRouter), name
        assert module.router.literal_heads() is not None, name  # plain routes only: the check applies


def test_every_request_is_routed_as_without_it(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    paths = all_paths(app)
    assert len(paths) > 150
    monkeypatch.setattr(routing, "ENABLED", True)
    on = {(p, m): resolve(app, p, m) for p in paths for m in METHODS}
    monkeypatch.setattr(routing, "ENABLED", False)
    off = {(p, m): resolve(app, p, m) for p in paths for m in METHODS}
    assert on == off
    assert sum(1 for r in on.values() if r[0] == "full") > 100 and any(r[0] == "partial" for r in on.values()) and any(r[0] == "none" for r in on.values())


def test_the_draft_is_found_sooner(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def cost(enabled: bool) -> float:
        monkeypatch.setattr(routing, "ENABLED", enabled)
        start = time.perf_counter()
        for _ in range(300):
            resolve(app, "/api/v1/messages/draft", "GET")
        return time.perf_counter() - start

    cost(True), cost(False)  # warm
    assert min(cost(True) for _ in range(3)) < 0.5 * min(cost(False) for _ in range(3))


def test_answers_for_unknown_paths_and_methods_are_unchanged(client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
    missing = client.get("/api/v1/nope", headers=member.headers)
    assert missing.status_code == 404 and set(missing.json()) >= {"type", "detail"}
    wrong_method = client.put("/api/v1/messages/draft", headers=member.headers)
    assert wrong_method.status_code == 405 and set(wrong_method.json()) >= {"type", "detail"}
    invalid = client.get("/api/v1/messages/draft", params={"uid": "x"}, headers=member.headers)
    assert invalid.status_code == 422 and set(invalid.json()) >= {"type", "detail"}
