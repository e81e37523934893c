"""Matching the sender to leads, contacts and accounts; searching records (JA-insensitive);
filling a matched record's empty fields — through the API, on the real database."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.factories import import_csv, make_org, make_user


def lead(client: TestClient, user, **values) -> int:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/leads", json=values, headers=user.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["lead"]["id"])


def matches(client: TestClient, user, email: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    response = client.get("/api/v1/matches", params={"email": email}, headers=user.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["matches"])


def search(client: TestClient, user, q: str, **params) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/search", params={"q": q, **params}, headers=user.headers)
    assert response.status_code == 200, response.text
    return [(r["type"], r["id"]) for r in response.json()["items"]]


def convert(client: TestClient, user, lead_id: int) -> dict:  # type: ignore[no-untyped-def,type-arg]
    response = client.post(f"/api/v1/leads/{lead_id}/conversion", json={}, headers=user.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


class TestMatches:
    def test_a_lead_by_its_address_with_owner_campaigns_and_timeline(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        mine = lead(client, member, last_name="佐藤", first_name="花子", email="hanako@client.example", company="クライアント株式会社")
        campaign = client.post("/api/v1/campaigns", json={"name": "秋の展示会"}, headers=member.headers).json()["id"]
        assert client.post(f"/api/v1/campaigns/{campaign}/members", json={"lead_ids": [mine]}, headers=member.headers).status_code == 200
        [match] = matches(client, member, "Hanako@Client.Example")
        assert (match["type"], match["id"], match["reason"]) == ("lead", mine, "email")
        assert match["fields"]["company"] == "クライアント株式会社"
        assert match["owner"]["email"] == "rep@acme.example"
        assert [c["name"] for c in match["campaigns"]] == ["秋の展示会"]
        assert [e["kind"] for e in match["timeline"]] == ["campaign"]

    def test_only_the_last_five_timeline_entries(self, client: TestClient, member, runtime) -> None:  # type: ignore[no-untyped-def]
        from crm.services import timeline
        from crm.services.timeline import RecordRef

        mine = lead(client, member, last_name="Sato", email="sato@client.example")
        with runtime.sessions.begin() as s:
            for i in range(8):
                timeline.add_entry(s, RecordRef("lead", mine, member.organisation_id), "automatic_mail", summary=f"n{i}")
        [match] = matches(client, member, "sato@client.example")
        assert [e["summary"] for e in match["timeline"]] == ["n7", "n6", "n5", "n4", "n3"]

    def test_after_conversion_the_contact_and_the_account_by_domain(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        mine = lead(client, member, last_name="Sato", email="sato@client.example", company="Client KK")
        done = convert(client, member, mine)
        found = [(m["type"], m["id"], m["reason"]) for m in matches(client, member, "sato@client.example")]
        # The converted lead became the contact: listed once, as the contact.
        assert found == [("contact", done["contact_id"], "email"), ("account", done["account_id"], "domain")]
        # A colleague of the same company matches the account only.
        assert [(m["type"], m["id"]) for m in matches(client, member, "tanaka@client.example")] == [("account", done["account_id"])]

    def test_several_matches_are_all_listed(self, client: TestClient, member, admin) -> None:  # type: ignore[no-untyped-def]
        # Email is unique by default; allowing duplicates lets two leads share the address.
        assert client.put("/api/v1/settings/unique-fields/email", json={"unique": False}, headers=admin.headers).status_code == 200
        first = lead(client, member, last_name="Sato", email="sato@client.example")
        second = lead(client, member, last_name="佐藤", email="sato@client.example")
        found = [(m["type"], m["id"]) for m in matches(client, member, "sato@client.example")]
        assert found == [("lead", first), ("lead", second)]

    def test_a_free_mail_domain_matches_no_account(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        mine = lead(client, member, last_name="Sato", email="sato.hanako@gmail.com", company="Client KK")
        done = convert(client, member, mine)
        assert [m["type"] for m in matches(client, member, "sato.hanako@gmail.com")] == ["contact"]
        assert matches(client, member, "someone.else@gmail.com") == []
        assert done["account_id"]

    def test_another_organisation_sees_nothing(self, client: TestClient, member, runtime) -> None:  # type: ignore[no-untyped-def]
        mine = lead(client, member, last_name="Sato", email="sato@client.example", company="Client KK")
        convert(client, member, mine)
        other = make_user(runtime, make_org(runtime, "Other"), "rep@other.example")
        assert matches(client, other, "sato@client.example") == []
        assert search(client, other, "Sato") == []

    def test_not_an_address_is_a_4xx(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        response = client.get("/api/v1/matches", params={"email": "not an address"}, headers=member.headers)
        assert response.status_code == 400
        assert response.json()["type"] == "invalid_email"
        ja = client.get("/api/v1/matches", params={"email": "not an address", "lang": "ja"}, headers=member.headers).json()
        assert ja["detail"] == "メールアドレスではありません。"


class TestSearch:
    def test_full_width_half_width_and_case(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        mine = lead(client, member, last_name="Yamada", company="ＡＢＣ商事", email="y@abc.example")
        assert search(client, member, "abc商事") == [("lead", mine)]
        assert search(client, member, "ＹＡＭＡＤＡ") == [("lead", mine)]

    def test_hiragana_katakana_and_half_width_kana(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        mine = lead(client, member, last_name="サトウ", first_name="ハナコ", company="さくら物産")
        for q in ("さとう", "ｻﾄｳ", "サトウハナコ", "はなこさとう", "サクラ"):
            assert search(client, member, q) == [("lead", mine)], q

    def test_phone_in_any_format(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        mine = lead(client, member, last_name="Sato", phone="+81 3-1234-5678")
        for q in ("03-1234-5678", "０３（１２３４）５６７８", "0312345678", "+81 3 1234 5678", "1234-5678"):
            assert search(client, member, q) == [("lead", mine)], q
        assert search(client, member, "03-9999-0000") == []

    def test_contacts_and_accounts_and_types(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        done = convert(client, member, lead(client, member, last_name="Sato", email="sato@client.example", company="Client KK"))
        assert search(client, member, "client", types="contact,account") == [("contact", done["contact_id"]), ("account", done["account_id"])]
        assert search(client, member, "client kk", types="account") == [("account", done["account_id"])]

    def test_paged(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        ids = [lead(client, member, last_name=f"Tanaka {i}") for i in range(5)]
        first = client.get("/api/v1/search", params={"q": "tanaka", "limit": 3}, headers=member.headers).json()
        second = client.get("/api/v1/search", params={"q": "tanaka", "limit": 3, "offset": 3}, headers=member.headers).json()
        assert [r["id"] for r in first["items"] + second["items"]] == ids
        assert (first["more"], second["more"]) == (True, False)

    def test_wildcards_are_plain_characters(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        lead(client, member, last_name="Sato")
        assert search(client, member, "%%") == []
        assert search(client, member, "s_to") == []

    def test_bad_input_is_a_4xx(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        for params in ({"q": "x" * 101}, {"q": "a"}, {"q": "   "}, {"q": "sato", "types": "deal"}, {"q": "sato", "limit": 0}):
            response = client.get("/api/v1/search", params=params, headers=member.headers)
            assert response.status_code in (400, 422), params
            assert response.json()["type"]

    def test_keys_follow_every_write(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        mine = lead(client, member, last_name="Sato")
        assert client.patch(f"/api/v1/leads/{mine}", json={"last_name": "キムラ"}, headers=member.headers).status_code == 200
        assert search(client, member, "sato") == []
        assert search(client, member, "きむら") == [("lead", mine)]
        job = import_csv(client, member, "last_name,company\nワタナベ,テスト工業\n".encode())  # the bulk insert path
        assert job["status"] == "done" and job["counts"]["created"] == 1, job
        assert [t for t, _ in search(client, member, "わたなべ")] == ["lead"]


class TestSearchKeyMigration:
    def test_existing_rows_are_backfilled(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        from alembic import command
        from sqlalchemy import create_engine

        from crm.store.db import alembic_config

        url = f"sqlite:///{tmp_path / 'old.db'}"
        cfg = alembic_config(url)
        command.upgrade(cfg, "0001_core")
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO organisations (id, name, time_zone, default_region, mail_domains, created_at) VALUES (1, 'o', 'Asia/Tokyo', 'JP', '[]', '2026-01-01')"))
            conn.execute(text("INSERT INTO leads (organisation_id, last_name, phone, source, status, created_at, updated_at) VALUES (1, 'ヤマダ', '03-1234-5678', 'api', 'open', '2026-01-01', '2026-01-01')"))
        command.upgrade(cfg, "search_0001")
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT search_key FROM leads")) == "|やまだ|0312345678|"
        engine.dispose()


class TestUpdateEmptyFields:
    def test_fills_only_the_empty_fields(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        mine = lead(client, member, last_name="Sato", email="sato@client.example", company="Client KK")
        response = client.post(
            f"/api/v1/leads/{mine}/empty-fields", json={"values": {"last_name": "佐藤", "company": "Other", "phone": "03-1234-5678", "title": "部長"}}, headers=member.headers
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert sorted(body["filled"]) == ["phone", "title"]
        assert sorted(body["kept"]) == ["company", "last_name"]
        stored = client.get(f"/api/v1/leads/{mine}", headers=member.headers).json()
        assert (stored["last_name"], stored["company"], stored["phone"], stored["title"]) == ("Sato", "Client KK", "03-1234-5678", "部長")
        assert search(client, member, "0312345678") == [("lead", mine)]

    def test_a_contact(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        done = convert(client, member, lead(client, member, last_name="Sato", email="sato@client.example"))
        response = client.post(f"/api/v1/contacts/{done['contact_id']}/empty-fields", json={"values": {"mobile": "090-1111-2222", "last_name": "X"}}, headers=member.headers)
        assert response.status_code == 200, response.text
        assert (response.json()["filled"], response.json()["record"]["fields"]["last_name"]) == (["mobile"], "Sato")

    def test_invalid_values_and_unique_clashes_are_refused(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        mine = lead(client, member, last_name="Sato")
        lead(client, member, last_name="Kimura", email="kimura@client.example")
        bad = client.post(f"/api/v1/leads/{mine}/empty-fields", json={"values": {"email": "not-an-address"}}, headers=member.headers)
        assert bad.status_code == 422
        clash = client.post(f"/api/v1/leads/{mine}/empty-fields", json={"values": {"email": "kimura@client.example"}}, headers=member.headers)
        assert clash.status_code == 409
        assert client.get(f"/api/v1/leads/{mine}", headers=member.headers).json()["email"] is None

    def test_another_organisations_record_is_not_found(self, client: TestClient, member, runtime) -> None:  # type: ignore[no-untyped-def]
        mine = lead(client, member, last_name="Sato")
        other = make_user(runtime, make_org(runtime, "Other"), "rep@other.example")
        assert client.post(f"/api/v1/leads/{mine}/empty-fields", json={"values": {"phone": "1"}}, headers=other.headers).status_code == 404


class TestSearchIndex:
    def test_postgres_answers_from_the_trigram_index(self, runtime, member) -> None:  # type: ignore[no-untyped-def]
        from crm.store.db import is_postgres
        from crm.store.models import Lead

        with runtime.sessions.begin() as s:
            if not is_postgres(s):
                return  # SQLite: the substring test scans the organisation's keys, in SQL
            s.add_all(Lead(organisation_id=member.organisation_id, last_name=f"Name{i}", company=f"会社{i}") for i in range(2000))
        with runtime.sessions() as s:
            s.execute(text("ANALYZE leads"))
            # 2,000 rows of one organisation fit a few pages, where a scan is cheapest: ask
            # whether the index can answer the substring test at all.
            s.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(s.scalars(text("EXPLAIN SELECT id FROM leads WHERE search_key LIKE '%name1234%'")))
        indexes = list(s.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = 'leads'")))
        assert "ix_leads_search_trgm" in plan, (plan, indexes)
