"""widget_api.quick_route: the draft's arguments read without FastAPI's dependency solving are
the ones FastAPI would pass, every request it is not sure of (and every error) is answered by
FastAPI's handler as before, and the quick path is really taken for an ordinary request."""

from __future__ import annotations

import asyncio
import re
from contextlib import AsyncExitStack
from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.dependencies.utils import solve_dependencies
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from starlette.requests import Request

from crm.domain.errors import PermissionDenied
from tests.factories import UserRef, make_org, make_user
from widget_api import quick_route
from widget_api.deps import get_runtime
from widget_api.main import create_app
from widget_api.routes import messages
from widget_api.runtime import Runtime

TOKEN = "mw_token"

QUERIES = [
    "folder=INBOX&uid=5",
    "uid=5&uid=7",  # repeated: FastAPI takes the last
    "uid=5&folder=",
    "uid=5&folder=%20Sent%20",
    "message_id=%3Ca%40b%3E&lang=en",
    "uid=5&lang=ja&lang=en",
    "uid=5&extra=1&message=x&mailbox_id=3&special_use=junk&uidvalidity=9",
    "",
    "uid=abc",
    "uid=0",
    "uid=4294967296",
    "mailbox_id=0&uid=1",
    "uid=5&folder=a%0Ab",
    "uid=5&message_id=" + "x" * 999,
    "uid=5&special_use=" + "j" * 33,
]
AUTHORIZATIONS: list[list[tuple[bytes, bytes]]] = [
    [(b"authorization", f"Bearer {TOKEN}".encode())],
    [(b"authorization", f"bearer  {TOKEN} ".encode())],
    [(b"authorization", f"Bearer {TOKEN}".encode()), (b"authorization", b"Bearer other")],
    [(b"authorization", b"Bearer ")],
    [(b"authorization", b"Basic abc")],
    [],
]


def draft_route() -> Any:
    return next(r for r in messages.router.routes if getattr(r, "path", None) == "/api/v1/messages/draft" and "GET" in getattr(r, "methods", ()))


def request_of(app: FastAPI, query: str, headers: list[tuple[bytes, bytes]]) -> Request:
    scope = {"type": "http", "method": "GET", "path": "/api/v1/messages/draft", "query_string": query.encode(), "headers": headers, "app": app, "state": {}}
    return Request(scope)


async def fastapi_values(request: Request) -> dict[str, Any] | None:
    """What FastAPI's own solving passes the endpoint; None for an error (a 422 or a 401)."""
    async with AsyncExitStack() as stack:
        request.scope["fastapi_inner_astack"] = request.scope["fastapi_function_astack"] = stack
        try:
            solved = await solve_dependencies(request=request, dependant=draft_route().dependant, async_exit_stack=stack, embed_body_fields=False)
        except PermissionDenied:
            return None
    return None if solved.errors else solved.values


def comparable(values: dict[str, Any]) -> dict[str, Any]:
    ref = values["ref"]
    return {**values, "ref": (ref.model_dump(), ref.model_fields_set)}


@pytest.fixture()
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime.settings, runtime)


def test_the_arguments_are_fastapis_and_anything_else_is_left_to_it(app: FastAPI) -> None:
    quick = 0
    for query in QUERIES:
        for headers in AUTHORIZATIONS:
            request = request_of(app, query, headers)
            expected = asyncio.run(fastapi_values(request))
            got = asyncio.run(messages._draft_arguments(request))
            if expected is None:
                assert got is None, (query, headers)  # FastAPI's handler gives the error
            else:
                assert got is not None, (query, headers)
                assert comparable(got) == comparable(expected), (query, headers)
                quick += 1
    assert quick >= 18  # the ordinary requests do take the quick path


def test_a_model_the_reader_cannot_read_plainly_is_left_to_fastapi() -> None:
    class Aliased(BaseModel):
        uid: int = Field(alias="u")

    class Listed(BaseModel):
        uid: list[int] | None = None

    class Strict(BaseModel, extra="forbid"):
        uid: int | None = None

    from starlette.datastructures import QueryParams

    for model in (Aliased, Listed, Strict):
        assert quick_route.query_model(model, QueryParams("u=1&uid=1")) is None


