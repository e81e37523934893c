"""Campaigns (見込み客とキャンペーンの関連付け), conversion (見込み客の変換) and CSV import."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from crm.store.campaigns import CampaignMember
from crm.store.models import Account, Contact, Lead
from tests.factories import import_csv, make_org, make_user


def lead(client, user, **fields) -> int:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/leads", json=fields, headers=user.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["lead"]["id"])


class TestCampaigns:
    def test_statuses_bulk_add_report_idempotence_and_history(self, client, member, runtime) -> None:  # type: ignore[no-untyped-def]
        campaign = client.post("/api/v1/campaigns", json={"name": "春の展示会"}, headers=member.headers).json()
        assert [(s["name"], s["is_default"], s["responded"]) for s in campaign["statuses"]] == [("送信済み", True, False), ("反応あり", False, True), ("未反応", False, False)]
        ids = [lead(client, member, email=f"p{i}@customer.example") for i in range(3)]
        body = {"lead_ids": [*ids, 999999]}
        first = client.post(f"/api/v1/campaigns/{campaign['id']}/members", json=body, headers=member.headers).json()
        assert first["counts"] == {"added": 3, "not_found": 1}
        again = client.post(f"/api/v1/campaigns/{campaign['id']}/members", json=body, headers=member.headers).json()
        assert again["counts"] == {"already_member": 3, "not_found": 1}  # re-sending changes nothing
        moved = client.post(f"/api/v1/campaigns/{campaign['id']}/members", json={"lead_ids": ids[:1], "status": "反応あり", "update_status": True}, headers=member.headers).json()
        assert moved["counts"] == {"updated": 1}
        client.put(f"/api/v1/campaigns/{campaign['id']}/members/{ids[1]}", json={"status": "未反応"}, headers=member.headers)
        history = client.get(f"/api/v1/campaigns/{campaign['id']}/members/{ids[0]}/history", headers=member.headers).json()
        assert [(h["from"], h["to"], h["user_id"]) for h in history] == [("送信済み", "反応あり", member.id)]
        summary = client.get(f"/api/v1/campaigns/{campaign['id']}", headers=member.headers).json()
        assert {s["name"]: s["members"] for s in summary["statuses"]} == {"送信済み": 1, "反応あり": 1, "未反応": 1}
        assert summary["members_total"] == 3 and summary["responded_total"] == 1
        client.post("/api/v1/campaigns", json={"name": "空のキャンペーン"}, headers=member.headers)
        listed = client.get("/api/v1/campaigns", headers=member.headers).json()
        assert [(c["name"], c["members_total"]) for c in listed] == [("空のキャンペーン", 0), ("春の展示会", 3)]
        stranger = make_user(runtime, make_org(runtime, "Other"), "x@other.example")
        assert client.get("/api/v1/campaigns", headers=stranger.headers).json() == []

    def test_the_same_bulk_add_sent_eight_times_at_once_adds_each_lead_once(self, live_server: str, client, member, session) -> None:  # type: ignore[no-untyped-def]
        """A double-clicked or retried request racing itself: every copy succeeds, each lead
        is a member once, and exactly one copy reports it added."""
        campaign = client.post("/api/v1/campaigns", json={"name": "Race"}, headers=member.headers).json()
        ids = [lead(client, member, email=f"race{i}@customer.example") for i in range(200)]

        def send(_: int) -> httpx.Response:
            return httpx.post(f"{live_server}/api/v1/campaigns/{campaign['id']}/members", json={"lead_ids": ids}, headers=member.headers, timeout=60)

        with ThreadPoolExecutor(8) as pool:
            responses = list(pool.map(send, range(8)))
        assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses if r.status_code != 200]
        added = [r.json()["counts"].get("added", 0) for r in responses]
        assert sum(added) == 200 and all(n in (0, 200) for n in added)
        session.rollback()
        assert session.scalar(select(func.count()).select_from(CampaignMember).where(CampaignMember.campaign_id == campaign["id"])) == 200
        session.rollback()

    def test_bad_requests_change_nothing(self, client, member, runtime) -> None:  # type: ignore[no-untyped-def]
        campaign = client.post("/api/v1/campaigns", json={"name": "Webinar", "statuses": [{"name": "Sent", "is_default": True}, {"name": "Responded", "responded": True}]}, headers=member.headers).json()
        lead_id = lead(client, member, email="x@customer.example")
        unknown = client.post(f"/api/v1/campaigns/{campaign['id']}/members", json={"lead_ids": [lead_id], "status": "Nope"}, headers=member.headers)
        assert unknown.status_code == 400 and unknown.json()["type"] == "unknown_status"
        assert client.get(f"/api/v1/campaigns/{campaign['id']}", headers=member.headers).json()["members_total"] == 0
        assert client.post("/api/v1/campaigns", json={"name": "Webinar"}, headers=member.headers).status_code == 409
        two_defaults = client.post("/api/v1/campaigns", json={"name": "X", "statuses": [{"name": "a", "is_default": True}, {"name": "b", "is_default": True}]}, headers=member.headers)
        assert two_defaults.status_code == 400
        other = make_user(runtime, make_org(runtime, "Other"), "o@other.example")
        assert client.get(f"/api/v1/campaigns/{campaign['id']}", headers=other.headers).status_code == 404
        other_lead = lead(client, other, email="y@customer.example")
        foreign = client.post(f"/api/v1/campaigns/{campaign['id']}/members", json={"lead_ids": [other_lead]}, headers=member.headers).json()
        assert foreign["counts"] == {"not_found": 1}


class TestConversion:
    def test_preview_links_to_the_same_company_and_refuses_twice(self, client, member, session) -> None:  # type: ignore[no-untyped-def]
        first = lead(client, member, last_name="山田", email="yamada@yamada-shoji.co.jp", company="株式会社山田商事")
        second = lead(client, member, last_name="佐藤", email="sato@yamada-shoji.co.jp", company="山田商事㈱")
        assert client.get(f"/api/v1/leads/{first}/conversion", headers=member.headers).json()["matches"] == []
        done = client.post(f"/api/v1/leads/{first}/conversion", json={"create_deal": True, "deal_name": "導入案件"}, headers=member.headers)
        assert done.status_code == 201, done.text
        preview = client.get(f"/api/v1/leads/{second}/conversion", headers=member.headers).json()
        assert [m["account_id"] for m in preview["matches"]] == [done.json()["account_id"]] and preview["matches"][0]["reason"] == "company_name"
        linked = client.post(f"/api/v1/leads/{second}/conversion", json={"account_id": preview["matches"][0]["account_id"]}, headers=member.headers).json()
        assert linked["account_id"] == done.json()["account_id"]
        session.rollback()  # a fresh snapshot; and no transaction (SQLite lock) is left open
        assert session.scalar(select(func.count()).select_from(Account)) == 1
        assert session.scalar(select(func.count()).select_from(Contact).where(Contact.account_id == linked["account_id"])) == 2
        assert session.get(Lead, first).status == "converted"
        session.rollback()
        twice = client.post(f"/api/v1/leads/{first}/conversion", json={}, headers=member.headers)
        assert twice.status_code == 409 and twice.json()["existing"]["account_id"] == done.json()["account_id"]

    def test_matching_by_a_custom_company_key_as_configured(self, client, admin, member) -> None:  # type: ignore[no-untyped-def]
        """Two spellings of one company that share a corporate number match by that key; with
        name and domain matching switched off, a lead of the same name no longer matches."""
        assert client.post("/api/v1/custom-fields", json={"key": "corp_no", "label": "法人番号", "type": "text"}, headers=admin.headers).status_code == 201
        assert client.put("/api/v1/conversion/settings", json={"company_key_field": "corp_no"}, headers=member.headers).status_code == 403
        assert client.put("/api/v1/conversion/settings", json={"company_key_field": "nope"}, headers=admin.headers).status_code == 400
        configured = client.put("/api/v1/conversion/settings", json={"match_company_name": False, "match_email_domain": False, "company_key_field": "corp_no"}, headers=admin.headers)
        assert configured.json() == {"match_company_name": False, "match_email_domain": False, "company_key_field": "corp_no"}
        assert client.get("/api/v1/conversion/settings", headers=member.headers).json() == configured.json()
        first = lead(client, member, last_name="山田", company="山田ホールディングス株式会社", email="y@yamada-hd.example", custom={"corp_no": "1234567890123"})
        other_name = lead(client, member, last_name="佐藤", company="ヤマダHD", email="s@yamada.example", custom={"corp_no": " 1234567890123 "})
        same_name = lead(client, member, last_name="鈴木", company="山田ホールディングス株式会社", email="x@yamada-hd.example", custom={"corp_no": "9999999999999"})
        account = client.post(f"/api/v1/leads/{first}/conversion", json={}, headers=member.headers).json()["account_id"]
        preview = client.get(f"/api/v1/leads/{other_name}/conversion", headers=member.headers).json()
        assert preview["company_key"] == "1234567890123"
        assert [(m["account_id"], m["reason"]) for m in preview["matches"]] == [(account, "company_key")]
        assert client.get(f"/api/v1/leads/{same_name}/conversion", headers=member.headers).json()["matches"] == []
        client.put("/api/v1/conversion/settings", json={"company_key_field": "corp_no"}, headers=admin.headers)  # names and domains again too
        assert [m["reason"] for m in client.get(f"/api/v1/leads/{same_name}/conversion", headers=member.headers).json()["matches"]] == ["company_name"]

    def test_a_failure_midway_leaves_nothing(self, client, member, session) -> None:  # type: ignore[no-untyped-def]
        lead_id = lead(client, member, last_name="Kim", email="kim@quantum.example", company="Quantum Inc.")
        bad = client.post(f"/api/v1/leads/{lead_id}/conversion", json={"account_id": 424242}, headers=member.headers)
        assert bad.status_code == 404
        session.rollback()  # a fresh snapshot; and no transaction (SQLite lock) is left open
        assert session.scalar(select(func.count()).select_from(Account)) == 0 and session.scalar(select(func.count()).select_from(Contact)) == 0
        assert session.get(Lead, lead_id).status == "open"


CSV = "会社名,姓,名,メールアドレス,電話番号\n株式会社山田商事,山田,太郎,yamada@yamada-shoji.co.jp,03-1234-5678\n㈱テスト,佐藤,花子,not-an-email,\n合同会社ミライ,高橋,美咲,misaki@mirai.jp,\n合同会社ミライ,高橋,美咲,MISAKI@mirai.jp,070-1111-2222\n"


class TestCsvImport:
    def test_shift_jis_with_duplicates_all_or_nothing_then_row_by_row(self, client, member, session) -> None:  # type: ignore[no-untyped-def]
        data = CSV.encode("cp932")
        strict = import_csv(client, member, data)
        assert (strict["status"], strict["committed"], strict["counts"]["errors"]) == ("done", False, 1) and "3,email" in strict["errors_text"]
        assert strict["progress"] == {"rows_done": 0, "rows_total": 4}
        session.rollback()  # a fresh snapshot; and no transaction (SQLite lock) is left open
        assert session.scalar(select(func.count()).select_from(Lead)) == 0
        session.rollback()
        loose = import_csv(client, member, data, {"mode": "row_by_row", "on_duplicate": "merge"})
        assert (loose["counts"], loose["committed"]) == ({"created": 2, "updated": 1, "skipped": 0, "errors": 1}, True)
        assert loose["progress"] == {"rows_done": 4, "rows_total": 4} and loose["finished_at"] >= loose["started_at"] >= loose["created_at"]
        session.rollback()  # a fresh snapshot; and no transaction (SQLite lock) is left open
        misaki = session.scalar(select(Lead).where(Lead.email_norm == "misaki@mirai.jp"))
        assert misaki.mobile is None and misaki.phone == "070-1111-2222" and misaki.source == "csv_import" and misaki.company == "合同会社ミライ"
        session.rollback()
        again = import_csv(client, member, data, {"mode": "row_by_row"})
        assert (again["counts"]["created"], again["counts"]["skipped"]) == (0, 3)

    def test_utf8_bom_and_an_explicit_mapping(self, client, member) -> None:  # type: ignore[no-untyped-def]
        data = "\ufeffOrganisation,Surname,Mail\nAcme Inc.,Smith,john@acme.example\n".encode()
        result = import_csv(client, member, data, {"mapping": ["Organisation=company", "Surname=last_name", "Mail=email"]})
        assert result["counts"]["created"] == 1
        assert client.get("/api/v1/leads", params={"email": "john@acme.example"}, headers=member.headers).json()["items"][0]["company"] == "Acme Inc."
        png = import_csv(client, member, b"\x89PNG\x00\xff\xfe")
        assert png["status"] == "failed" and png["error"]["type"] == "no_mapping" and png["counts"]["created"] == 0
        bad = import_csv(client, member, b"email\n\x85\x40\xa0@example.com\n")  # neither UTF-8 nor CP932
        assert bad["status"] == "failed" and bad["error"]["type"] == "bad_encoding" and "UTF-8" in bad["error"]["detail"]

    def test_custom_columns_are_typed_and_required(self, client, admin, member) -> None:  # type: ignore[no-untyped-def]
        client.post("/api/v1/custom-fields", json={"key": "employees", "type": "number", "required": True}, headers=admin.headers)
        data = "Company,Mail,社員数\nA社,a@a.example,120\nB社,b@b.example,\nC社,c@c.example,many\n".encode()
        result = import_csv(client, member, data, {"mapping": ["社員数=custom:employees"], "mode": "row_by_row"})
        assert (result["counts"]["created"], result["counts"]["errors"]) == (1, 2)
        assert "3,employees is required" in result["errors_text"] and "4,employees: not a number" in result["errors_text"]
        lead_id = client.get("/api/v1/leads", params={"email": "a@a.example"}, headers=member.headers).json()["items"][0]["id"]
        assert client.get(f"/api/v1/leads/{lead_id}/custom", headers=member.headers).json() == {"employees": 120.0}

    def test_cli_progress_bar_and_error_csv(self, tmp_path: Path) -> None:
        import os
        import subprocess
        import sys

        env = {**os.environ, "MAILWIDGET_DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
        run = lambda *a: subprocess.run([sys.executable, "-m", "widget_api.cli", *a], capture_output=True, text=True, env=env, timeout=120)  # noqa: E731
        assert run("org-create", "Acme", "--admin", "boss@acme.example").returncode == 0
        source = tmp_path / "leads.csv"
        source.write_bytes(CSV.encode("cp932"))
        result = run("import-leads", str(source), "--user", "boss@acme.example", "--org", "1", "--row-by-row", "--errors", str(tmp_path / "errors.csv"))
        assert result.returncode == 0, result.stderr
        assert "[" in result.stderr and "4/4" in result.stderr and "created 2" in result.stdout
        assert (tmp_path / "errors.csv").read_text().startswith("line,reason\n3,")
        who = ("--user", "boss@acme.example", "--org", "1")
        created = run("campaign-create", "秋のセミナー", *who)
        assert created.returncode == 0 and '"name": "秋のセミナー"' in created.stdout
        added = run("campaign-add", "1", "1,2,99", "--status", "反応あり", *who)
        assert added.stdout.split("\n")[:3] == ["1\tadded", "2\tadded", "99\tnot_found"]
        assert "反応あり\t2 (responded)" in run("campaign-show", "1", *who).stdout
        assert "-> account 1, contact 1, deal 1" in run("convert-lead", "1", "--deal", "導入", *who).stdout
        twice = run("convert-lead", "1", *who)
        assert twice.returncode == 2 and "already converted" in twice.stderr
        preview = json.loads(run("convert-lead", "2", "--preview", *who).stdout)
        assert preview["lead_id"] == 2 and preview["company"] == "合同会社ミライ" and preview["matches"] == [] and preview["converted"] is None
        assert run("conversion-settings", "--match", "company_name,colour", *who).returncode == 2
        assert run("conversion-settings", "--match", "company_key", *who).returncode == 2  # which field holds the key?
        assert run("conversion-settings", "--match", "email_domain", *who).stdout.strip() == '{"match_company_name": false, "match_email_domain": true, "company_key_field": null}'

    def test_an_import_killed_halfway_leaves_nothing_and_a_rerun_imports_each_row_once(self, runtime, member, database_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
        """The importing process dies (SIGKILL: its database connection drops) after two
        batches went in: none of them stays, and running the same file again creates each
        lead exactly once."""
        import os
        import signal
        import subprocess
        import sys

        rows = 6000
        source = tmp_path / "big.csv"
        source.write_text("会社名,姓,メールアドレス\n" + "".join(f"株式会社テスト{i % 50},姓{i},p{i % 5800}@import{i % 5800 % 90}.example\n" for i in range(rows)), encoding="utf-8")
        env = {**os.environ, "MAILWIDGET_DATA_DIR": str(tmp_path), "DATABASE_URL": database_url}
        command = [sys.executable, "-m", "widget_api.cli", "import-leads", str(source), "--user", member.email, "--org", str(member.organisation_id), "--row-by-row"]
        process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        assert process.stderr is not None
        seen = b""
        while b" 2500/" not in seen:  # the progress bar: batches of 1,000 rows are in the database
            chunk = process.stderr.read1(4096)
            assert chunk, f"the import ended early: {seen[-500:]!r}"
            seen += chunk
        os.kill(process.pid, signal.SIGKILL)
        process.wait(30)

        def count() -> int:
            with runtime.sessions() as s:  # closed at once: on SQLite an open one holds the write lock
                return int(s.execute(select(func.count()).select_from(Lead)).scalar_one())

        assert count() == 0
        again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert again.returncode == 0, again.stderr[-2000:]
        assert "created 5800, merged 0, skipped 200 duplicates" in again.stdout
        assert count() == 5800


class TestCustomFieldsAndViews:
    def test_fields_types_required_unique_and_a_company_view(self, client, admin, member) -> None:  # type: ignore[no-untyped-def]
        h = admin.headers
        assert client.post("/api/v1/custom-fields", json={"key": "company_key", "type": "text"}, headers=member.headers).status_code == 403
        for body in (
            {"key": "company_key", "label": "会社キー", "type": "text"},
            {"key": "employees", "type": "number"},
            {"key": "met_on", "type": "date"},
            {"key": "tier", "type": "picklist", "options": ["A", "B"]},
            {"key": "customer_no", "type": "text", "unique": True},
        ):
            assert client.post("/api/v1/custom-fields", json=body, headers=h).status_code == 201
        a = lead(client, member, last_name="山田", company="山田商事", email="a@yamada.example")
        b = lead(client, member, last_name="佐藤", company="山田商事", email="b@yamada.example")
        c = lead(client, member, last_name="Smith", company="Acme", email="c@acme.example")
        put = lambda lid, body: client.put(f"/api/v1/leads/{lid}/custom", json=body, headers=member.headers)  # noqa: E731
        assert put(a, {"company_key": "YAMADA", "employees": "120", "met_on": "2026-11-01", "tier": "A", "customer_no": "C-1"}).status_code == 200
        assert put(b, {"company_key": "YAMADA", "employees": 15, "tier": "B"}).status_code == 200
        assert put(c, {"company_key": "ACME", "employees": 3000}).status_code == 200
        assert put(c, {"employees": "many"}).status_code == 400 and put(c, {"tier": "Z"}).status_code == 400 and put(c, {"met_on": "yesterday"}).status_code == 400
        duplicate = put(b, {"customer_no": "c-1"})
        assert duplicate.status_code == 409 and duplicate.json()["existing_id"] == a
        view = client.post(
            "/api/v1/views",
            json={"name": "All of 山田", "filters": {"op": "and", "conditions": [{"field": "custom:company_key", "op": "equals", "value": "YAMADA"}]}, "sort": [{"field": "last_name"}], "shared": True},
            headers=member.headers,
        ).json()
        page = client.get(f"/api/v1/views/{view['id']}/leads", headers=admin.headers).json()  # shared: the admin sees it too
        assert [i["last_name"] for i in page["items"]] == ["佐藤", "山田"] and page["total"] == 2
        mixed = client.post(
            "/api/v1/views",
            json={"name": "big or A", "filters": {"op": "or", "conditions": [{"field": "custom:employees", "op": "between", "value": [1000, 5000]}, {"op": "and", "conditions": [{"field": "custom:tier", "op": "in", "value": ["A"]}, {"field": "company", "op": "starts_with", "value": "山田"}]}]}},
            headers=member.headers,
        ).json()
        assert {i["id"] for i in client.get(f"/api/v1/views/{mixed['id']}/leads", headers=member.headers).json()["items"]} == {a, c}
        empty = client.post("/api/v1/views", json={"name": "no date", "filters": {"field": "custom:met_on", "op": "is_empty"}}, headers=member.headers).json()
        assert {i["id"] for i in client.get(f"/api/v1/views/{empty['id']}/leads", headers=member.headers).json()["items"]} == {b, c}
        private = client.post("/api/v1/views", json={"name": "mine", "filters": {"field": "company", "op": "contains", "value": "cm"}}, headers=member.headers).json()
        assert client.get(f"/api/v1/views/{private['id']}/leads", headers=admin.headers).status_code == 404
        assert client.post("/api/v1/views", json={"name": "bad", "filters": {"field": "salary", "op": "equals", "value": "1"}}, headers=member.headers).status_code == 422
        assert client.post("/api/v1/views", json={"name": "bad", "filters": {"field": "custom:salary", "op": "equals", "value": 1}}, headers=member.headers).status_code == 400


WRONG_FILTERS = [
    {"field": 123, "op": "equals", "value": "x"},
    {"op": "and", "conditions": "abc"},
    {"field": "company", "op": "equals", "value": {"a": 1}},
    {"field": "company", "op": "equals", "value": 1e30},
    {"field": "company", "op": "between", "value": [1, 2]},
    {"field": "custom:employees", "op": "in", "value": [{"x": 1}]},
    {"field": "custom:employees", "op": "equals", "value": True},
    {"field": "company", "op": "like", "value": "x"},
    {"field": "company", "op": "in", "value": []},
    {"field": "company", "op": "between", "value": ["a"]},
    {"op": "and", "conditions": []},
    {"op": "xor", "conditions": [{"field": "company", "op": "is_empty"}]},
    {"field": "company", "op": "equals", "value": "x", "extra": 1},
    {"op": "and", "conditions": [{"op": "and", "conditions": [{"op": "and", "conditions": [{"op": "and", "conditions": [{"op": "and", "conditions": [{"op": "and", "conditions": [{"field": "company", "op": "is_empty"}]}]}]}]}]}]},
    [],
    "company = x",
]


class TestViewFilters:
    @pytest.mark.parametrize("filters", WRONG_FILTERS, ids=range(len(WRONG_FILTERS)))
    def test_a_filter_of_the_wrong_shape_or_type_is_a_422(self, client, member, filters) -> None:  # type: ignore[no-untyped-def]
        response = client.post("/api/v1/views", json={"name": "bad", "filters": filters}, headers=member.headers)
        assert response.status_code == 422, response.text
        assert response.json()["type"] == "validation_error"

    def test_values_must_suit_the_custom_field_type(self, client, admin, member) -> None:  # type: ignore[no-untyped-def]
        for key, kind in (("employees", "number"), ("met_on", "date"), ("tier", "text")):
            client.post("/api/v1/custom-fields", json={"key": key, "type": kind}, headers=admin.headers)
        for node in (
            {"field": "custom:employees", "op": "contains", "value": "1"},
            {"field": "custom:employees", "op": "equals", "value": "many"},
            {"field": "custom:met_on", "op": "between", "value": [1, 2]},
            {"field": "custom:met_on", "op": "equals", "value": "yesterday"},
            {"field": "custom:tier", "op": "equals", "value": 5},
        ):
            response = client.post("/api/v1/views", json={"name": "bad", "filters": node}, headers=member.headers)
            assert response.status_code == 400, (node, response.text)
        good = client.post("/api/v1/views", json={"name": "ok", "filters": {"field": "custom:employees", "op": "between", "value": [1, 1e30]}, "sort": [{"field": "company", "desc": True}]}, headers=member.headers)
        assert good.status_code == 201 and good.json()["sort"] == [{"field": "company", "desc": True}]
        assert client.get(f"/api/v1/views/{good.json()['id']}/leads", headers=member.headers).status_code == 200
        assert client.post("/api/v1/views", json={"name": "all", "filters": {}}, headers=member.headers).status_code == 201

    def test_a_stored_view_that_no_longer_reads_is_a_clear_error(self, client, member, runtime) -> None:  # type: ignore[no-untyped-def]
        from crm.store.custom_fields import SavedView

        view = client.post("/api/v1/views", json={"name": "v", "filters": {"field": "company", "op": "is_empty"}}, headers=member.headers).json()
        with runtime.sessions.begin() as s:
            s.get(SavedView, view["id"]).filters = {"field": "company", "op": "equals", "value": {"nested": 1}}  # as saved before the language was typed
        response = client.get(f"/api/v1/views/{view['id']}/leads", headers=member.headers)
        assert response.status_code == 400 and response.json()["type"] == "invalid_view"
        assert client.get("/api/v1/views", headers=member.headers).status_code == 200


def test_a_required_custom_field_refuses_a_lead_without_it(client, admin, member, session) -> None:  # type: ignore[no-untyped-def]
    client.post("/api/v1/custom-fields", json={"key": "source_event", "type": "text", "required": True}, headers=admin.headers)
    refused = client.post("/api/v1/leads", json={"email": "r@customer.example"}, headers=member.headers)
    assert refused.status_code == 400 and refused.json()["type"] == "required_field"
    assert session.scalar(select(func.count()).select_from(Lead)) == 0
    session.rollback()
    ok = client.post("/api/v1/leads", json={"email": "r@customer.example", "custom": {"source_event": "展示会"}}, headers=member.headers)
    assert ok.status_code == 201
    assert client.get(f"/api/v1/leads/{ok.json()['lead']['id']}/custom", headers=member.headers).json() == {"source_event": "展示会"}


def test_add_from_the_leads_page(client, member) -> None:  # type: ignore[no-untyped-def]
    campaign = client.post("/api/v1/campaigns", json={"name": "DM"}, headers=member.headers).json()
    lead_id = lead(client, member, email="one@customer.example")
    body = {"campaign_id": campaign["id"], "status": "反応あり"}
    assert client.post(f"/api/v1/leads/{lead_id}/campaigns", json=body, headers=member.headers).json() == {"outcome": "added"}
    assert client.post(f"/api/v1/leads/{lead_id}/campaigns", json=body, headers=member.headers).json() == {"outcome": "already_member"}
