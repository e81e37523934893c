"""The proof that the widget works inside a real Thunderbird, out of the box.

Debian's Thunderbird (scripts/test-deps.sh installs it) under Xvfb + openbox, one start for
the module, with a fresh profile: a real Dovecot account whose hierarchy delimiter is "."
(so "Customers.Acme" is Thunderbird's "/Customers/Acme"), the packed .xpi installed as an
admin deploys it, the backend URL preset by managed storage, and the real backend (uvicorn)
on a free port. The popup's own DOM is read and its buttons pressed (tests/servers/thunderbird.py).

The steps run in order, as one user would: connect (pairing) → a Japanese mail's draft →
save → a subfolder and a non-ASCII folder → not spam from Junk → an invitation accepted →
a user without a connected mailbox (raw upload, Shift_JIS 8-bit) → the next message while the
popup is open → "log this mail" onto the matching lead. Screenshots of each state
go to test-artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from crm.domain.drafts import CONFIDENT, ReadContext
from crm.services import auth, organisations
from crm.store.calendar import CalendarEvent
from crm.store.models import ApiToken, Lead
from mail_adapter.reading import read_raw
from tests.servers.dovecot import Dovecot
from tests.servers.thunderbird import THUNDERBIRD, Thunderbird
from widget_api.config import Settings
from widget_api.deps import Runtime
from widget_api.main import create_app

pytestmark = pytest.mark.thunderbird
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
TB_CORPUS = Path(__file__).resolve().parent / "data" / "corpora" / "thunderbird"
EMAIL, PASSWORD = "receiver@example.com", "receiver's long password"
FIELD_IDS = ("first_name", "last_name", "email", "company", "title", "phone", "mobile", "website", "street", "city", "state", "zip_code", "country")


def japanese_mail(message_id: str, *, charset: str = "iso-2022-jp", cte: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = '"山田 太郎" <taro.yamada@sample-shoji.co.jp>'
    msg["To"] = EMAIL
    msg["Subject"] = "お見積りのお願い"
    msg["Date"] = "Thu, 19 Nov 2026 16:02:00 +0900"
    msg["Message-ID"] = message_id
    body = (
        "受信者様\n\nいつもお世話になっております。\n20 ライセンスのお見積りをお願いいたします。\n\n"
        "--\n株式会社サンプル商事\n営業部 部長\n山田 太郎\n〒100-0001 東京都千代田区千代田1-1\n"
        "TEL: 03-1234-5678\n携帯: 090-1234-5678\nhttps://www.sample-shoji.co.jp\n"
    )
    msg.set_content(body, charset=charset, cte=cte)
    return msg.as_bytes()


def expected_fields(raw: bytes) -> dict[str, str]:
    """The draft the backend's own parser makes of these bytes: what the popup must show."""
    draft = read_raw(raw, ReadContext()).draft
    return {n: f.value for n, f in draft.fields.items() if f.confidence >= CONFIDENT and n in FIELD_IDS}


def shot(tb: Thunderbird, name: str) -> None:
    tb.popup_screenshot(ARTIFACTS / f"thunderbird-{name}.png")


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Runtime, str]]:
    """The real backend on a free port for the whole module (one Thunderbird start), on a
    database of its own: other tests on the same xdist worker empty the shared one between
    their tests, which would pull the module's user from under Thunderbird."""
    from crm.store.db import migrate
    from tests.conftest import serve_app

    work = tmp_path_factory.mktemp("thunderbird-backend")
    settings = Settings(database_url=f"sqlite:///{work / 'crm.db'}", secret_keys=[Fernet.generate_key().decode()], data_dir=work, allow_private_hosts=True)
    migrate(settings.database_url)
    runtime = Runtime.build(settings)
    with serve_app(create_app(settings, runtime)) as url:
        yield runtime, url
    runtime.close()


