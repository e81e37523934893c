"""The widget shows today's automatic mail against the daily limit (Chromium, Playwright)."""

from __future__ import annotations

from playwright.sync_api import expect

from crm.domain.mail_quota import quota_day
from crm.store.base import utcnow
from crm.store.outbox import reserve_quota
from tests.mails import business_mail
from tests.test_widget_browser import browser, connect, open_widget  # noqa: F401 - `browser` is a fixture


def test_the_widget_shows_used_left_and_reset(browser, live_server, runtime, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    day = quota_day(utcnow(), "Asia/Tokyo").key
    with runtime.sessions.begin() as s:
        for _ in range(3):
            assert reserve_quota(s, member.organisation_id, day, 500, form_reply=False, form_limit=100)
    connect(live_server, member, imap_user)
    uid = dovecot.append(imap_user.name, "INBOX", business_mail(message_id="<quota@example.co.jp>"))
    page = open_widget(browser, live_server, member, f"folder=INBOX&uid={uid}")
    page.wait_for_selector("#mail-quota:not([hidden])")
    expect(page.locator("#mail-quota")).to_contain_text("Automatic mail today: 3 / 500 (left 497, resets at")
    page = open_widget(browser, live_server, member, f"folder=INBOX&uid={uid}", lang="ja")
    expect(page.locator("#mail-quota")).to_contain_text("本日の自動メール: 3 / 500 通（残り 497 通")