def answers(client: TestClient, user: UserRef, bad: UserRef) -> list[tuple[int, Any]]:
    calls: list[tuple[str, dict[str, str]]] = [
        ("uid=5", user.headers),  # no mailbox: 404 from the endpoint
        ("uid=5&mailbox_id=7", user.headers),
        ("", user.headers),  # 400: neither uid nor message_id
        ("uid=abc", user.headers),  # 422
        ("uid=abc", {}),  # 401 before 422, as FastAPI solves it
        ("uid=5", {}),
        ("uid=5", {"Authorization": "Bearer nope"}),
        ("uid=5", bad.headers),  # revoked
        ("uid=5&lang=ja", {"Authorization": "Basic x"}),
        ("uid=5&folder=a%0Ab&lang=ja", user.headers),
    ]
    out = []
    for query, headers in calls:
        r = client.get(f"/api/v1/messages/draft?{query}", headers=headers)
        out.append((r.status_code, re.sub(r'"request_id":"[^"]*"', "", r.text)))
    return out


def test_every_answer_is_the_same_with_and_without_the_quick_path(runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    org = make_org(runtime, "Quick")
    user, bad = make_user(runtime, org, "q@acme.example"), make_user(runtime, org, "r@acme.example")
    from crm.services import organisations

    with runtime.sessions.begin() as s:
        organisations.revoke_tokens(s, bad.id)
    quick = answers(client, user, bad)
    monkeypatch.setattr(quick_route, "ENABLED", False)
    assert answers(client, user, bad) == quick
    assert [status for status, _ in quick] == [404, 404, 400, 422, 401, 401, 401, 401, 401, 422]


class Solving:
    """How many times FastAPI's handler solved dependencies."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await solve_dependencies(*args, **kwargs)

        monkeypatch.setattr("fastapi.routing.solve_dependencies", counted)


def test_an_ordinary_request_skips_the_solving_an_override_does_not(runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    user = make_user(runtime, make_org(runtime, "Quick"), "q@acme.example")
    solving = Solving(monkeypatch)
    assert client.get("/api/v1/messages/draft?uid=5", headers=user.headers).status_code == 404
    assert solving.count == 0
    assert client.get("/api/v1/messages/draft?uid=x", headers=user.headers).status_code == 422
    assert solving.count == 1
    app: Any = client.app
    app.dependency_overrides[get_runtime] = lambda: runtime
    try:
        assert client.get("/api/v1/messages/draft?uid=5", headers=user.headers).status_code == 404
    finally:
        app.dependency_overrides.clear()
    assert solving.count == 2


def test_an_include_with_dependencies_of_its_own_is_solved_by_fastapi(runtime: Runtime) -> None:
    user = make_user(runtime, make_org(runtime, "Quick"), "q@acme.example")
    seen: list[str] = []

    async def audit(request: Request) -> None:
        seen.append(request.url.path)

    app = FastAPI()
    app.state.runtime = runtime
    app.include_router(messages.router, dependencies=[Depends(audit)])
    with TestClient(app, raise_server_exceptions=False) as client:
        client.get("/api/v1/messages/draft?uid=5", headers=user.headers)
    assert seen == ["/api/v1/messages/draft"]


def test_a_sync_endpoint_is_left_to_fastapi() -> None:
    read: list[str] = []

    class Route(quick_route.QuickRoute):
        async def read(self, request: Request) -> dict[str, Any] | None:
            read.append(request.url.path)
            return {"n": 1}

    def endpoint(n: int = 0) -> dict[str, int]:
        return {"n": n}

    app = FastAPI()
    app.router.add_api_route("/n", endpoint, methods=["GET"], route_class_override=Route)
    with TestClient(app) as client:
        assert client.get("/n?n=5").json() == {"n": 5}
    assert read == []