@pytest.fixture(scope="module")
def world(backend) -> Iterator[dict[str, object]]:  # type: ignore[no-untyped-def]
    """Dovecot ("." delimiter, folders Customers.Acme and 顧客), the CRM user with a password
    and the mailbox connected, and Thunderbird on that account with the .xpi installed."""
    if not Path(THUNDERBIRD).exists():
        pytest.skip("Debian's thunderbird is not installed (scripts/test-deps.sh installs it)")
    from scripts.pack_widget import pack

    runtime, url = backend
    with Dovecot(separator=".") as dovecot:
        imap_user = dovecot.add_user("receiver")
        with dovecot.imap(imap_user.name) as c:
            c.create_folder("Customers.Acme")
            c.create_folder("顧客")
        with runtime.sessions.begin() as s:
            org = organisations.create_organisation(s, "Acme 株式会社", mail_domains=["acme.example"])
            user = organisations.create_user(s, org.id, EMAIL, language="en")
            auth.set_password(s, user.id, PASSWORD)
            admin_token = organisations.issue_token(s, user.id, "test setup")
        headers = {"Authorization": f"Bearer {admin_token}"}
        mailbox = {"host": imap_user.host, "port": imap_user.port, "security": "plain", "username": imap_user.name, "password": imap_user.password}
        created = httpx.post(f"{url}/api/v1/mailboxes", json=mailbox, headers=headers, timeout=30)
        assert created.status_code == 201, created.text
        xpi = pack(tmp := Path(dovecot.dir) / "xpi")
        assert tmp.exists()
        with Thunderbird(imap_user, xpi, email=EMAIL, managed={"backend_url": url}, keep_log=ARTIFACTS / "thunderbird.log") as tb:
            yield {"tb": tb, "dovecot": dovecot, "imap": imap_user, "runtime": runtime, "url": url, "headers": headers, "mailbox": mailbox, "user_id": user.id}


def open_in_thunderbird(world: dict[str, object], folder: str, raw: bytes, message_id: str, *, connected: bool = True) -> Thunderbird:
    tb: Thunderbird = world["tb"]  # type: ignore[assignment]
    if connected and not _widget_token(world["runtime"], world["user_id"]):  # type: ignore[arg-type]
        pytest.fail("Thunderbird is not connected to the backend: see test_1 (pairing)")
    world["dovecot"].append(world["imap"].name, folder, raw)  # type: ignore[attr-defined]
    tb.close_popup()
    tb.show_message(folder, message_id)
    tb.open_popup()
    return tb


def popup_fields(tb: Thunderbird) -> dict[str, str]:
    return tb.popup(f"return Object.fromEntries({list(FIELD_IDS)!r}.map(n => [n, (doc.getElementById('f-' + n) || {{}}).value || '']).filter(([, v]) => v));")  # type: ignore[no-any-return]


def wait_for_draft(tb: Thunderbird, email: str) -> dict[str, str]:
    try:
        tb.wait_popup(f"!doc.getElementById('lead').hidden && doc.getElementById('f-email').value == {email!r}", what=f"the draft of {email}", timeout=60)
    except AssertionError as failure:
        shown = tb.popup("return [doc.getElementById('status').textContent, doc.getElementById('error').textContent, doc.getElementById('settings').hidden, doc.body.getAttribute('aria-busy'), doc.getElementById('lead').hidden, (doc.getElementById('f-email') || {}).value, doc.body.innerText.slice(0, 200)]")
        raise AssertionError(f"{failure}\npopup: {shown}") from None
    return popup_fields(tb)


