"""checked_email gives exactly what email-validator gives (its fast path is an optimisation,
not a second opinion)."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from crm.domain.rules import checked_email

ADDRESSES = [
    "taro.yamada@example.co.jp", "Taro.Yamada@Example.CO.JP", "o'neill+crm@acme.example.com", "a@b.co",
    "first_last-1{x}@sub-domain.example.org", "x@xn--bcher-kva.com", "山田@example.jp", "taro@日本語.jp",
    '"quoted local"@example.com', "a..b@example.com", ".a@example.com", "a.@example.com", "a@-x.com",
    "a@x-.com", "a@x.test", "a@localhost", "a@1.2.3.4", "a@x.123", "a@x..com", "a@", "@x.com", "a@@x.com",
    "a b@x.com", "a@x_y.com", "a@" + "l" * 64 + ".com", "l" * 64 + "@x.com", "l" * 65 + "@x.com",
    "a@" + ".".join(["abcdefghi"] * 26) + ".com", "a@x.com.", "A@X.C0M", "a@b√ºcher.com", "user@[127.0.0.1]",
]


def verdict(fn, address: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    try:
        return ("ok", fn(address))
    except EmailNotValidError:
        return ("invalid", "")


@pytest.mark.parametrize("address", ADDRESSES)
def test_same_verdict_as_email_validator(address: str) -> None:
    expected = verdict(lambda a: validate_email(a, check_deliverability=False).normalized, address)
    assert verdict(checked_email, address) == expected
    assert verdict(checked_email, address) == expected  # the cached domain gives the same again


def test_the_invalid_address_gets_the_validators_reason() -> None:
    with pytest.raises(EmailNotValidError, match="special-use"):
        checked_email("someone@example.test")
