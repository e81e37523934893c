"""Pairing the widget without pasting a token (authorization code + PKCE), signing in on the
backend's pages, the user's tokens, and the lead page "Open the lead" goes to."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from crm.services import auth, timeline
from crm.services.timeline import RecordRef
from crm.store.auth import AuthCode, UserPassword
from crm.store.base import utcnow
from crm.store.models import ApiToken, Lead
from tests.factories import make_user
from widget_api.config import EXTENSION_REDIRECT_URI

PASSWORD = "correct horse battery"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def with_password(runtime, user) -> None:  # type: ignore[no-untyped-def]
    with runtime.sessions.begin() as s:
        auth.set_password(s, user.id, PASSWORD)


def sign_in(client: TestClient, email: str, password: str = PASSWORD, next_path: str = "/account"):  # type: ignore[no-untyped-def]
    form = client.get(f"/auth/sign-in?next={next_path}")
    token = re.search(r'name="form_token" value="([^"]+)"', form.text)[1]  # type: ignore[index]
    return client.post("/auth/sign-in", data={"email": email, "password": password, "form_token": token, "next": next_path}, follow_redirects=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html)[1]  # type: ignore[index]


def pair(client: TestClient, challenge: str, redirect_uri: str = EXTENSION_REDIRECT_URI) -> str:
    """Consent page → allow → the code in the redirect (what the extension's identity API sees)."""
    query = urlencode({"redirect_uri": redirect_uri, "code_challenge": challenge, "code_challenge_method": "S256", "state": "s1", "client_name": "Thunderbird"})
    page = client.get(f"/auth/widget?{query}")
    assert page.status_code == 200 and "form-action 'self' https://" in page.headers["content-security-policy"]
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    answer = client.post("/auth/widget", data={**form, "decision": "allow"}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"].startswith(redirect_uri)
    params = parse_qs(urlsplit(answer.headers["location"]).query)
    assert params["state"] == ["s1"]
    return params["code"][0]


class TestPasswords:
    def test_scrypt_hash_and_sign_in(self, runtime, client, member) -> None:  # type: ignore[no-untyped-def]
        with_password(runtime, member)
        with runtime.sessions() as s:
            stored = s.get(UserPassword, member.id).password_hash
        assert stored.startswith("scrypt$16384$8$1$") and PASSWORD not in stored
        assert sign_in(client, member.email, "wrong password!").status_code == 400
        assert sign_in(client, "nobody@acme.example").status_code == 400
        ok = sign_in(client, member.email)
        assert ok.status_code == 303 and ok.headers["location"] == "/account"
        assert "httponly" in ok.headers["set-cookie"].lower() and "samesite=lax" in ok.headers["set-cookie"].lower()
        assert member.email in client.get("/account").text

    def test_a_short_password_is_refused(self, runtime, member) -> None:  # type: ignore[no-untyped-def]
        from crm.domain.errors import InvalidInput

        with runtime.sessions.begin() as s, pytest.raises(InvalidInput):
            auth.set_password(s, member.id, "short")

    def test_the_sign_in_form_needs_its_own_cookie(self, runtime, client, member) -> None:  # type: ignore[no-untyped-def]
        """A form posted from another site (no form cookie) is refused: no login CSRF."""
        with_password(runtime, member)
        response = client.post("/auth/sign-in", data={"email": member.email, "password": PASSWORD, "form_token": "forged"}, follow_redirects=False)
        assert response.status_code == 400 and "mw_session" not in response.headers.get("set-cookie", "")

    def test_next_never_leaves_the_site(self, runtime, client, member) -> None:  # type: ignore[no-untyped-def]
        with_password(runtime, member)
        assert sign_in(client, member.email, next_path="//evil.example/x").headers["location"] == "/account"

    def test_the_cli_sets_a_password_from_stdin(self, runtime, member, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
        import io

        from widget_api.cli import main

        monkeypatch.setenv("DATABASE_URL", runtime.settings.database_url)
        monkeypatch.setenv("MAILWIDGET_SECRET_KEY", runtime.settings.secret_keys[0])
        monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
        assert main(["user-password", member.email, "--org", str(member.organisation_id)]) == 0
        with runtime.sessions() as s:
            assert auth.check_password(s, member.email, PASSWORD).id == member.id
        assert main(["tokens", member.email, "--org", str(member.organisation_id)]) == 0
        assert "\tfull\t" in capsys.readouterr().out


class TestPairing:
    def test_code_and_verifier_give_a_widget_token(self, runtime, client, member) -> None:  # type: ignore[no-untyped-def]
        with_password(runtime, member)
        sign_in(client, member.email)
        verifier, challenge = pkce()
        code = pair(client, challenge)
        got = client.post("/auth/token", json={"code": code, "code_verifier": verifier, "redirect_uri": EXTENSION_REDIRECT_URI})
        assert got.status_code == 200 and got.json()["scope"] == "widget"
        token = got.json()["access_token"]
        assert client.get("/api/v1/custom-fields", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        with runtime.sessions() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.scope == "widget"))
            assert row.user_id == member.id and token not in row.token_hash

    def test_the_code_is_single_use_and_a_replay_revokes_the_token(self, runtime, client, member) -> None:  # type: ignore[no-untyped-def]
        with_password(runtime, member)
        sign_in(client, member.email)
        verifier, challenge = pkce()
        code = pair(client, challenge)
        body = {"code": code, "code_verifier": verifier, "redirect_uri": EXTENSION_REDIRECT_URI}
        token = client.post("/auth/token", json=body).json()["access_token"]
        again = client.post("/auth/token", json=body)
        assert again.status_code == 400 and again.json()["type"] == "invalid_grant"
        assert client.get("/api/v1/custom-fields", headers={"Authorization": f"Bearer {token}"}).status_code == 401

    def test_a_code_without_its_verifier_or_late_is_worthless(self, runtime, client, member) -> None:  # type: ignore[no-untyped-def]
        with_password(runtime, member)
        sign_in(client, member.email)
        _verifier, challenge = pkce()
        stolen = pair(client, challenge)
        other_verifier, _ = pkce()
        assert client.post("/auth/token", json={"code": stolen, "code_verifier": other_verifier, "redirect_uri": EXTENSION_REDIRECT_URI}).status_code == 400
        verifier, challenge = pkce()
        late = pair(client, challenge)
        with runtime.sessions.begin() as s:
            s.execute(update(AuthCode).where(AuthCode.used_at.is_(None)).values(expires_at=utcnow() - timedelta(seconds=1)))
        assert client.post("/auth/token", json={"code": late, "code_verifier": verifier, "redirect_uri": EXTENSION_REDIRECT_URI}).status_code == 400
        with runtime.sessions() as s:
            assert s.scalar(select(ApiToken).where(ApiToken.scope == "widget")) is None

    def test_only_the_extensions_redirect_uri(self, runtime, client, member) -> None:  # type: ignore[no-untyped-def]
        with_password(runtime, member)
        sign_in(client, member.email)
        _v, challenge = pkce()
        page = client.get("/auth/widget?" + urlencode({"redirect_uri": "https://evil.example/", "code_challenge": challenge}), follow_redirects=False)
        assert page.status_code == 400 and "location" not in page.headers

    def test_not_signed_in_goes_to_the_sign_in_page_and_back(self, client) -> None:  # type: ignore[no-untyped-def]
        _v, challenge = pkce()
        page = client.get("/auth/widget?" + urlencode({"redirect_uri": EXTENSION_REDIRECT_URI, "code_challenge": challenge}), follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/auth/sign-in?next=%2Fauth%2Fwidget%3F")

    def test_the_consent_needs_the_sessions_csrf_token(self, runtime, client, member) -> None:  # type: ignore[no-untyped-def]
        with_password(runtime, member)
        sign_in(client, member.email)
        _v, challenge = pkce()
        answer = client.post("/auth/widget", data={"redirect_uri": EXTENSION_REDIRECT_URI, "code_challenge": challenge, "decision": "allow", "csrf": "forged"}, follow_redirects=False)
        assert answer.status_code == 400 and "location" not in answer.headers


class TestTokens:
    def test_listed_and_revoked_by_their_user_not_by_another(self, runtime, client, org, member) -> None:  # type: ignore[no-untyped-def]
        other = make_user(runtime, org, "other@acme.example")
        mine = client.get("/api/v1/tokens", headers=member.headers).json()
        assert len(mine) == 1 and mine[0]["scope"] == "full"
        assert client.delete(f"/api/v1/tokens/{mine[0]['id']}", headers=other.headers).status_code == 404
        assert client.delete(f"/api/v1/tokens/{mine[0]['id']}", headers=member.headers).status_code == 204
        assert client.get("/api/v1/tokens", headers=member.headers).status_code == 401

    def test_an_admin_lists_and_revokes_the_organisations_tokens(self, runtime, client, org, member) -> None:  # type: ignore[no-untyped-def]
        boss = make_user(runtime, org, "boss@acme.example", role="admin")
        assert client.get("/api/v1/tokens?organisation=true", headers=member.headers).status_code == 403
        listed = client.get("/api/v1/tokens?organisation=true", headers=boss.headers).json()
        assert {t["user_id"] for t in listed} == {member.id, boss.id}
        theirs = next(t for t in listed if t["user_id"] == member.id)
        assert client.delete(f"/api/v1/tokens/{theirs['id']}", headers=boss.headers).status_code == 204
        assert client.get("/api/v1/custom-fields", headers=member.headers).status_code == 401

    def test_a_widget_token_is_never_an_admins(self, runtime, client, org) -> None:  # type: ignore[no-untyped-def]
        boss = make_user(runtime, org, "boss@acme.example", role="admin")
        with runtime.sessions.begin() as s:
            from crm.services import organisations

            widget = organisations.issue_token(s, boss.id, "widget", scope="widget")
        body = {"key": "corp_no", "label": "法人番号", "type": "text"}
        assert client.post("/api/v1/custom-fields", json=body, headers={"Authorization": f"Bearer {widget}"}).status_code == 403
        assert client.post("/api/v1/custom-fields", json=body, headers=boss.headers).status_code == 201

    def test_revoked_on_the_account_page(self, runtime, client, member) -> None:  # type: ignore[no-untyped-def]
        with_password(runtime, member)
        sign_in(client, member.email)
        page = client.get("/account").text
        token_id = re.search(r'action="/account/tokens/(\d+)/revoke"', page)[1]  # type: ignore[index]
        assert client.post(f"/account/tokens/{token_id}/revoke", data={"csrf": "forged"}).status_code == 403
        assert client.post(f"/account/tokens/{token_id}/revoke", data={"csrf": csrf_of(page)}, follow_redirects=False).status_code == 303
        assert client.get("/api/v1/custom-fields", headers=member.headers).status_code == 401


class TestLeadPage:
    def test_a_signed_in_page_editable_with_csrf(self, runtime, client, org, member) -> None:  # type: ignore[no-untyped-def]
        with_password(runtime, member)
        created = client.post("/api/v1/leads", json={"last_name": "山田", "first_name": "太郎", "email": "taro@example.co.jp", "message": {"message_id": "<m1@example.co.jp>"}}, headers=member.headers)
        lead_id = created.json()["lead"]["id"]
        assert client.get(f"/leads/{lead_id}", follow_redirects=False).headers["location"].startswith("/auth/sign-in")
        sign_in(client, member.email, next_path=f"/leads/{lead_id}")
        page = client.get(f"/leads/{lead_id}?lang=ja")
        assert page.status_code == 200 and "m1@example.co.jp" in page.text
        assert page.text.index('id="f-last_name"') < page.text.index('id="f-first_name"')  # a Japanese name: family name first
        assert 'lang="ja"' in page.text and "見込み客" in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
        assert client.post(f"/leads/{lead_id}", data={"csrf": "forged", "company": "Hack"}).status_code == 400
        fields = {"csrf": csrf_of(page.text), "last_name": "山田", "first_name": "太郎", "email": "taro@example.co.jp", "company": "<b>株式会社サンプル</b>"}
        saved = client.post(f"/leads/{lead_id}", data=fields, follow_redirects=False)
        assert saved.status_code == 303
        shown = client.get(saved.headers["location"]).text
        assert "&lt;b&gt;株式会社サンプル&lt;/b&gt;" in shown and "<b>株式会社" not in shown
        with runtime.sessions() as s:
            assert s.get(Lead, lead_id).company == "<b>株式会社サンプル</b>"

    def test_the_latest_timeline_entries_paged_in_the_organisations_time_zone(self, runtime, client, member) -> None:  # type: ignore[no-untyped-def]
        with_password(runtime, member)
        lead_id = client.post("/api/v1/leads", json={"last_name": "山田", "email": "yamada@customer.example"}, headers=member.headers).json()["lead"]["id"]
        start = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)  # 00:30 the next day in Tokyo
        with runtime.sessions.begin() as s:
            for i in range(12):
                timeline.add_entry(s, RecordRef("lead", lead_id, member.organisation_id), "automatic_mail", at=start + timedelta(minutes=i), summary=f"<i>n{i}</i>")
        sign_in(client, member.email, next_path=f"/leads/{lead_id}")
        page = client.get(f"/leads/{lead_id}?lang=ja").text
        shown = re.findall(r"<li class='entry entry-automatic_mail'><time[^>]*>([^<]+)</time> 自動メール: &lt;i&gt;(n\d+)&lt;/i&gt;</li>", page)
        assert [n for _, n in shown] == [f"n{i}" for i in range(11, 1, -1)]  # the newest ten, newest first, escaped
        assert shown[0][0] == "2026-12-02 00:41" and "<h2>履歴</h2>" in page
        older = client.get(html.unescape(re.search(r"id='older' href='([^']+)'", page)[1]) + "&lang=en").text  # type: ignore[index]
        assert re.findall(r"Automatic mail: &lt;i&gt;(n\d+)", older) == ["n1", "n0"] and "id='older'" not in older
        bad = client.get(f"/leads/{lead_id}?before=not-a-cursor&lang=en")
        assert bad.status_code == 400 and 'role="alert"' in bad.text and "n11" in bad.text
        too_long = client.get(f"/leads/{lead_id}?before={'9' * 65}")
        assert too_long.status_code == 422 and too_long.json()["type"] == "validation_error"
        assert client.get(f"/leads/{lead_id}?before={'9' * 40}-1").status_code == 400  # past year 9999

        # converted: the history moved to the contact, and the lead's page shows it from there
        assert client.post(f"/api/v1/leads/{lead_id}/conversion", json={}, headers=member.headers).status_code == 201
        converted = client.get(f"/leads/{lead_id}?lang=en").text
        assert "its history is now the contact" in converted and "n11" in converted

    def test_the_stage_is_changed_on_the_page_with_csrf(self, runtime, client, member) -> None:  # type: ignore[no-untyped-def]
        with_password(runtime, member)
        lead_id = client.post("/api/v1/leads", json={"email": "stage@customer.example"}, headers=member.headers).json()["lead"]["id"]
        sign_in(client, member.email, next_path=f"/leads/{lead_id}")
        page = client.get(f"/leads/{lead_id}?lang=ja").text
        assert '<option value="open" selected>未対応</option>' in page and '<option value="contacted">連絡済み</option>' in page
        assert client.post(f"/leads/{lead_id}/status", data={"csrf": "forged", "status": "contacted"}).status_code == 400
        unknown = client.post(f"/leads/{lead_id}/status?lang=en", data={"csrf": csrf_of(page), "status": "won"})
        assert unknown.status_code == 400 and "open, contacted, qualified or unqualified" in unknown.text
        assert client.get(f"/api/v1/leads/{lead_id}", headers=member.headers).json()["status"] == "open"
        done = client.post(f"/leads/{lead_id}/status", data={"csrf": csrf_of(page), "status": "contacted"}, follow_redirects=False)
        assert done.status_code == 303
        shown = client.get(done.headers["location"] + "&lang=en").text
        assert '<option value="contacted" selected>Contacted</option>' in shown and "Status: open → contacted" in shown
        client.post(f"/api/v1/leads/{lead_id}/conversion", json={}, headers=member.headers)
        converted = client.get(f"/leads/{lead_id}?lang=en").text
        assert "<p id='status'>Status: Converted</p>" in converted and 'name="status"' not in converted

    def test_another_organisation_sees_nothing(self, runtime, client, member) -> None:  # type: ignore[no-untyped-def]
        from tests.factories import make_org

        lead_id = client.post("/api/v1/leads", json={"email": "x@customer.example"}, headers=member.headers).json()["lead"]["id"]
        stranger = make_user(runtime, make_org(runtime, "Other"), "s@other.example")
        with_password(runtime, stranger)
        sign_in(client, stranger.email)
        assert client.get(f"/leads/{lead_id}").status_code == 404

    def test_the_widget_learns_where_open_the_lead_goes(self, client, member) -> None:  # type: ignore[no-untyped-def]
        assert client.get("/api/v1/widget/config", headers=member.headers).json() == {"lead_url": "/leads/{id}"}