def test_1_connect_by_signing_in_with_the_admins_preset_url(world) -> None:  # type: ignore[no-untyped-def]
    """No token to paste: the URL comes from managed storage; the user signs in on the
    backend's page in Thunderbird's own sign-in window and approves; the extension receives
    a "widget" token through the code + PKCE exchange."""
    tb: Thunderbird = world["tb"]
    raw = japanese_mail("<ja-1@sample-shoji.co.jp>")
    open_in_thunderbird(world, "INBOX", raw, "<ja-1@sample-shoji.co.jp>", connected=False)
    tb.wait_popup("!doc.getElementById('settings').hidden", what="the connect form")
    assert tb.popup("return [doc.getElementById('backend').value, doc.getElementById('backend').readOnly, doc.getElementById('backend-managed').hidden]") == [world["url"], True, False]
    shot(tb, "connect")
    tb.popup("doc.getElementById('pair').click(); return true;")
    window = "[...Services.wm.getEnumerator(null)].find(w => w.name == 'launchWebAuthFlow_dialog' && w.gBrowser)"
    at = "const w = " + window + "; const b = w && w.gBrowser.selectedBrowser; return !!(b && b.currentURI && b.currentURI.spec.includes(arguments[0]));"
    tb.wait(lambda: tb.js(at, "/auth/sign-in"), what="the sign-in window")
    # A page being replaced does not answer: false, and the wait asks again.
    in_window = f"const [code, resolve] = arguments; inContent({window}.gBrowser.selectedBrowser, code).then(resolve, e => resolve(false));"
    tb.wait(lambda: tb.js_async(in_window, "return !!doc.getElementById('password');"), what="the sign-in form")
    tb.wait(lambda: tb.js_async(in_window, f"doc.getElementById('email').value = {EMAIL!r}; doc.getElementById('password').value = {PASSWORD!r}; doc.querySelector('form').requestSubmit(); return true;"), what="signing in")
    tb.wait(lambda: tb.js(at, "/auth/widget"), what="the consent page")
    tb.wait(lambda: tb.js_async(in_window, "return !!doc.getElementById('allow');"), what="the consent form")
    tb.browser_screenshot(f"{window}.gBrowser.selectedBrowser", ARTIFACTS / "thunderbird-consent.png")
    tb.wait(lambda: tb.js_async(in_window, "doc.getElementById('allow').click(); return true;"), what="approving")
    tb.wait(lambda: tb.js(f"return !{window};"), what="the sign-in window to close with the code")
    runtime: Runtime = world["runtime"]
    tb.wait(lambda: _widget_token(runtime, world["user_id"]), what="the widget's token")
    # The popup closed when the sign-in window took the focus: the user opens it again.
    tb.close_popup()
    tb.open_popup()
    fields = wait_for_draft(tb, "taro.yamada@sample-shoji.co.jp")
    assert fields == expected_fields(raw)
    shot(tb, "connected")


def _widget_token(runtime: Runtime, user_id: object) -> bool:
    with runtime.sessions() as s:
        return s.scalar(select(ApiToken.id).where(ApiToken.user_id == user_id, ApiToken.scope == "widget", ApiToken.revoked_at.is_(None))) is not None


def test_2_a_japanese_mail_shows_its_draft_and_is_saved(world) -> None:  # type: ignore[no-untyped-def]
    raw = japanese_mail("<ja-2@sample-shoji.co.jp>")
    tb = open_in_thunderbird(world, "INBOX", raw, "<ja-2@sample-shoji.co.jp>")
    fields = wait_for_draft(tb, "taro.yamada@sample-shoji.co.jp")
    want = expected_fields(raw)
    assert fields == want and want["company"] == "株式会社サンプル商事" and want["last_name"] == "山田"
    # A Japanese name: family name first; not a Junk folder: no "Not spam"
    assert tb.popup("return [...doc.querySelectorAll('#fields input')].slice(0, 2).map(i => i.id)") == ["f-last_name", "f-first_name"]
    assert tb.popup("return doc.getElementById('spam').hidden") is True
    shot(tb, "japanese-draft")
    tb.popup("doc.getElementById('f-title').value = '営業部長'; doc.getElementById('save').click(); return true;")
    tb.wait_popup("doc.getElementById('save-status').textContent == 'Lead saved'", what="'Lead saved' next to the button")
    runtime: Runtime = world["runtime"]
    with runtime.sessions() as s:
        lead = s.scalar(select(Lead).where(Lead.email == "taro.yamada@sample-shoji.co.jp"))
        assert lead is not None and (lead.company, lead.title, lead.source) == ("株式会社サンプル商事", "営業部長", "widget")
    # "Open the lead" goes to the signed-in lead page on the backend, not to the JSON API
    href = tb.popup("return doc.getElementById('captured-link').href")
    assert href == f"{world['url']}/leads/{lead.id}"
    shot(tb, "japanese-saved")


