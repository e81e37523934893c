"""One scan of a mailbox at a time: the lease in the database (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from crm.store import leases
from crm.store.base import utcnow
from tests.factories import connect_mailbox
from widget_api.mailbox_scan import scan_mailbox

pytestmark = pytest.mark.db


def account_of(client, member, imap_user) -> int:  # type: ignore[no-untyped-def]
    response = connect_mailbox(client, member, imap_user)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_a_held_lease_refuses_others_and_is_released(client, member, imap_user, runtime) -> None:  # type: ignore[no-untyped-def]
    account = account_of(client, member, imap_user)
    with runtime.sessions.begin() as s:
        assert leases.take(s, account, "a", 60)
    with runtime.sessions.begin() as s:
        assert not leases.take(s, account, "b", 60)
        assert leases.take(s, account, "a", 60)  # the holder renews
    with runtime.sessions.begin() as s:
        leases.release(s, account, "b")  # not b's: no effect
    with runtime.sessions.begin() as s:
        assert not leases.take(s, account, "b", 60)
        leases.release(s, account, "a")
    with runtime.sessions.begin() as s:
        assert leases.take(s, account, "b", 60)


def test_an_expired_lease_is_taken_over(client, member, imap_user, runtime) -> None:  # type: ignore[no-untyped-def]
    """A worker SIGKILLed mid-scan never releases: its lease ends by expiry."""
    account = account_of(client, member, imap_user)
    with runtime.sessions.begin() as s:
        assert leases.take(s, account, "killed", 30)
    with runtime.sessions.begin() as s:
        assert not leases.take(s, account, "next", 30, now=utcnow() + timedelta(seconds=29))
    with runtime.sessions.begin() as s:
        assert leases.take(s, account, "next", 30, now=utcnow() + timedelta(seconds=31))
    with runtime.sessions.begin() as s:
        assert not leases.take(s, account, "killed", 30, now=utcnow() + timedelta(seconds=32))


def test_concurrent_first_takes_one_wins(client, member, imap_user, runtime) -> None:  # type: ignore[no-untyped-def]
    """Many takers racing for a mailbox that never had a lease row: exactly one gets it."""
    account = account_of(client, member, imap_user)
    barrier = threading.Barrier(8)
    won: list[str] = []

    def taker(name: str) -> None:
        barrier.wait()
        with runtime.sessions.begin() as s:
            if leases.take(s, account, name, 60):
                won.append(name)

    threads = [threading.Thread(target=taker, args=(f"t{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(won) == 1


def test_two_concurrent_scans_one_runs_the_other_skips(client, member, imap_user, dovecot, runtime) -> None:  # type: ignore[no-untyped-def]
    from crm.domain.principal import Principal
    from crm.services import spam

    account = account_of(client, member, imap_user)
    principal = Principal(member.id, member.organisation_id, member.email)
    entered, go_on = threading.Event(), threading.Event()
    real = spam.rescue

    def slow_rescue(*args, **kwargs):  # type: ignore[no-untyped-def]
        entered.set()  # the first scan is inside, holding the lease
        go_on.wait(10)
        return real(*args, **kwargs)

    results: list[object] = []
    spam.rescue = slow_rescue  # type: ignore[assignment]
    try:
        first = threading.Thread(target=lambda: results.append(scan_mailbox(runtime, principal, account)))
        first.start()
        assert entered.wait(10)
        spam.rescue = real  # type: ignore[assignment]
        assert scan_mailbox(runtime, principal, account, trigger="idle") is None  # skipped: lease held
        go_on.set()
        first.join(20)
    finally:
        spam.rescue = real  # type: ignore[assignment]
    assert results and results[0] is not None
    assert scan_mailbox(runtime, principal, account) is not None  # released after the first one


def test_a_scan_asked_through_the_api_waits_then_answers_409(client, member, imap_user, runtime, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from widget_api import mailbox_scan

    account = account_of(client, member, imap_user)
    monkeypatch.setattr(mailbox_scan, "API_LEASE_WAIT", 0.5)
    with runtime.sessions.begin() as s:
        assert leases.take(s, account, "worker-elsewhere", 60)
    for path in ("/api/v1/spam/rescue", "/api/v1/calendar/scan"):
        response = client.post(path, headers=member.headers)
        assert response.status_code == 409 and response.json()["type"] == "scan_in_progress", response.text
    with runtime.sessions.begin() as s:
        leases.release(s, account, "worker-elsewhere")
    assert client.post("/api/v1/spam/rescue", headers=member.headers).status_code == 200
    assert client.post("/api/v1/calendar/scan", headers=member.headers).status_code == 200
