"""The outbox's queueing half: validation, suppression, dedupe, the MIME built at enqueue."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy

import pytest
from sqlalchemy import select

from crm.services import outbox
from crm.store.outbox import OutboxMail
from widget_api.deps import Runtime

NOW = datetime(2026, 12, 3, 1, 0, tzinfo=UTC)


def configure(runtime: Runtime, org_id: int, *, port: int = 2525, daily_limit: int = 500, time_zone: str = "Asia/Tokyo") -> None:
    with runtime.sessions.begin() as s:
        outbox.save_smtp_settings(
            s, org_id, runtime.secrets, host="127.0.0.1", port=port, security="none", from_address="info@acme.example",
            from_name="アクメ 営業部", public_url="https://crm.acme.example", daily_limit=daily_limit, time_zone=time_zone,
        )


def mail(**extra: object) -> dict[str, object]:
    fields: dict[str, object] = {"kind": "rule", "to_address": "Taro@Example.JP", "subject": "資料のご案内", "text": "山田様\nありがとうございます。", "html": None, "charset": "utf-8"}
    fields.update(extra)
    return fields


class TestEnqueue:
    def test_queued_with_the_message_built(self, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        configure(runtime, org.id)
        with runtime.sessions.begin() as s:
            result = outbox.enqueue(s, organisation_id=org.id, now=NOW, **mail(html="<p>山田様</p>"))  # type: ignore[arg-type]
            row = s.get(OutboxMail, result.outbox_id)
            assert result.status == "queued" and row is not None and row.raw is not None
            parsed = email.message_from_bytes(row.raw, policy=policy.default)
            assert parsed["Message-ID"] == row.message_id
            assert parsed["List-Unsubscribe"] == f"<https://crm.acme.example/u/{row.unsubscribe_token}>"
            assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert parsed.get_content_type() == "multipart/alternative"
            assert str(parsed["Subject"]) == "資料のご案内"
            assert row.address_norm == "taro@example.jp" and row.next_attempt_at == NOW

    def test_invalid_and_suppressed_are_skipped_with_reason(self, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        configure(runtime, org.id)
        with runtime.sessions.begin() as s:
            outbox.suppress(s, org.id, "gone@example.jp", "hard_bounce")
            bad = outbox.enqueue(s, organisation_id=org.id, lead_id=None, **mail(to_address="not an address"))  # type: ignore[arg-type]
            gone = outbox.enqueue(s, organisation_id=org.id, **mail(to_address="GONE@example.jp"))  # type: ignore[arg-type]
        assert (bad.status, bad.reason) == ("skipped", "invalid_address")
        assert (gone.status, gone.reason) == ("skipped", "hard_bounce")

    def test_without_smtp_settings_skipped(self, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        with runtime.sessions.begin() as s:
            result = outbox.enqueue(s, organisation_id=org.id, **mail())  # type: ignore[arg-type]
        assert (result.status, result.reason) == ("skipped", "smtp_not_configured")

    def test_one_rule_never_mails_one_lead_twice(self, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        configure(runtime, org.id)
        with runtime.sessions.begin() as s:
            first = outbox.enqueue(s, organisation_id=org.id, dedupe_key="rule:1:lead:1", **mail())  # type: ignore[arg-type]
        with runtime.sessions.begin() as s:
            again = outbox.enqueue(s, organisation_id=org.id, dedupe_key="rule:1:lead:1", **mail())  # type: ignore[arg-type]
            other_rule = outbox.enqueue(s, organisation_id=org.id, dedupe_key="rule:2:lead:1", **mail())  # type: ignore[arg-type]
        assert again == outbox.EnqueueResult("duplicate", "already_sent_for_key", first.outbox_id)
        assert other_rule.status == "queued"

    def test_batch_dedupes_by_normalised_address(self, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        configure(runtime, org.id)
        requests = [outbox.MailRequest(a, "件名", "本文") for a in ("a@example.jp", " A@EXAMPLE.JP ", "b@example.jp", "<a@example.jp>")]
        with runtime.sessions.begin() as s:
            results = outbox.enqueue_many(s, organisation_id=org.id, kind="bulk", mails=requests)
            rows = s.scalars(select(OutboxMail).where(OutboxMail.organisation_id == org.id)).all()
        assert [r.status for r in results] == ["queued", "duplicate", "queued", "duplicate"]
        assert len(rows) == 2

    def test_a_batch_has_the_outcomes_of_one_mail_at_a_time(self, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        """enqueue_many's batch path (a few statements) against the same mails queued one at a
        time in a second organisation: every result and every row alike."""
        from tests.factories import make_org

        other = make_org(runtime, "Other")
        later = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
        requests = [
            outbox.MailRequest("a@example.jp", "件名 a", "本文", dedupe_key="rule:1:lead:1", not_before=later),
            outbox.MailRequest(" A@EXAMPLE.JP ", "件名 a2", "本文", dedupe_key="rule:1:lead:2"),  # the address again
            outbox.MailRequest("old@example.jp", "件名 old", "本文", dedupe_key="rule:1:lead:3"),  # key queued earlier
            outbox.MailRequest("Old@example.jp", "件名 old2", "本文"),  # the address of a duplicate key
            outbox.MailRequest("b@example.jp", "件名 b", "本文", dedupe_key="rule:1:lead:4"),
            outbox.MailRequest("c@example.jp", "件名 c", "本文", dedupe_key="rule:1:lead:4"),  # a key twice in one batch
            outbox.MailRequest("gone@example.jp", "件名 gone", "本文", dedupe_key="rule:1:lead:5"),  # unsubscribed
            outbox.MailRequest("not an address", "件名 x", "本文", dedupe_key="rule:1:lead:6"),
            outbox.MailRequest("not an address", "件名 y", "本文"),  # no address to dedupe on
            outbox.MailRequest("d@example.jp", "件名 d", "<本文>", html="<p>本文</p>", charset="iso-2022-jp", reply_to="sales@acme.example"),
        ]

        def run(org_id: int, batch: bool) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
            configure(runtime, org_id)
            with runtime.sessions.begin() as s:
                outbox.suppress(s, org_id, "GONE@example.jp", "unsubscribed")
                first = outbox.enqueue(s, organisation_id=org_id, kind="rule", to_address="old@example.jp", subject="old", text="old", html=None, charset="utf-8", dedupe_key="rule:1:lead:3")
            with runtime.sessions.begin() as s:
                if batch:
                    results = outbox.enqueue_many(s, organisation_id=org_id, kind="rule", mails=requests, now=NOW)
                else:
                    results = outbox._enqueue_each(s, org_id, "rule", requests, outbox.get_smtp_settings(s, org_id), NOW)
                rows = s.scalars(select(OutboxMail).where(OutboxMail.organisation_id == org_id).order_by(OutboxMail.id)).all()
                ids = {r.id: i for i, r in enumerate(rows)}  # ids as positions: the two organisations' ids differ
                assert first.outbox_id in ids
                seen = [(r.status, r.reason, ids.get(r.outbox_id)) for r in results]
                parsed = [email.message_from_bytes(r.raw) if r.raw else None for r in rows]
                stored = [
                    (r.kind, r.to_address, r.address_norm, r.from_address, r.subject, r.status, r.reason, r.dedupe_key, r.next_attempt_at if r.subject != "old" else None, r.attempts, r.lead_id,
                     r.created_at == NOW if r.subject != "old" else None, (p["To"], p["Subject"], p["Reply-To"], p.get_content_type()) if p else None, bool(r.unsubscribe_token) == bool(r.raw))
                    for r, p in zip(rows, parsed, strict=True)
                ]
                assert all(r.message_id is None or (p is not None and p["Message-ID"] == r.message_id) for r, p in zip(rows, parsed, strict=True))
            return seen, stored

        batch, one_at_a_time = run(org.id, True), run(other.id, False)
        assert batch == one_at_a_time
        assert [status for status, _, _ in batch[0]] == ["queued", "duplicate", "duplicate", "duplicate", "queued", "duplicate", "skipped", "skipped", "skipped", "queued"]

    def test_iso_2022_jp_body_and_subject(self, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        configure(runtime, org.id)
        with runtime.sessions.begin() as s:
            result = outbox.enqueue(s, organisation_id=org.id, **mail(charset="iso-2022-jp"))  # type: ignore[arg-type]
            raw = s.get(OutboxMail, result.outbox_id).raw  # type: ignore[union-attr]
        assert raw is not None and raw.isascii()
        assert b"Subject: =?iso-2022-jp?b?" in raw and b'charset="iso-2022-jp"' in raw and b"Content-Transfer-Encoding: 7bit" in raw
        assert "ありがとうございます。".encode("iso-2022-jp") in raw

    def test_unknown_kind_refused(self, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        from crm.domain.errors import InvalidInput

        configure(runtime, org.id)
        with runtime.sessions.begin() as s, pytest.raises(InvalidInput):
            outbox.enqueue(s, organisation_id=org.id, **mail(kind="spam"))  # type: ignore[arg-type]

    def test_text_iso_2022_jp_cannot_hold_goes_as_utf8(self, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        configure(runtime, org.id)
        with runtime.sessions.begin() as s:
            result = outbox.enqueue(s, organisation_id=org.id, **mail(charset="iso-2022-jp", text="山田様 🎉"))  # type: ignore[arg-type]
            raw = s.get(OutboxMail, result.outbox_id).raw  # type: ignore[union-attr]
        assert raw is not None and b'charset="utf-8"' in raw and b"iso-2022-jp" not in raw
        assert email.message_from_bytes(raw, policy=policy.default).get_content().startswith("山田様 🎉")  # type: ignore[attr-defined]

    def test_reply_to_and_delay(self, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        from datetime import timedelta

        configure(runtime, org.id)
        later = NOW + timedelta(hours=2)
        with runtime.sessions.begin() as s:
            result = outbox.enqueue(s, organisation_id=org.id, now=NOW, not_before=later, reply_to="sales@acme.example", **mail())  # type: ignore[arg-type]
            row = s.get(OutboxMail, result.outbox_id)
            assert row is not None and row.raw is not None and row.next_attempt_at == later
            assert email.message_from_bytes(row.raw)["Reply-To"] == "sales@acme.example"
            assert outbox.claim_next(s, runtime.secrets, NOW + timedelta(hours=1)) is None  # not due yet
            claim = outbox.claim_next(s, runtime.secrets, later)
            assert claim is not None and claim.outbox_id == row.id

    def test_a_line_break_never_ends_the_subject(self, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        from crm.domain.errors import InvalidInput

        configure(runtime, org.id)
        with runtime.sessions.begin() as s:
            result = outbox.enqueue(s, organisation_id=org.id, **mail(subject="Hi\r\nBcc: victim@example.com"))  # type: ignore[arg-type]
            raw = s.get(OutboxMail, result.outbox_id).raw  # type: ignore[union-attr]
            assert raw is not None and b"\r\nBcc:" not in raw and email.message_from_bytes(raw)["Subject"] == "Hi Bcc: victim@example.com"
            with pytest.raises(InvalidInput):
                outbox.enqueue(s, organisation_id=org.id, reply_to="a@b\r\nBcc: x@y.example", **mail())  # type: ignore[arg-type]

    def test_concurrent_enqueues_of_one_key_queue_one(self, runtime: Runtime, org) -> None:  # type: ignore[no-untyped-def]
        import threading

        configure(runtime, org.id)
        results: list[str] = []
        start = threading.Barrier(8)

        def enqueue() -> None:
            start.wait()
            with runtime.sessions.begin() as s:
                results.append(outbox.enqueue(s, organisation_id=org.id, dedupe_key="rule:9:lead:9", **mail()).status)  # type: ignore[arg-type]

        threads = [threading.Thread(target=enqueue) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == ["duplicate"] * 7 + ["queued"]