@pytest.mark.parametrize(("folder", "message_id"), [("Customers.Acme", "<sub@example.co.jp>"), ("顧客", "<kokyaku@example.co.jp>")])
def test_3_a_subfolder_and_a_non_ascii_folder(world, folder: str, message_id: str) -> None:  # type: ignore[no-untyped-def]
    """Thunderbird knows these as "/Customers/Acme" and "/&mGdbog-": the backend finds the
    message by its Message-ID and the server's own folder name."""
    from tests.mails import business_mail

    raw = business_mail(message_id=message_id, sender='"Jane Smith" <jane.smith@example.com>', body="Hello,\n\nCan we talk?\n\nBest regards,\n\nJane Smith\nHead of Purchasing\nExample Corp.\nTel: +1 415 555 0100\n")
    tb = open_in_thunderbird(world, folder, raw, message_id)
    fields = wait_for_draft(tb, "jane.smith@example.com")
    assert fields == expected_fields(raw)
    assert tb.popup("return [...doc.querySelectorAll('#fields input')].slice(0, 2).map(i => i.id)") == ["f-first_name", "f-last_name"]  # a Western name: given name first
    shot(tb, f"folder-{'subfolder' if '.' in folder else 'non-ascii'}")


def test_4_not_spam_from_junk(world) -> None:  # type: ignore[no-untyped-def]
    from tests.mails import business_mail

    mid = "<junk-1@example.co.jp>"
    tb = open_in_thunderbird(world, "Junk", business_mail(message_id=mid), mid)
    wait_for_draft(tb, "taro.yamada@example.co.jp")
    tb.wait_popup("!doc.getElementById('spam').hidden", what="the spam section (Thunderbird says: special use junk)")
    tb.popup("doc.getElementById('not-spam').click(); return true;")
    tb.wait_popup("doc.getElementById('spam-status').textContent.startsWith('Moved to the inbox')", what="'Moved to the inbox' next to the button")
    shot(tb, "not-spam")
    with world["dovecot"].imap(world["imap"].name) as c:
        c.select_folder("INBOX", readonly=True)
        assert c.search(["HEADER", "Message-ID", mid])
        c.select_folder("Junk", readonly=True)
        assert not c.search(["NOT", "DELETED", "HEADER", "Message-ID", mid])


def test_5_an_invitation_accepted_into_the_crm_calendar(world) -> None:  # type: ignore[no-untyped-def]
    # Thunderbird's own sample invitation, for receiver@example.com; it has no Message-ID
    # (Thunderbird would name it "md5:…", which no server knows): one is added.
    message_id = "<single-event@example.com>"
    raw = f"Message-ID: {message_id}\r\n".encode() + (TB_CORPUS / "single-event.eml").read_bytes()
    tb = open_in_thunderbird(world, "INBOX", raw, message_id)
    tb.wait_popup("!!doc.querySelector('#invites:not([hidden]) button[data-partstat=ACCEPTED]')", what="the invitation card")
    shot(tb, "invitation")
    tb.popup("doc.querySelector('button[data-partstat=ACCEPTED]').click(); return true;")
    # No SMTP server is configured: the panel must not claim the organiser was told.
    tb.wait_popup("doc.querySelector('.invite .feedback').textContent.startsWith('Accepted in the CRM; the organiser was not notified')", what="the honest answer")
    card = tb.popup("return doc.querySelector('.invite').innerText")
    assert "Answered: Accepted" in card and "Outdated" not in card and "Answer sent" not in card
    assert tb.popup("return doc.querySelector('button[data-partstat=ACCEPTED]').getAttribute('aria-pressed')") == "true"
    shot(tb, "invitation-accepted")
    runtime: Runtime = world["runtime"]
    with runtime.sessions() as s:
        event = s.scalar(select(CalendarEvent))
        assert event is not None and event.in_calendar and event.own_partstat == "ACCEPTED"


