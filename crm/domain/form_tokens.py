"""The signed token a web form's page carries: `<issued_at>.<HMAC-SHA256>` over the form's
key and the issue time, with the form's own secret. A submission is accepted only with a
token this server issued for that form, at least MIN_FILL_SECONDS ago (a person takes that
long to fill a form; a bot posting at once does not) and at most MAX_AGE_SECONDS ago (a
harvested token stops working)."""

from __future__ import annotations

import hashlib
import hmac

from crm.domain.errors import InvalidInput

MIN_FILL_SECONDS = 3
MAX_AGE_SECONDS = 24 * 3600
MAX_TOKEN = 100


def _mac(secret: str, form_key: str, issued_at: int) -> str:
    return hmac.new(secret.encode(), f"{form_key}.{issued_at}".encode(), hashlib.sha256).hexdigest()


def sign(secret: str, form_key: str, issued_at: float) -> str:
    at = int(issued_at)
    return f"{at}.{_mac(secret, form_key, at)}"


def check(secret: str, form_key: str, token: str | None, now: float, *, min_fill: float = MIN_FILL_SECONDS, max_age: float = MAX_AGE_SECONDS) -> None:
    """InvalidInput (codes form_token_invalid, form_too_fast, form_expired) unless `token`
    is good for `form_key` at `now`."""
    text = (token or "")[:MAX_TOKEN]
    at_text, _, mac = text.partition(".")
    if not at_text.isdigit() or not hmac.compare_digest(mac.encode(), _mac(secret, form_key, int(at_text)).encode()):
        raise InvalidInput("the form's token is missing or not valid: load the form again", code="form_token_invalid")
    age = now - int(at_text)
    if age < min_fill:
        raise InvalidInput("the form was sent too fast after it was loaded", code="form_too_fast")
    if age > max_age:
        raise InvalidInput("the form is too old: load it again", code="form_expired")
