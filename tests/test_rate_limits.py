"""Per-token rate limits on the expensive endpoints: a burst past the limit is 429 with
Retry-After and the usual error body; another token (even the same user's) is unaffected."""

from __future__ import annotations

from fastapi.testclient import TestClient

from crm.domain.errors import RateLimited
from crm.services import organisations
from tests.mails import business_mail
from widget_api.rate_limits import RateLimits, parse_limits


def upload(client: TestClient, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/messages/draft/raw", content=business_mail(), headers={**headers, "Content-Type": "message/rfc822"})


def test_a_burst_past_the_limit_is_429_and_another_token_is_unaffected(client: TestClient, member, runtime) -> None:  # type: ignore[no-untyped-def]
    runtime.rate_limits.limits["upload"] = 3
    with runtime.sessions.begin() as s:
        other = {"Authorization": f"Bearer {organisations.issue_token(s, member.id, 'second')}"}
    assert [upload(client, member.headers).status_code for _ in range(3)] == [200, 200, 200]
    refused = upload(client, member.headers)
    assert refused.status_code == 429
    assert refused.json()["type"] == "rate_limited" and refused.json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert upload(client, other).status_code == 200
    # without a token it is still 401, and not counted
    assert client.post("/api/v1/messages/draft/raw", content=b"x", headers={"Content-Type": "message/rfc822"}).status_code == 401


def test_the_import_and_the_mailbox_test_are_limited(client: TestClient, member, runtime) -> None:  # type: ignore[no-untyped-def]
    runtime.rate_limits.limits.update({"import": 1, "mailbox_test": 1})
    files = {"file": ("leads.csv", b"email\na@example.com\n", "text/csv")}
    assert client.post("/api/v1/imports/leads", files=files, headers=member.headers).status_code == 202
    assert client.post("/api/v1/imports/leads", files=files, headers=member.headers).status_code == 429
    assert client.post("/api/v1/mailboxes/1/test", headers=member.headers).status_code == 404  # counted, then not found
    assert client.post("/api/v1/mailboxes/1/test", headers=member.headers).status_code == 429


def test_the_bucket_refills_with_time() -> None:
    now = [0.0]
    limits = RateLimits({"upload": 2}, clock=lambda: now[0])
    limits.take("t", "upload")
    limits.take("t", "upload")
    try:
        limits.take("t", "upload")
        raise AssertionError("not limited")
    except RateLimited as exc:
        assert exc.retry_after == 30  # one request every 30 s at 2 a minute
    now[0] = 30.0
    limits.take("t", "upload")


def test_limits_from_the_environment() -> None:
    assert parse_limits("upload=5, import=0")["upload"] == 5
    assert parse_limits("")["import"] == 5
