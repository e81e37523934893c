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

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
