"""The widget page in Debian's Chromium (Playwright), against the real backend (uvicorn) and
a real Dovecot: the draft, saving, duplicates, already captured, not spam, an invitation and
a backend error. Screenshots of each state go to test-artifacts/.

This drives the page as a plain tab (the tab host); the extension as Thunderbird runs it is
proven by tests/test_thunderbird.py."""

from __future__ import annotations

import statistics
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from crm.store.calendar import CalendarEvent
from crm.store.models import Lead
from tests.factories import make_user
from tests.mails import business_mail

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TB = Path(__file__).resolve().parent / "data" / "corpora" / "thunderbird"


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/test-deps.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield b
        b.close()


def connect(live: str, user, imap_user) -> None:  # type: ignore[no-untyped-def]
    body = {"host": imap_user.host, "port": imap_user.port, "security": "plain", "username": imap_user.name, "password": imap_user.password}
    assert httpx.post(f"{live}/api/v1/mailboxes", json=body, headers=user.headers, timeout=30).status_code == 201


def open_widget(browser, live: str, user, query: str, lang: str = "en"):  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 320, "height": 900})
    page.add_init_script(f"localStorage.setItem('token', {user.token!r}); localStorage.setItem('lang', {lang!r});")
    page.goto(f"{live}/widget/?{query}")
    return page


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"widget-{name}.png"), full_page=True)


