"""Who is asking: every service call carries one, and every query filters by its organisation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    organisation_id: int
    email: str
    role: str = "member"
    language: str = "ja"
    time_zone: str = "Asia/Tokyo"
    # The token's scope: "full" (CLI tokens) or "widget" (a paired widget: never an admin's).
    scope: str = "full"
    # The API token the request came with (rate limits are per token); None outside the API.
    token_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" and self.scope == "full"

    def list_scope(self, org_wide: bool) -> str:
        """The scope of an entry of a per-user/per-organisation list (whitelist, never-log):
        the organisation's, or this user's own, which no other user sees."""
        return "org" if org_wide else f"user:{self.user_id}"