def test_6_a_user_without_a_connected_mailbox_uploads_the_raw_message(world) -> None:  # type: ignore[no-untyped-def]
    """The backend cannot read this account: the widget sends the message's exact bytes
    (8-bit Shift_JIS, which a re-encoded binary string would garble)."""
    url, headers = world["url"], world["headers"]
    for box in httpx.get(f"{url}/api/v1/mailboxes", headers=headers, timeout=30).json():
        assert httpx.delete(f"{url}/api/v1/mailboxes/{box['id']}", headers=headers, timeout=30).status_code == 204
    try:
        raw = japanese_mail("<raw-1@sample-shoji.co.jp>", charset="shift_jis", cte="8bit")
        assert any(b > 0x7F for b in raw)
        tb = open_in_thunderbird(world, "INBOX", raw, "<raw-1@sample-shoji.co.jp>")
        fields = wait_for_draft(tb, "taro.yamada@sample-shoji.co.jp")
        want = expected_fields(raw)
        assert fields == want and want["company"] == "株式会社サンプル商事" and want["street"]
        assert "æ" not in tb.popup("return doc.getElementById('fields').innerText")
        shot(tb, "raw-upload")
    finally:
        assert httpx.post(f"{url}/api/v1/mailboxes", json=world["mailbox"], headers=headers, timeout=30).status_code == 201


def test_7_another_message_while_the_popup_is_open_replaces_the_draft(world) -> None:  # type: ignore[no-untyped-def]
    """The popup stays open while the user selects the next message: the first draft goes at
    once (never shown, nor saved, for the wrong message) and the new one comes in."""
    from tests.mails import business_mail

    first = business_mail(message_id="<next-1@example.com>", sender='"Ann Lee" <ann.lee@example.com>')
    second = business_mail(message_id="<next-2@example.com>", sender='"Bob Ray" <bob.ray@example.org>')
    world["dovecot"].append(world["imap"].name, "INBOX", second)  # type: ignore[attr-defined]
    tb = open_in_thunderbird(world, "INBOX", first, "<next-1@example.com>")
    wait_for_draft(tb, "ann.lee@example.com")
    tb.show_message("INBOX", "<next-2@example.com>")
    still_open = tb.js("const b = popupBrowser(); return !!b && b.closest('panel') && b.closest('panel').state == 'open';")
    if not still_open:
        pytest.skip("this Thunderbird closes the popup when another message is displayed: nothing stale can stay")
    wait_for_draft(tb, "bob.ray@example.org")
    assert "ann.lee" not in tb.popup("return doc.getElementById('fields').innerHTML + doc.getElementById('f-email').value")


