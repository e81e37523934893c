"""The answer to what nothing handled: a 500 with a request id, a log line with the
exception's type and that id only; errors of the database never carry SQL parameters."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from crm.store.db import make_engine
from widget_api.main import create_app

SECRET = "山田太郎-private-4111111111111111"


def failing_with_user_data(*_args, **_kwargs):  # type: ignore[no-untyped-def]
    raise ValueError(f"cannot handle {SECRET}")


class TestRequestIds:
    def test_every_answer_carries_one_and_a_plain_client_id_is_kept(self, client, member) -> None:  # type: ignore[no-untyped-def]
        ok = client.get("/api/v1/leads", headers=member.headers)
        assert len(ok.headers["X-Request-ID"]) == 32
        kept = client.get("/api/v1/leads/999", headers={**member.headers, "X-Request-ID": "widget-1234.5"})
        assert kept.headers["X-Request-ID"] == "widget-1234.5" and kept.json()["request_id"] == "widget-1234.5"
        replaced = client.get("/api/v1/health", headers={"X-Request-ID": "<script>" + "x" * 100})
        assert replaced.headers["X-Request-ID"] != "<script>" and len(replaced.headers["X-Request-ID"]) == 32


class TestUnexpectedErrors:
    def test_a_500_has_the_request_id_and_the_log_only_the_type(self, runtime, member, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
        from crm.services import leads

        monkeypatch.setattr(leads, "list_leads", failing_with_user_data)
        caplog.set_level(logging.DEBUG)
        # raise_server_exceptions=True: had the exception gone on to the server, it would log
        # the traceback (and the test client would raise it here).
        with TestClient(create_app(runtime.settings, runtime), raise_server_exceptions=True) as client:
            response = client.get("/api/v1/leads", headers=member.headers)
        assert response.status_code == 500
        payload = response.json()
        assert payload["type"] == "internal_error" and payload["request_id"] == response.headers["X-Request-ID"] and SECRET not in response.text
        logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert [r.getMessage() for r in logged] == [f"unexpected ValueError in request {payload['request_id']} (GET /api/v1/leads)"]
        assert all(r.exc_info is None for r in caplog.records) and SECRET not in caplog.text

    def test_a_failing_statement_leaks_no_parameter(self, runtime, member, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
        from crm.services import leads

        def bad_query(session, *_args, **_kwargs):  # type: ignore[no-untyped-def]
            session.execute(text("INSERT INTO leads (organisation_id, source, status, company) VALUES (:org, 'api', 'open', :company)"), {"org": 10**9, "company": SECRET})
            session.flush()

        monkeypatch.setattr(leads, "list_leads", bad_query)
        with TestClient(create_app(runtime.settings, runtime), raise_server_exceptions=True) as client:
            response = client.get("/api/v1/leads", headers=member.headers)
        assert response.status_code == 500 and SECRET not in response.text and SECRET not in caplog.text


@pytest.mark.db
def test_database_errors_hide_their_parameters(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn, pytest.raises(DBAPIError) as caught:
            conn.execute(text("SELECT no_such_column FROM leads WHERE company = :company"), {"company": SECRET})
    finally:
        engine.dispose()
    assert SECRET not in str(caught.value) and "hidden" in str(caught.value)
