"""The widget page at /widget/ (the same files the Thunderbird extension packs), served with
a strict Content-Security-Policy: its own scripts only, no inline code, so a value from a
mail could never run even if it reached the page as markup."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi.responses import FileResponse, RedirectResponse

from crm.domain.errors import NotFound
from widget_api.deps import CurrentUser, RuntimeDep
from widget_api.routing import PrefixRouter

router = PrefixRouter(include_in_schema=False)

STATIC = Path(__file__).resolve().parents[1] / "static" / "widget"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' https: http://127.0.0.1:* http://localhost:*; base-uri 'none'; form-action 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


@router.get("/widget")
def widget_root() -> RedirectResponse:
    return RedirectResponse("/widget/")


@router.get("/widget/")
def widget_index() -> FileResponse:
    return widget_file("index.html")


@router.get("/widget/{name}")
def widget_file(name: str) -> FileResponse:
    # Only files that are in the folder, by exact name: no path can climb out of it.
    files = {p.name: p for p in STATIC.iterdir() if p.is_file()}
    if name not in files:
        raise NotFound(f"no widget file {name!r}")
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return FileResponse(files[name], media_type=media_type, headers=HEADERS)


@router.get("/api/v1/widget/config", include_in_schema=True, tags=["widget"])
def widget_config(_principal: CurrentUser, runtime: RuntimeDep) -> dict[str, str]:
    """What the widget needs to know of this backend: where "Open the lead" goes ({id} is
    the lead's id; a path is relative to the backend)."""
    return {"lead_url": runtime.settings.lead_url or "/leads/{id}"}
