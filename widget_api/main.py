"""The FastAPI application: `create_app(settings)` wires the runtime, the error table, CORS
and every router module under widget_api/routes/."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from widget_api import errors, pages, routes
from widget_api.config import Settings
from widget_api.metrics import RequestMetrics
from widget_api.request_ids import RequestIds
from widget_api.runtime import Runtime

VERSION = "0.1.0"
# The extension's pages run on moz-extension://<uuid>, a uuid drawn per profile: no list could
# name it, and no user should ever copy one. The API authenticates by bearer token only (never
# a cookie; credentials are not allowed), so answering CORS for any extension origin lets in
# nothing a token did not already allow, and the extension needs no host permission at all.
EXTENSION_ORIGINS = r"moz-extension://[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def router_modules() -> list[str]:
    """Every module in widget_api/routes that defines `router`: a feature adds its endpoints
    by adding a module, without editing a central list."""
    return sorted(m.name for m in pkgutil.iter_modules(routes.__path__) if not m.name.startswith("_"))


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    runtime = runtime or Runtime.build(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        runtime.close()

    app = FastAPI(title="Mail widget CRM backend", version=VERSION, lifespan=lifespan, docs_url="/docs")
    app.state.runtime = runtime
    errors.install(app)
    app.add_middleware(RequestIds)
    app.add_middleware(RequestMetrics)  # outside RequestIds: it sees the 500 RequestIds answers
    app.add_exception_handler(pages.NotSignedIn, lambda _request, exc: pages.sign_in_redirect(exc.next_path))  # type: ignore[arg-type, attr-defined]
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_origin_regex=EXTENSION_ORIGINS,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["Authorization", "Content-Type", "Accept-Language"],
        # The widget reads these cross-origin: the request id it quotes to support, and
        # when to try again after a 429/503.
        expose_headers=["X-Request-ID", "Retry-After"],
        max_age=600,
    )
    for name in router_modules():
        module = importlib.import_module(f"{routes.__name__}.{name}")
        app.include_router(module.router)
    return app