def test_8_log_this_mail_from_the_panel(world) -> None:  # type: ignore[no-untyped-def]
    """The sender matches a lead: the panel shows it; "log this mail" puts the mail on the
    lead's timeline (in the panel and through the API), stored once; pressed again, nothing
    changes."""
    from tests.mails import business_mail

    url, headers = world["url"], world["headers"]
    made = httpx.post(f"{url}/api/v1/leads", json={"last_name": "Mori", "email": "kei.mori@log-test.example", "company": "Log Test KK"}, headers=headers, timeout=30)
    assert made.status_code == 201, made.text
    lead_id = made.json()["lead"]["id"]
    mid = "<log-1@log-test.example>"
    raw = business_mail(message_id=mid, sender='"Kei Mori" <kei.mori@log-test.example>', to=EMAIL, subject="Order of 30 units")
    tb = open_in_thunderbird(world, "INBOX", raw, mid)
    wait_for_draft(tb, "kei.mori@log-test.example")
    card = f"doc.getElementById('rec-lead-{lead_id}')"
    tb.wait_popup(f"!!{card} && {card}.textContent.includes('Log Test KK') && !doc.getElementById('log-mail').hidden", what="the matching lead's card")
    assert tb.popup(f"return {card}.querySelector('input[type=checkbox]').checked") is True  # the only match: ticked
    timeline = f"{url}/api/v1/leads/{lead_id}/timeline"

    def logged() -> list[tuple[str, str]]:
        return [(e["kind"], e["summary"]) for e in httpx.get(timeline, headers=headers, timeout=30).json()["entries"]]

    assert logged() == []
    tb.popup("doc.getElementById('log-mail').click(); return true;")
    tb.wait_popup("doc.getElementById('records-status').textContent == 'Logged to 1 record(s)'", what="'Logged to 1 record(s)' next to the button")
    tb.wait_popup(f"{card}.querySelector('ol.timeline li.entry-mail') && {card}.querySelector('ol.timeline').textContent.includes('Order of 30 units')", what="the entry in the panel's timeline")
    shot(tb, "logged")
    assert logged() == [("mail", "Order of 30 units")]
    tb.popup("doc.getElementById('records-status').textContent = ''; doc.getElementById('log-mail').click(); return true;")
    tb.wait_popup("doc.getElementById('records-status').textContent == 'Already logged (nothing changed)'", what="'Already logged' on the second press")
    assert logged() == [("mail", "Order of 30 units")]
    assert tb.popup(f"return {card}.querySelectorAll('ol.timeline li.entry-mail').length") == 1


def test_9_a_leads_stage_set_from_its_card(world) -> None:  # type: ignore[no-untyped-def]
    """The panel's stage select: a PUT from the extension's origin (its CORS preflight is no
    other test's), the stage stored and onto the lead's timeline, the card saying so."""
    from tests.mails import business_mail

    url, headers = world["url"], world["headers"]
    made = httpx.post(f"{url}/api/v1/leads", json={"last_name": "Sato", "email": "aya.sato@stage-test.example", "company": "Stage Test KK"}, headers=headers, timeout=30)
    assert made.status_code == 201, made.text
    lead_id = made.json()["lead"]["id"]
    mid = "<stage-1@stage-test.example>"
    raw = business_mail(message_id=mid, sender='"Aya Sato" <aya.sato@stage-test.example>', to=EMAIL, subject="Quote request")
    tb = open_in_thunderbird(world, "INBOX", raw, mid)
    wait_for_draft(tb, "aya.sato@stage-test.example")
    card = f"doc.getElementById('rec-lead-{lead_id}')"
    tb.wait_popup(f"!!{card} && !!{card}.querySelector('select.stage')", what="the lead's stage select")
    assert tb.popup(f"return {card}.querySelector('select.stage').value") == "open"
    tb.popup(f"const s = {card}.querySelector('select.stage'); s.value = 'contacted'; s.dispatchEvent(new Event('change')); return true;")
    tb.wait_popup(f"{card} && {card}.querySelector('.feedback').textContent == 'Status set to Contacted'", what="'Status set to Contacted' on the card")
    tb.wait_popup(f"{card}.querySelector('ol.timeline li.entry-status') && {card}.querySelector('ol.timeline').textContent.includes('open → contacted')", what="the stage change in the card's timeline")
    shot(tb, "stage-set")
    lead = httpx.get(f"{url}/api/v1/leads/{lead_id}", headers=headers, timeout=30).json()
    assert lead["status"] == "contacted"
    entries = httpx.get(f"{url}/api/v1/leads/{lead_id}/timeline", headers=headers, timeout=30).json()["entries"]
    assert [(e["kind"], e["summary"]) for e in entries] == [("status", "open → contacted")]
