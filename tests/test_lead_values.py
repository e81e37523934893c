"""crm.domain.leads: one check of what a lead value may be, passed by every way a lead is
written (API, widget save and merge, update, CSV import), and reads that never break on a
stored row; crm.domain.csv_export: no CSV cell the product writes opens as a formula."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import insert

from crm.domain.csv_export import csv_text, safe_cell
from crm.domain.errors import InvalidInput
from crm.domain.leads import checked_values
from crm.domain.principal import Principal
from crm.services import csv_import, custom_fields, leads
from crm.store.base import utcnow
from crm.store.models import Lead

BAD_SINGLE_LINE = ["株式会社\x00山田", "line\nbreak", "carriage\rreturn", "esc\x1b[31m", "sep\u2028arator", "lone \ud800 surrogate", "x" * 256]


def principal_of(user) -> Principal:  # type: ignore[no-untyped-def]
    return Principal(user.id, user.organisation_id, user.email, "member")


class TestTheCheck:
    @pytest.mark.parametrize("value", BAD_SINGLE_LINE)
    def test_a_single_line_field_refuses(self, value: str) -> None:
        with pytest.raises(InvalidInput) as caught:
            checked_values({"company": value})
        assert caught.value.code == "invalid_field" and "company" in caught.value.detail

    def test_the_description_keeps_lines_but_not_nul(self) -> None:
        assert checked_values({"description": " first\r\nsecond\tend "})["description"] == "first\r\nsecond\tend"
        with pytest.raises(InvalidInput):
            checked_values({"description": "a\x00b"})

    def test_blank_is_none_and_email_is_normalised(self) -> None:
        values = checked_values({"company": "  ", "email": "Buyer@Customer.CO.JP"})
        assert values["company"] is None and values["email"] == "Buyer@customer.co.jp"
        with pytest.raises(InvalidInput):
            checked_values({"email": "not an address"})


class TestEveryWriter:
    @pytest.mark.parametrize("value", ["a\x00b", "a\nb", "x" * 300])
    def test_api_create_and_update_answer_422(self, client, member, value: str) -> None:  # type: ignore[no-untyped-def]
        created = client.post("/api/v1/leads", json={"company": value, "last_name": "山田"}, headers=member.headers)
        assert created.status_code == 422 and created.json()["errors"][0]["field"] == "company"
        lead_id = client.post("/api/v1/leads", json={"last_name": "山田"}, headers=member.headers).json()["lead"]["id"]
        assert client.patch(f"/api/v1/leads/{lead_id}", json={"city": value}, headers=member.headers).status_code == 422
        merged = client.post("/api/v1/leads", json={"title": value, "update_existing_id": lead_id}, headers=member.headers)
        assert merged.status_code == 422

    def test_the_services_refuse_whoever_calls_them(self, runtime, member) -> None:  # type: ignore[no-untyped-def]
        p = principal_of(member)
        with runtime.sessions() as s:
            with pytest.raises(InvalidInput):
                leads.create_lead(s, p, {"company": "a\nb"})
            lead = leads.create_lead(s, p, {"last_name": "佐藤"})
            with pytest.raises(InvalidInput):
                leads.update_lead(s, p, lead.id, {"city": "a\x00b"})
            with pytest.raises(InvalidInput):
                leads.fill_empty_fields(s, p, lead, {"title": "two\nlines"})
            with pytest.raises(InvalidInput):
                leads.save_from_draft(s, p, {"company": "\x1b]8;;evil\x07"}, message_key="mid:<x@y>")
            assert lead.city is None and lead.title is None

    def test_csv_cells_with_nul_or_a_newline_are_rejected_rows(self, runtime, member, client) -> None:  # type: ignore[no-untyped-def]
        text = '会社名,姓,メールアドレス\n"株式会社\x00山田",山田,a@a.example\n"改行\nあり",佐藤,b@b.example\n正常,高橋,c@c.example\n'
        with runtime.sessions.begin() as s:
            report = csv_import.import_leads(s, principal_of(member), csv_import.rows(text), all_or_nothing=False)
        assert (report.created, len(report.rejected)) == (1, 2)
        assert [line for line, _reason in report.rejected] == [2, 4] and all("single line" in reason for _line, reason in report.rejected)
        assert [i["company"] for i in client.get("/api/v1/leads", headers=member.headers).json()["items"]] == ["正常"]

    def test_a_merge_from_csv_passes_the_same_check(self, runtime, member) -> None:  # type: ignore[no-untyped-def]
        text = "会社名,メールアドレス,役職\n山田商事,a@a.example,\n山田商事,a@a.example,\"部長\n課長\"\n"
        with runtime.sessions.begin() as s:
            report = csv_import.import_leads(s, principal_of(member), csv_import.rows(text), on_duplicate="merge", all_or_nothing=False)
        assert (report.created, report.merged, len(report.rejected)) == (1, 0, 1)

    def test_a_field_over_the_csv_module_limit_is_a_clear_error(self) -> None:
        text = "会社名,備考\n山田商事," + "x" * (csv.field_size_limit() + 1) + "\n"
        with pytest.raises(InvalidInput) as caught:
            list(csv_import.rows(text))
        assert caught.value.code == "bad_csv" and "line 2" in caught.value.detail


class TestReadsTolerateStoredRows:
    def test_a_row_stored_under_older_rules_still_reads(self, client, member, runtime) -> None:  # type: ignore[no-untyped-def]
        now = utcnow()
        with runtime.sessions.begin() as s:  # as the import wrote it before every writer was checked
            s.execute(
                insert(Lead),
                [{"organisation_id": member.organisation_id, "owner_id": member.id, "source": "csv_import", "status": "open", "company": "改行\nあり",
                  "description": "d" * 40000, "email": "not an address", "created_at": now, "updated_at": now}],
            )
        listed = client.get("/api/v1/leads", headers=member.headers)
        assert listed.status_code == 200 and listed.json()["items"][0]["company"] == "改行\nあり"
        lead_id = listed.json()["items"][0]["id"]
        assert client.get(f"/api/v1/leads/{lead_id}", headers=member.headers).status_code == 200
        view = client.post("/api/v1/views", json={"name": "all"}, headers=member.headers).json()
        assert client.get(f"/api/v1/views/{view['id']}/leads", headers=member.headers).status_code == 200


class TestCsvExport:
    @pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://evil\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx", "＝1+1"])
    def test_formula_cells_are_neutralised(self, cell: str) -> None:
        assert safe_cell(cell) == "'" + cell
        assert next(csv.reader(io.StringIO(csv_text([[cell]]))))[0] == "'" + cell

    def test_ordinary_cells_and_numbers_stay(self) -> None:
        assert csv_text([("line", "reason"), (3, "email: bad"), (-4, "株式会社")]) == "line,reason\r\n3,email: bad\r\n-4,株式会社\r\n"

    def test_the_error_csv_neutralises_an_admin_label(self, runtime, admin, member) -> None:  # type: ignore[no-untyped-def]
        with runtime.sessions.begin() as s:
            custom_fields.define(s, Principal(admin.id, admin.organisation_id, admin.email, "admin"), "source", '=HYPERLINK("http://evil.example","x")', "text", required=True)
        with runtime.sessions.begin() as s:
            report = csv_import.import_leads(s, principal_of(member), csv_import.rows("会社名\n山田商事\n"), all_or_nothing=False)
        rows = list(csv.reader(io.StringIO(report.errors_csv())))
        assert rows[1][0] == "2" and rows[1][1].startswith("'=HYPERLINK")


class TestNoNulIsStored:
    """PostgreSQL cannot hold a NUL in text; the store refuses it for every statement, on
    both databases, as the user's bad input."""

    def test_any_text_with_nul_is_a_400(self, client, admin, member) -> None:  # type: ignore[no-untyped-def]
        lead_id = client.post("/api/v1/leads", json={"last_name": "山田", "company": "山田商事"}, headers=member.headers).json()["lead"]["id"]
        client.post("/api/v1/custom-fields", json={"key": "note", "type": "text"}, headers=admin.headers)
        for method, url, body in [
            ("POST", "/api/v1/campaigns", {"name": "秋\x00"}),
            ("POST", "/api/v1/views", {"name": "v\x00"}),
            ("PUT", f"/api/v1/leads/{lead_id}/custom", {"note": "a\x00b"}),
            ("POST", f"/api/v1/leads/{lead_id}/conversion", {"create_deal": True, "deal_name": "案件\x00"}),
        ]:
            response = client.request(method, url, json=body, headers=member.headers)
            assert response.status_code == 400 and response.json()["type"] == "nul_character", (url, response.text)
        assert client.get("/api/v1/leads", params={"email": "a\x00@x.example"}, headers=member.headers).status_code == 400
        assert client.get(f"/api/v1/leads/{lead_id}/conversion", headers=member.headers).json()["converted"] is None

    def test_a_csv_custom_value_with_nul_is_a_rejected_row(self, runtime, admin, member) -> None:  # type: ignore[no-untyped-def]
        with runtime.sessions.begin() as s:
            custom_fields.define(s, Principal(admin.id, admin.organisation_id, admin.email, "admin"), "note", "Note", "text")
        with runtime.sessions.begin() as s:
            report = csv_import.import_leads(s, principal_of(member), csv_import.rows('会社名,備考欄\n山田商事,"a\x00b"\n高橋商事,ok\n', {"備考欄": "custom:note"}), all_or_nothing=False)
        assert report.created == 1 and report.rejected[0][0] == 2
