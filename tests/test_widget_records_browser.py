"""The panel's CRM records in Debian's Chromium, against the real backend and Dovecot: the
sender's match shown with its history, "log this mail" and the new timeline entry, several
matches left for the user to choose, fill empty fields, and a search when nobody matches."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from crm.store.models import Lead
from tests.mails import business_mail
from tests.test_widget_browser import browser, connect, open_widget, shot  # noqa: F401  (browser: the module's fixture)

pytestmark = pytest.mark.browser


def make_lead(live: str, user, **values) -> int:  # type: ignore[no-untyped-def]
    response = httpx.post(f"{live}/api/v1/leads", json=values, headers=user.headers, timeout=30)
    assert response.status_code == 201, response.text
    return int(response.json()["lead"]["id"])


def test_match_shown_log_and_the_entry_appears(browser, live_server, runtime, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    connect(live_server, member, imap_user)
    lead_id = make_lead(live_server, member, last_name="Yamada", email="taro.yamada@example.co.jp", company="Example Trading KK")
    uid = dovecot.append(imap_user.name, "INBOX", business_mail(message_id="<rec1@example.co.jp>", subject="Quotation for 20 units"))
    page = open_widget(browser, live_server, member, f"folder=INBOX&uid={uid}")
    card = page.locator(f"#rec-lead-{lead_id}")
    expect(card).to_contain_text("Example Trading KK")
    expect(card).to_contain_text("rep@acme.example")  # the owner
    expect(card.locator("ol.timeline")).to_contain_text("No history yet")
    assert card.locator("input[type=checkbox]").is_checked()  # the only match: shown ticked
    page.click("#log-mail")
    expect(page.locator("#records-status")).to_have_text("Logged to 1 record(s)")
    expect(card.locator("ol.timeline li.entry-mail")).to_contain_text("Quotation for 20 units")
    shot(page, "logged")
    entries = httpx.get(f"{live_server}/api/v1/leads/{lead_id}/timeline", headers=member.headers, timeout=30).json()["entries"]
    assert [(e["kind"], e["summary"]) for e in entries] == [("mail", "Quotation for 20 units")]
    page.click("#log-mail")  # logging again changes nothing
    expect(page.locator("#records-status")).to_have_text("Already logged (nothing changed)")

    # "Fill empty fields" takes the draft's values for the record's empty fields only.
    page.fill("#f-mobile", "090-1111-2222")
    page.fill("#f-company", "Another name")
    card.locator("button.fill-empty").click()
    expect(page.locator(f"#rec-lead-{lead_id} .feedback")).to_contain_text("Mobile")
    with runtime.sessions() as s:
        lead = s.get(Lead, lead_id)
        assert lead is not None and (lead.mobile, lead.company) == ("090-1111-2222", "Example Trading KK")


def test_several_matches_none_chosen(browser, live_server, member, admin, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    connect(live_server, member, imap_user)
    assert httpx.put(f"{live_server}/api/v1/settings/unique-fields/email", json={"unique": False}, headers=admin.headers, timeout=30).status_code == 200
    first = make_lead(live_server, member, last_name="Yamada", email="taro.yamada@example.co.jp")
    second = make_lead(live_server, member, last_name="山田", email="taro.yamada@example.co.jp")
    assert httpx.put(f"{live_server}/api/v1/leads/{second}/status", json={"status": "contacted"}, headers=member.headers, timeout=30).status_code == 200
    uid = dovecot.append(imap_user.name, "INBOX", business_mail(message_id="<rec2@example.co.jp>"))
    page = open_widget(browser, live_server, member, f"folder=INBOX&uid={uid}")
    page.wait_for_selector(f"#rec-lead-{second}")
    # the stage in the reader's language, and its change in the record's history
    expect(page.locator(f"#rec-lead-{second} select.stage")).to_have_value("contacted")
    expect(page.locator(f"#rec-lead-{second} select.stage option:checked")).to_have_text("Contacted")
    expect(page.locator(f"#rec-lead-{second} ol.timeline li.entry-status")).to_contain_text("open → contacted")
    expect(page.locator(f"#rec-lead-{first} select.stage")).to_have_value("open")
    # set from the panel: stored, on the timeline, the card as it was (nothing ticked)
    page.locator(f"#rec-lead-{first} select.stage").select_option("qualified")
    expect(page.locator(f"#rec-lead-{first} .feedback")).to_have_text("Status set to Qualified")
    expect(page.locator(f"#rec-lead-{first} ol.timeline li.entry-status")).to_contain_text("open → qualified")
    assert httpx.get(f"{live_server}/api/v1/leads/{first}", headers=member.headers, timeout=30).json()["status"] == "qualified"
    assert page.is_visible("#records-choose")
    assert not page.locator(f"#rec-lead-{first} input[type=checkbox]").is_checked()
    assert not page.locator(f"#rec-lead-{second} input[type=checkbox]").is_checked()
    page.click("#log-mail")
    expect(page.locator("#records-status")).to_have_text("Choose the record(s) to log to")
    page.locator(f"#rec-lead-{first} input[type=checkbox]").check()
    page.locator(f"#rec-lead-{second} input[type=checkbox]").check()
    page.click("#log-mail")
    expect(page.locator("#records-status")).to_have_text("Logged to 2 record(s)")
    expect(page.locator(f"#rec-lead-{second} ol.timeline li.entry-mail")).to_have_count(1)


def test_nobody_matches_search_and_log(browser, live_server, runtime, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    connect(live_server, member, imap_user)
    target = make_lead(live_server, member, last_name="サトウ", company="さくら物産", phone="03-1234-5678")
    uid = dovecot.append(imap_user.name, "INBOX", business_mail(sender="Someone <someone@gmail.com>", message_id="<rec3@example.co.jp>", subject="紹介のご連絡"))
    page = open_widget(browser, live_server, member, f"folder=INBOX&uid={uid}", lang="ja")
    page.wait_for_selector("#records-none:not([hidden])")
    expect(page.locator("#records-none")).to_contain_text("一致するレコードはありません")
    page.fill("#search-q", "ｻｸﾗ")
    page.click("#record-search button[type=submit]")
    page.locator("#search-results button").first.click()
    card = page.locator(f"#rec-lead-{target}")
    assert card.locator("input[type=checkbox]").is_checked()
    page.click("#log-mail")
    expect(card.locator("ol.timeline li.entry-mail")).to_contain_text("紹介のご連絡")
    shot(page, "search-logged")
    with runtime.sessions() as s:
        assert s.scalar(select(Lead.id).where(Lead.id == target)) == target


def test_never_logged_sender_log_anyway(browser, live_server, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    connect(live_server, member, imap_user)
    lead_id = make_lead(live_server, member, last_name="Yamada", email="taro.yamada@example.co.jp", company="Example Trading KK")
    assert httpx.post(f"{live_server}/api/v1/never-log", json={"value": "@example.co.jp"}, headers=member.headers, timeout=30).status_code == 201
    uid = dovecot.append(imap_user.name, "INBOX", business_mail(message_id="<rec4@example.co.jp>", subject="Newsletter-ish"))
    page = open_widget(browser, live_server, member, f"folder=INBOX&uid={uid}")
    card = page.locator(f"#rec-lead-{lead_id}")
    expect(card).to_contain_text("Example Trading KK")
    assert not page.is_visible("#log-anyway")
    page.click("#log-mail")
    expect(page.locator("#records-status")).to_contain_text("taro.yamada@example.co.jp is on your never-log list")
    expect(page.locator("#log-anyway")).to_be_visible()
    expect(card.locator("ol.timeline")).to_contain_text("No history yet")
    timeline_url = f"{live_server}/api/v1/leads/{lead_id}/timeline"
    assert httpx.get(timeline_url, headers=member.headers, timeout=30).json()["entries"] == []
    shot(page, "never-log")
    page.click("#log-anyway")
    expect(page.locator("#records-status")).to_have_text("Logged to 1 record(s)")
    expect(page.locator("#log-anyway")).to_be_hidden()
    expect(card.locator("ol.timeline li.entry-mail")).to_contain_text("Newsletter-ish")
    assert [e["summary"] for e in httpx.get(timeline_url, headers=member.headers, timeout=30).json()["entries"]] == ["Newsletter-ish"]