def test_draft_edit_save_duplicate_and_captured(browser, live_server, runtime, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
    connect(live_server, member, imap_user)
    first = dovecot.append(imap_user.name, "INBOX", business_mail(message_id="<w1@example.co.jp>"))
    page = open_widget(browser, live_server, member, f"folder=INBOX&uid={first}")
    page.wait_for_selector("#lead:not([hidden])")
    assert page.input_value("#f-email") == "taro.yamada@example.co.jp"
    assert page.input_value("#f-last_name") == "Yamada"
    shot(page, "draft")
    page.fill("#f-company", "Example Trading KK")
    page.click("#save")
    page.wait_for_selector("#captured:not([hidden])")
    expect(page.locator("#status")).to_have_text("Lead saved")
    shot(page, "saved")
    with runtime.sessions() as s:
        leads = s.scalars(select(Lead)).all()
        assert [(lead.company, lead.email) for lead in leads] == [("Example Trading KK", "taro.yamada@example.co.jp")]

    # the same sender in another message: the existing record, then "fill empty fields"
    second = dovecot.append(imap_user.name, "INBOX", business_mail(message_id="<w2@example.co.jp>"))
    page = open_widget(browser, live_server, member, f"folder=INBOX&uid={second}")
    page.wait_for_selector("#existing:not([hidden])")
    assert page.is_visible("#create-anyway")
    page.fill("#f-mobile", "090-1111-2222")
    page.click("#save")
    page.wait_for_selector("#save-status[data-kind=error]")  # the refusal is shown beside the button pressed
    assert not page.is_visible("#create-anyway")  # email is unique: creating anyway is not offered
    shot(page, "duplicate")
    page.click("#update-existing")
    expect(page.locator("#status")).to_have_text("Existing lead updated")
    with runtime.sessions() as s:
        assert s.scalar(select(Lead.mobile)) == "090-1111-2222" and len(s.scalars(select(Lead)).all()) == 1

    # the first message again: already captured
    page = open_widget(browser, live_server, member, f"folder=INBOX&uid={first}")
    page.wait_for_selector("#captured:not([hidden])")
    shot(page, "captured")


def test_a_display_name_is_text_never_html(browser, live_server, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
    connect(live_server, member, imap_user)
    evil = '"<img src=x onerror=window.pwned=1>" <evil@example.com>'
    uid = dovecot.append(imap_user.name, "INBOX", business_mail(sender=evil, body="Hi\n\nBest regards,\n<b>Bold</b> Name\nEvil <script>window.pwned=2</script> Inc.\n"))
    page = open_widget(browser, live_server, member, f"folder=INBOX&uid={uid}", lang="ja")
    page.wait_for_selector("#lead:not([hidden])")
    assert page.evaluate("window.pwned === undefined") and page.locator("#fields img, #fields script, #fields b").count() == 0
    assert page.text_content("h1") == "CRM" and page.get_attribute("html", "lang") == "ja"
    assert page.text_content("#save") == "見込み客を保存"
    shot(page, "japanese")


def test_not_spam_moves_the_message(browser, live_server, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
    connect(live_server, member, imap_user)
    uid = dovecot.append(imap_user.name, "Junk", business_mail(message_id="<junk@example.co.jp>"))
    page = open_widget(browser, live_server, member, f"folder=Junk&uid={uid}&special_use=junk")
    page.wait_for_selector("#spam:not([hidden])")
    page.click("#why-spam")
    page.wait_for_selector("#why-list li")
    shot(page, "why-spam")
    page.click("#not-spam")
    expect(page.locator("#spam-status")).to_contain_text("Moved to the inbox")
    with dovecot.imap(imap_user.name) as c:
        c.select_folder("INBOX", readonly=True)
        assert c.search(["HEADER", "Message-ID", "<junk@example.co.jp>"])
        c.select_folder("Junk", readonly=True)
        assert c.search(["NOT", "DELETED"]) == []
    shot(page, "not-spam")


def test_accept_an_invitation(browser, live_server, runtime, org, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
    receiver = make_user(runtime, org, "receiver@example.com")
    connect(live_server, receiver, imap_user)
    uid = dovecot.append(imap_user.name, "INBOX", (TB / "single-event.eml").read_bytes())
    page = open_widget(browser, live_server, receiver, f"folder=INBOX&uid={uid}")
    page.wait_for_selector("#invites:not([hidden]) button")
    shot(page, "invitation")
    page.get_by_role("button", name="Accept").click()
    # no SMTP server for replies: the panel says the organiser was not told, and how to fix it
    expect(page.locator(".invite .feedback")).to_contain_text("the organiser was not notified")
    expect(page.locator(".invite")).to_contain_text("Answered: Accepted")
    expect(page.locator(".invite")).not_to_contain_text("Outdated")
    with runtime.sessions() as s:
        event = s.scalar(select(CalendarEvent))
        assert event is not None and event.in_calendar and event.own_partstat == "ACCEPTED"
    shot(page, "accepted")


def test_a_reply_the_mail_server_did_not_take_is_said_to_be_retried(browser, live_server, runtime, org, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
    from tests.servers.net import free_port

    receiver = make_user(runtime, org, "receiver@example.com")
    connect(live_server, receiver, imap_user)
    settings = {"destination": "crm", "smtp_host": "127.0.0.1", "smtp_port": free_port(), "smtp_security": "plain"}  # nothing listens there
    assert httpx.put(f"{live_server}/api/v1/calendar/settings", json=settings, headers=receiver.headers, timeout=30).status_code == 200
    uid = dovecot.append(imap_user.name, "INBOX", (TB / "single-event.eml").read_bytes())
    page = open_widget(browser, live_server, receiver, f"folder=INBOX&uid={uid}", lang="ja")
    page.wait_for_selector("#invites:not([hidden]) button")
    page.locator("button[data-partstat=ACCEPTED]").click()
    expect(page.locator(".invite .feedback")).to_contain_text("自動的に再送します")
    (reply,) = httpx.get(f"{live_server}/api/v1/calendar/replies", headers=receiver.headers, timeout=30).json()
    assert reply["status"] == "queued" and reply["attempts"] == 1


def test_a_backend_error_is_shown(browser, live_server) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": 320, "height": 700})
    page.add_init_script("localStorage.setItem('token', 'mw_wrong'); localStorage.setItem('lang', 'en');")
    page.goto(f"{live_server}/widget/?folder=INBOX&uid=1")
    page.wait_for_selector("#error:not([hidden])")
    assert "connect again" in page.text_content("#error").lower() and page.is_visible("#settings")
    shot(page, "bad-token")


def test_an_unreachable_backend_is_said_clearly(browser, member) -> None:  # type: ignore[no-untyped-def]
    from tests.servers.net import free_port

    page = browser.new_page(viewport={"width": 320, "height": 700})
    page.add_init_script(f"localStorage.setItem('token', {member.token!r}); localStorage.setItem('backend', 'http://127.0.0.1:{free_port()}'); localStorage.setItem('lang', 'ja');")
    page.goto((Path(__file__).resolve().parents[1] / "widget_api" / "static" / "widget" / "index.html").as_uri() + "?folder=INBOX&uid=1")
    expect(page.locator("#error")).to_contain_text("に接続できません")
    shot(page, "unreachable")


def test_draft_shown_timing(browser, live_server, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
    """p50 over 20 openings of the page's own "draft shown" measure (figure for bench/README.md)."""
    connect(live_server, member, imap_user)
    uid = dovecot.append(imap_user.name, "INBOX", business_mail())
    page = open_widget(browser, live_server, member, f"folder=INBOX&uid={uid}")
    times = []
    for _ in range(20):
        page.reload()
        expect(page.locator("#status")).to_have_text("Draft shown")
        times.append(page.evaluate("window.draftShownMs"))
    p50 = statistics.median(times)
    print(f"widget draft shown: p50 {p50:.1f} ms, max {max(times):.1f} ms over 20 openings")
    assert p50 < 2000  # the 300 ms target is reported from the quiet-machine run, not asserted


def test_custom_fields_are_typed_inputs_saved_with_the_lead(browser, live_server, runtime, org, member, imap_user, dovecot) -> None:  # type: ignore[no-untyped-def]
    """The admin's custom fields appear under the draft as a text box, a number box, a date
    picker and a pick list; a required one is marked; what the user enters is saved with the lead."""
    admin = make_user(runtime, org, "boss@acme.example", role="admin")
    for body in (
        {"key": "corp_no", "label": "法人番号", "type": "text", "required": True},
        {"key": "employees", "label": "Employees", "type": "number"},
        {"key": "met_on", "label": "Met on", "type": "date"},
        {"key": "tier", "label": "Tier", "type": "picklist", "options": ["A", "B"]},
    ):
        assert httpx.post(f"{live_server}/api/v1/custom-fields", json=body, headers=admin.headers, timeout=30).status_code == 201
    connect(live_server, member, imap_user)
    uid = dovecot.append(imap_user.name, "INBOX", business_mail(message_id="<custom@example.co.jp>"))
    page = open_widget(browser, live_server, member, f"folder=INBOX&uid={uid}")
    page.wait_for_selector("#custom:not([hidden])")
    assert page.text_content("label[for=c-corp_no]") == "法人番号 (required)"
    assert [page.get_attribute(f"#c-{k}", "type") for k in ("corp_no", "employees", "met_on")] == ["text", "number", "date"]
    assert page.locator("#c-tier option").all_text_contents() == ["Choose…", "A", "B"]
    page.click("#save")  # the required one is empty: refused, nothing saved
    page.wait_for_selector("#save-status[data-kind=error]")
    with runtime.sessions() as s:
        assert s.scalars(select(Lead)).all() == []
    page.fill("#c-corp_no", "1234567890123")
    page.fill("#c-employees", "120")
    page.fill("#c-met_on", "2026-11-20")
    page.select_option("#c-tier", "B")
    shot(page, "custom-fields")
    page.click("#save")
    expect(page.locator("#status")).to_have_text("Lead saved")
    with runtime.sessions() as s:
        lead_id = s.scalar(select(Lead.id))
    custom = httpx.get(f"{live_server}/api/v1/leads/{lead_id}/custom", headers=member.headers, timeout=30).json()
    assert custom == {"corp_no": "1234567890123", "employees": 120.0, "met_on": "2026-11-20", "tier": "B"}


def test_a_backend_that_refuses_the_origin_is_told_apart_from_one_that_is_down(browser, live_server, member) -> None:  # type: ignore[no-untyped-def]
    """The page on an origin the backend does not allow (here file://, whose origin is
    "null"): the backend answers, CORS refuses; the widget says so instead of "cannot be reached"."""
    page = browser.new_page(viewport={"width": 320, "height": 700})
    page.add_init_script(f"localStorage.setItem('token', {member.token!r}); localStorage.setItem('backend', {live_server!r}); localStorage.setItem('lang', 'en');")
    page.goto((Path(__file__).resolve().parents[1] / "widget_api" / "static" / "widget" / "index.html").as_uri() + "?folder=INBOX&uid=1")
    expect(page.locator("#error")).to_contain_text("does not allow this extension (CORS)")
    shot(page, "blocked")


def test_a_backend_error_and_a_lost_connection_are_said_apart(browser, live_server, member) -> None:  # type: ignore[no-untyped-def]
    """A 5xx is the backend's fault (try again / tell the admin), a 401 the connection's
    (connect again), each in the user's language."""
    page = open_widget(browser, live_server, member, "folder=INBOX&uid=1", lang="ja")
    page.route("**/api/v1/messages/draft?*", lambda route: route.fulfill(status=502, json={"type": "mailbox_unavailable", "detail": "メールサーバーに接続できません"}))
    page.reload()
    expect(page.locator("#error")).to_contain_text("バックエンドでエラーが発生しました (HTTP 502)")
    expect(page.locator("#error")).to_contain_text("メールサーバーに接続できません")
    assert page.is_hidden("#settings")
    page.route("**/api/v1/messages/draft?*", lambda route: route.fulfill(status=401, json={"type": "invalid_token", "detail": "x"}))
    page.reload()
    expect(page.locator("#error")).to_contain_text("もう一度接続してください")
    assert page.is_visible("#settings")
