"""Tokens on every endpoint but health and readiness, organisation isolation, CORS, error bodies."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.factories import make_org, make_user


class TestTokens:
    def test_health_needs_no_token(self, client: TestClient) -> None:
        assert client.get("/api/v1/health").json() == {"status": "ok"}

    def test_every_other_endpoint_refuses_a_missing_token(self, client: TestClient) -> None:
        checked = 0
        for path, operations in client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
            if path in ("/api/v1/health", "/api/v1/ready"):
                continue
            for method in operations:
                url = path.replace("{", "").replace("}", "")  # any value: auth comes first
                response = client.request(method.upper(), url)
                assert response.status_code in (401, 422), (method, path, response.status_code)
                if response.status_code == 401:
                    assert response.json()["type"] == "missing_token"
                checked += 1
        assert checked >= 5

    def test_a_wrong_token_is_401_with_a_clear_body(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        response = client.get("/api/v1/leads", headers={"Authorization": "Bearer mw_nope"})
        assert response.status_code == 401
        assert response.json()["type"] == "invalid_token"
        assert response.headers["www-authenticate"] == "Bearer"

    def test_errors_are_in_the_users_language(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        ja = client.get("/api/v1/leads/999999", headers=member.headers, params={"lang": "ja"}).json()
        en = client.get("/api/v1/leads/999999", headers=member.headers, params={"lang": "en"}).json()
        assert ja["type"] == en["type"] == "not_found"
        assert ja["detail"] == "見つかりません。" and en["detail"] == "Not found."

    def test_a_revoked_token_stops_working(self, client: TestClient, runtime, member) -> None:  # type: ignore[no-untyped-def]
        from crm.services import organisations

        assert client.get("/api/v1/leads", headers=member.headers).status_code == 200
        with runtime.sessions.begin() as s:
            organisations.revoke_tokens(s, member.id)
        assert client.get("/api/v1/leads", headers=member.headers).status_code == 401


class TestIsolation:
    def test_another_organisations_lead_is_not_found(self, client: TestClient, runtime, member) -> None:  # type: ignore[no-untyped-def]
        other_org = make_org(runtime, "Other KK")
        other = make_user(runtime, other_org, "someone@other.example")
        created = client.post("/api/v1/leads", json={"email": "x@customer.example", "last_name": "X"}, headers=other.headers)
        assert created.status_code == 201
        lead_id = created.json()["lead"]["id"]
        assert client.get(f"/api/v1/leads/{lead_id}", headers=member.headers).status_code == 404
        assert client.patch(f"/api/v1/leads/{lead_id}", json={"company": "hack"}, headers=member.headers).status_code == 404
        assert client.get("/api/v1/leads", headers=member.headers).json()["total"] == 0
        # the same email is free in the member's organisation: uniqueness is per organisation
        assert client.post("/api/v1/leads", json={"email": "x@customer.example"}, headers=member.headers).status_code == 201


class TestCors:
    def test_only_configured_origins_are_allowed(self, client: TestClient) -> None:
        preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
        ok = client.options("/api/v1/leads", headers={"Origin": "https://mail.example.test", **preflight})
        assert ok.headers.get("access-control-allow-origin") == "https://mail.example.test"
        bad = client.options("/api/v1/leads", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in bad.headers

    def test_the_extension_origin_is_answered_without_credentials(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        """Thunderbird's popup runs on moz-extension://<random uuid>: its preflight is answered
        (never a 405) and the real request carries CORS headers, but cookies are never allowed."""
        origin = "moz-extension://0412d52f-b369-4e69-b1c3-cb3b47db96ec"
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
        ok = client.options("/api/v1/messages/draft/raw", headers={"Origin": origin, **preflight})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == origin
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in ok.headers
        real = client.get("/api/v1/custom-fields", headers={"Origin": origin, **member.headers})
        assert real.status_code == 200 and real.headers["access-control-allow-origin"] == origin
        for other in ("moz-extension://not-a-uuid", "chrome-extension://abcdefghijklmnopabcdefghijklmnop", "null"):
            assert "access-control-allow-origin" not in client.options("/api/v1/leads", headers={"Origin": other, **preflight}).headers


def test_a_database_that_is_unreachable_is_503_in_the_users_language(runtime, member, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Locked, restarting or gone: 503 with Retry-After and {"type", "detail"}, not a 500."""
    from fastapi.testclient import TestClient

    from crm.store.db import make_engine, make_session_factory
    from widget_api.main import create_app

    with TestClient(create_app(runtime.settings, runtime), raise_server_exceptions=False) as client:
        runtime.engine = make_engine(f"sqlite:///{tmp_path / 'gone' / 'x.db'}")  # reads (runtime.read_sessions) and writes alike
        runtime.sessions = make_session_factory(runtime.engine)
        response = client.get("/api/v1/campaigns", headers={**member.headers, "Accept-Language": "ja"})
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["type"] == "database_unavailable" and "データベース" in response.json()["detail"]


def test_every_error_code_has_both_translations() -> None:
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    en = json.loads((root / "widget_api" / "locales" / "en.json").read_text(encoding="utf-8"))
    ja = json.loads((root / "widget_api" / "locales" / "ja.json").read_text(encoding="utf-8"))
    assert set(en) == set(ja)
    used = set()
    for path in [*root.glob("crm/**/*.py"), *root.glob("mail_adapter/**/*.py"), *root.glob("widget_api/**/*.py")]:
        used |= set(re.findall(r'code="([a-z_]+)"', path.read_text(encoding="utf-8")))
    assert used - set(en) == set()
