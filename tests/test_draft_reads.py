"""The draft's reads in fewer statements, on a plain read-only connection, answer exactly as
the separate lookups did, afresh on every call:
- mailboxes.authenticate_with_accounts = organisations.authenticate, then account_and_context
  (principal, account, read context, and every error);
- leads.captured_and_existing = leads.captured_lead, then existing_records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import event, update

from crm.domain.errors import DomainError
from crm.services import mailboxes, organisations
from crm.store.models import User
from tests.factories import UserRef, make_org, make_user
from tests.servers.postgres import PostgresCluster, pg_bin
from widget_api.config import Settings
from widget_api.main import create_app
from widget_api.runtime import Runtime


def add_account(runtime: Runtime, user: UserRef, host: str, trusted: list[str] | None = None) -> int:
    with runtime.sessions.begin() as s:
        principal = organisations.authenticate(s, user.token)
        account = mailboxes.save_account(s, principal, runtime.secrets, host=host, port=143, security="plain", username="u", secret="p", trusted_authserv_ids=trusted)
        return account.id


def outcome(call: Any) -> Any:
    try:
        return ("ok", call())
    except DomainError as exc:
        return ("error", type(exc).__name__, exc.code, str(exc))


def comparable(answer: tuple[Any, Any]) -> tuple[Any, ...]:
    account, ctx = answer
    return (account.id, account.host, account.port, account.security, account.username, account.auth, bytes(account.secret_encrypted), ctx)


def two_ways(runtime: Runtime, token: str, mailbox_id: int | None) -> tuple[Any, Any]:
    with runtime.read_sessions() as s:

        def separately() -> Any:
            principal = organisations.authenticate(s, token)
            return principal, outcome(lambda: comparable(mailboxes.account_and_context(s, principal, mailbox_id)))

        def joined() -> Any:
            principal, accounts = mailboxes.authenticate_with_accounts(s, token)
            return principal, outcome(lambda: comparable(mailboxes.pick_account(principal, accounts, mailbox_id)))

        return outcome(separately), outcome(joined)


def test_the_same_answers_as_the_two_lookups(runtime: Runtime) -> None:
    org, other_org = make_org(runtime, "A", mail_domains=["a.example"]), make_org(runtime, "B", mail_domains=[])
    rep, colleague, outsider, idle = (
        make_user(runtime, org, "rep@a.example"),
        make_user(runtime, org, "col@a.example"),
        make_user(runtime, other_org, "x@gmail.com"),
        make_user(runtime, org, "idle@a.example"),
    )
    first, second = add_account(runtime, rep, "imap1.example", ["mx.a.example"]), add_account(runtime, rep, "imap2.example", ["mx2.a.example"])
    colleagues = add_account(runtime, colleague, "imap3.example")
    outsiders = add_account(runtime, outsider, "imap4.example")
    disabled = make_user(runtime, org, "off@a.example")
    with runtime.sessions.begin() as s:
        s.execute(update(User).where(User.id == disabled.id).values(widget_enabled=False))
    revoked = make_user(runtime, org, "gone@a.example")
    with runtime.sessions.begin() as s:
        organisations.revoke_tokens(s, revoked.id)

    kinds = set()
    for user in (rep, colleague, outsider, idle, disabled, revoked):
        for mailbox_id in (None, first, second, colleagues, outsiders, 10**6):
            separately, joined = two_ways(runtime, user.token, mailbox_id)
            assert joined == separately, (user.email, mailbox_id)
            account = joined[1][1] if joined[0] == "ok" else None
            kinds.add(joined[2] if account is None else "account" if account[0] == "ok" else account[2])
    for token in ("", "mw_nope"):
        assert two_ways(runtime, token, None)[1][:3] == ("error", "PermissionDenied", "invalid_token")
    # Every kind of answer was met: an account, no mailbox, another's mailbox, a disabled
    # widget, a revoked token.
    assert kinds == {"account", "no_mailbox", "not_found", "widget_disabled", "invalid_token"}
    assert two_ways(runtime, disabled.token, None)[1][:3] == ("error", "PermissionDenied", "widget_disabled")
    assert two_ways(runtime, revoked.token, None)[1][:3] == ("error", "PermissionDenied", "invalid_token")
    assert two_ways(runtime, rep.token, colleagues)[1][1][1][:3] == ("error", "NotFound", "not_found")
    assert two_ways(runtime, idle.token, None)[1][1][1][:3] == ("error", "NotFound", "no_mailbox")
    assert two_ways(runtime, rep.token, second)[1][1][1][1][0] == second


def test_a_revoked_token_fails_on_its_next_call(runtime: Runtime) -> None:
    user = make_user(runtime, make_org(runtime, "A"), "rep@a.example")
    add_account(runtime, user, "imap1.example")
    with runtime.read_sessions() as s:
        assert mailboxes.authenticate_with_accounts(s, user.token)[0].user_id == user.id
    with runtime.sessions.begin() as s:
        organisations.revoke_tokens(s, user.id)
    with runtime.read_sessions() as s, pytest.raises(DomainError) as caught:
        mailboxes.authenticate_with_accounts(s, user.token)
    assert caught.value.code == "invalid_token"


def test_the_draft_sends_one_statement_for_both_and_keeps_its_errors(runtime: Runtime, client: TestClient) -> None:
    org = make_org(runtime, "A")
    user, disabled = make_user(runtime, org, "rep@a.example"), make_user(runtime, org, "off@a.example")
    with runtime.sessions.begin() as s:
        s.execute(update(User).where(User.id == disabled.id).values(widget_enabled=False))
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", seen)
    try:
        r = client.get("/api/v1/messages/draft?uid=5", headers=user.headers)
    finally:
        event.remove(runtime.engine, "before_cursor_execute", seen)
    assert (r.status_code, r.json()["type"]) == (404, "no_mailbox")
    assert len(statements) == 1 and "mailbox_accounts" in statements[0] and "api_tokens" in statements[0]
    r = client.get("/api/v1/messages/draft?uid=5", headers=disabled.headers)
    assert (r.status_code, r.json()["type"]) == (403, "widget_disabled")
    r = client.get("/api/v1/messages/draft", headers=user.headers)  # the 400 comes before the 404, as before
    assert r.status_code == 400


@pytest.mark.skipif(pg_bin() is None, reason="PostgreSQL is not installed")
def test_the_drafts_token_check_after_a_postgres_restart_retries_on_a_fresh_connection(tmp_path: Path) -> None:
    """The draft reads on a plain connection: the first draft after a restart that cut its
    pooled connection is answered (here the user's 404 "no mailbox"), neither a 503 nor a
    401 that would sign the widget out."""
    from crm.store.db import migrate

    with PostgresCluster() as pg:
        url = pg.create_database("draft_restart")
        migrate(url)
        runtime = Runtime.build(Settings(database_url=url, secret_keys=[Fernet.generate_key().decode()], data_dir=tmp_path))
        try:
            user = make_user(runtime, make_org(runtime, "A"), "rep@a.example")
            with TestClient(create_app(runtime.settings, runtime), raise_server_exceptions=False) as client:
                before = client.get("/api/v1/messages/draft?uid=5", headers=user.headers)  # the pool now holds a connection
                pg.halt()
                pg.resume()
                after = client.get("/api/v1/messages/draft?uid=5", headers=user.headers)
        finally:
            runtime.close()
    assert (before.status_code, before.json()["type"]) == (404, "no_mailbox")
    assert (after.status_code, after.json()["type"]) == (404, "no_mailbox"), after.text


def test_the_read_connection_refuses_writes_and_reads_the_captured_lead_as_a_session_does(runtime: Runtime) -> None:
    from crm.services import leads
    from crm.store.db import ReadOnlySession
    from widget_api.schemas import LeadRead

    user = make_user(runtime, make_org(runtime, "A"), "rep@a.example")
    with runtime.sessions.begin() as s:
        principal = organisations.authenticate(s, user.token)
        leads.create_lead(s, principal, {"last_name": "Yamada", "email": "taro@customer.example"}, message_key="mid:m1@x")
    with runtime.read_connection() as conn, pytest.raises(ReadOnlySession):
        conn.execute(update(User).where(User.id == user.id).values(name="x"))
    with runtime.read_sessions() as s, runtime.read_connection() as conn:
        for key in ("mid:m1@x", "mid:other@x", ""):
            on_session, on_connection = leads.captured_lead(s, principal, key), leads.captured_lead(conn, principal, key)
            assert (on_session is None) == (on_connection is None) == (key != "mid:m1@x")
            if on_session is not None and on_connection is not None:
                assert LeadRead.model_validate(on_connection) == LeadRead.model_validate(on_session)
                assert LeadRead.model_validate(on_connection).last_name == "Yamada"
            assert leads.existing_records(conn, principal, "Taro@customer.example") == leads.existing_records(s, principal, "taro@customer.example") != []


def test_the_capture_and_the_records_in_one_statement_are_the_two_lookups(runtime: Runtime) -> None:
    from crm.domain.principal import Principal
    from crm.services import leads
    from crm.store.models import Contact, Lead
    from widget_api.schemas import LeadRead

    org, other = make_org(runtime, "A"), make_org(runtime, "B")
    user = make_user(runtime, org, "rep@a.example")
    principal = Principal(user.id, org.id, user.email)
    with runtime.sessions.begin() as s:
        captured = leads.create_lead(s, principal, {"last_name": "Yamada", "email": "taro@customer.example", "company": "Example KK"}, message_key="mid:m1@x")
        leads.create_lead(s, Principal(user.id, other.id, user.email), {"last_name": "Other", "email": "taro@customer.example"}, message_key="mid:m2@x")
        s.add_all(
            [
                Contact(organisation_id=org.id, first_name="T.", last_name="Yamada", email="taro@customer.example", email_norm="taro@customer.example"),
                Contact(organisation_id=org.id, first_name="H.", email="hana@customer.example", email_norm="hana@customer.example"),
                Contact(organisation_id=other.id, first_name="Not", email="taro@customer.example", email_norm="taro@customer.example"),
            ]
        )
        captured_id = captured.id
    seen = set()
    with runtime.read_sessions() as session, runtime.read_connection() as conn:
        for db in (session, conn):
            for key in ("mid:m1@x", "mid:m2@x", "mid:none@x", "", None):
                for email in (" TARO@customer.example", "hana@customer.example", "nobody@customer.example", "", None):
                    lead, records = leads.captured_and_existing(db, principal, key, email)
                    alone, alone_records = leads.captured_lead(db, principal, key), leads.existing_records(db, principal, email)
                    assert (lead is None) == (alone is None), (key, email)
                    if lead is not None and alone is not None:
                        assert LeadRead.model_validate(lead) == LeadRead.model_validate(alone)
                        assert lead.id == captured_id and isinstance(lead, Lead)
                    assert sorted(records, key=repr) == sorted(alone_records, key=repr), (key, email)
                    seen.add((lead is not None, tuple(r["kind"] for r in records)))
    # Met: a capture with a lead and a contact, one without, a contact alone, nothing.
    assert {(True, ("lead", "contact")), (False, ("lead", "contact")), (True, ("contact",)), (False, ("contact",)), (True, ()), (False, ())} <= seen
