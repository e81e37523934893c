"""`/metrics`: admin token only; latency by route template (no ids in labels), counts by
status, IMAP round trips, background task failures."""

from __future__ import annotations

import threading

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import connect_mailbox
from tests.mails import business_mail
from widget_api import metrics

DRAFT = "/api/v1/messages/draft"


def samples(client: TestClient, admin) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:  # type: ignore[no-untyped-def]
    response = client.get("/metrics", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value for family in text_string_to_metric_families(response.text) for s in family.samples}


def value(found, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    return found.get((name, frozenset(labels.items())), 0.0)


class TestAccess:
    def test_no_token_is_401(self, client: TestClient) -> None:
        assert client.get("/metrics").status_code == 401

    def test_a_member_token_is_403(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        assert client.get("/metrics", headers=member.headers).status_code == 403


class TestRequests:
    def test_a_draft_is_counted_under_its_route_template_with_its_imap_round_trips(self, client: TestClient, admin, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
        assert connect_mailbox(client, member, imap_user).status_code == 201
        uid = dovecot.append(imap_user.name, "INBOX", business_mail(message_id="<m1@example.co.jp>"))
        before = samples(client, admin)
        response = client.get(DRAFT, params={"folder": "INBOX", "uid": uid}, headers=member.headers)
        assert response.status_code == 200, response.text
        after = samples(client, admin)
        count = "mailwidget_http_request_duration_seconds_count"
        assert value(after, count, method="GET", route=DRAFT) == value(before, count, method="GET", route=DRAFT) + 1
        total = "mailwidget_http_requests_total"
        assert value(after, total, method="GET", route=DRAFT, status="200") == value(before, total, method="GET", route=DRAFT, status="200") + 1
        trips = sum(v for (n, _), v in after.items() if n == "mailwidget_imap_round_trip_seconds_count") - sum(
            v for (n, _), v in before.items() if n == "mailwidget_imap_round_trip_seconds_count"
        )
        assert 1 <= trips <= 6  # a draft costs a few round trips on the pooled connection, never a login per request

    def test_ids_never_become_labels(self, client: TestClient, admin, member) -> None:  # type: ignore[no-untyped-def]
        assert client.get("/api/v1/leads/987654", headers=member.headers).status_code == 404
        assert client.get("/no/such/page-123456").status_code == 404
        text = client.get("/metrics", headers=admin.headers).text
        # Only the labels: a sample's value (a *_created timestamp) may hold any digits.
        labels = " ".join(
            value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            for value in sample.labels.values()
        )
        assert "987654" not in labels and "123456" not in labels
        assert 'route="/api/v1/leads/{lead_id}"' in text and 'route="unmatched"' in text


class TestBackgroundFailures:
    def test_a_failing_scan_pass_is_counted(self, runtime, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
        from widget_api.cli import spam

        stop = threading.Event()

        def scan(_runtime):  # type: ignore[no-untyped-def]
            stop.set()
            raise RuntimeError("database restarting")

        monkeypatch.setattr(spam, "scan_all", scan)
        before = metrics.TASK_FAILURES.labels("metrics-test-loop")._value.get()
        spam.worker_loop(runtime, 0.01, stop, name="metrics-test-loop")
        assert metrics.TASK_FAILURES.labels("metrics-test-loop")._value.get() == before + 1
