"""Saving leads: created, duplicate refused with the existing record, empty fields filled,
one capture per message (also under 20 concurrent saves), validation errors per field."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from crm.store.models import Lead, LeadUniqueKey, MessageCapture

DRAFT = {"first_name": "Taro", "last_name": "Yamada", "email": "Taro.Yamada@Example.co.jp", "company": "Example 株式会社"}
MESSAGE = {"folder": "INBOX", "uid": 7, "uidvalidity": 1, "message_id": "<abc@example.co.jp>"}


def count(session, model) -> int:  # type: ignore[no-untyped-def]
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model)) or 0


class TestSave:
    def test_save_creates_the_lead(self, client: TestClient, member, session) -> None:  # type: ignore[no-untyped-def]
        response = client.post("/api/v1/leads", json={**DRAFT, "message": MESSAGE}, headers=member.headers)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["outcome"] == "created"
        assert body["lead"]["email"] == "Taro.Yamada@example.co.jp"  # domain normalised by email-validator
        assert body["lead"]["source"] == "widget"
        lead = session.get(Lead, body["lead"]["id"])
        assert lead.email_norm == "taro.yamada@example.co.jp" and lead.organisation_id == member.organisation_id

    def test_the_same_message_again_is_already_captured(self, client: TestClient, member, session) -> None:  # type: ignore[no-untyped-def]
        first = client.post("/api/v1/leads", json={**DRAFT, "message": MESSAGE}, headers=member.headers)
        again = client.post("/api/v1/leads", json={**DRAFT, "email": "other@example.co.jp", "message": MESSAGE}, headers=member.headers)
        assert again.status_code == 200
        assert again.json()["outcome"] == "already_captured"
        assert again.json()["lead"]["id"] == first.json()["lead"]["id"]
        assert count(session, Lead) == 1

    def test_a_duplicate_email_is_409_with_the_existing_record_and_nothing_written(self, client: TestClient, member, session) -> None:  # type: ignore[no-untyped-def]
        first = client.post("/api/v1/leads", json=DRAFT, headers=member.headers).json()["lead"]
        response = client.post("/api/v1/leads", json={**DRAFT, "email": " taro.yamada@EXAMPLE.co.jp", "message": MESSAGE}, headers=member.headers)
        assert response.status_code == 409
        body = response.json()
        assert body["type"] == "duplicate" and body["field"] == "email"
        assert body["existing_id"] == first["id"] and body["existing"]["company"] == "Example 株式会社"
        assert count(session, Lead) == 1 and count(session, MessageCapture) == 0 and count(session, LeadUniqueKey) == 1

    def test_update_existing_fills_only_empty_fields(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        first = client.post("/api/v1/leads", json={"email": "taro.yamada@example.co.jp", "company": "Old name KK"}, headers=member.headers).json()["lead"]
        response = client.post(
            "/api/v1/leads",
            json={**DRAFT, "title": "部長", "message": MESSAGE, "update_existing_id": first["id"]},
            headers=member.headers,
        )
        assert response.status_code == 200
        body = response.json()
        assert body["outcome"] == "updated"
        assert set(body["filled"]) == {"first_name", "last_name", "title"}
        assert body["lead"]["company"] == "Old name KK"  # never overwritten
        # and the message now counts as captured by that lead
        again = client.post("/api/v1/leads", json={**DRAFT, "message": MESSAGE}, headers=member.headers).json()
        assert again["outcome"] == "already_captured" and again["lead"]["id"] == first["id"]

    def test_a_unique_phone_setting_is_enforced(self, client: TestClient, admin, member) -> None:  # type: ignore[no-untyped-def]
        assert client.put("/api/v1/settings/unique-fields/phone", json={"unique": True}, headers=member.headers).status_code == 403
        assert client.put("/api/v1/settings/unique-fields/phone", json={"unique": True}, headers=admin.headers).json()["phone"] is True
        assert client.post("/api/v1/leads", json={"phone": "03-1234-5678"}, headers=member.headers).status_code == 201
        clash = client.post("/api/v1/leads", json={"phone": "03 1234 5678"}, headers=member.headers)
        assert clash.status_code == 409 and clash.json()["field"] == "phone"

    def test_editing_a_lead_into_a_duplicate_is_refused(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        client.post("/api/v1/leads", json={"email": "a@customer.example"}, headers=member.headers)
        b = client.post("/api/v1/leads", json={"email": "b@customer.example"}, headers=member.headers).json()["lead"]
        response = client.patch(f"/api/v1/leads/{b['id']}", json={"email": "A@customer.example"}, headers=member.headers)
        assert response.status_code == 409
        assert client.get(f"/api/v1/leads/{b['id']}", headers=member.headers).json()["email"] == "b@customer.example"
        assert client.patch(f"/api/v1/leads/{b['id']}", json={"email": "c@customer.example"}, headers=member.headers).status_code == 200
        # the old value is free again
        assert client.post("/api/v1/leads", json={"email": "b@customer.example"}, headers=member.headers).status_code == 201


class TestValidation:
    def test_bad_fields_give_422_per_field_and_write_nothing(self, client: TestClient, member, session) -> None:  # type: ignore[no-untyped-def]
        response = client.post("/api/v1/leads", json={"email": "not-an-email", "zip_code": "x" * 50, "first_name": "A\r\nBcc: x"}, headers=member.headers)
        assert response.status_code == 422
        body = response.json()
        assert body["type"] == "validation_error" and body["detail"]
        assert {e["field"] for e in body["errors"]} == {"email", "zip_code", "first_name"}
        assert count(session, Lead) == 0

    def test_unknown_fields_and_bad_json_are_422(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        assert client.post("/api/v1/leads", json={"salary": 1}, headers=member.headers).status_code == 422
        bad = client.post("/api/v1/leads", content=b"{not json", headers={**member.headers, "Content-Type": "application/json"})
        assert bad.status_code == 422 and bad.json()["type"] == "validation_error"

    def test_script_in_a_value_is_stored_as_text(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        response = client.post("/api/v1/leads", json={"last_name": "<script>alert(1)</script>"}, headers=member.headers)
        assert response.status_code == 201
        assert response.json()["lead"]["last_name"] == "<script>alert(1)</script>"
        assert response.headers["content-type"].startswith("application/json")


class TestList:
    def test_list_is_paged_and_filtered_by_email(self, client: TestClient, member) -> None:  # type: ignore[no-untyped-def]
        for i in range(5):
            client.post("/api/v1/leads", json={"email": f"p{i}@customer.example"}, headers=member.headers)
        page = client.get("/api/v1/leads", params={"limit": 2, "offset": 1}, headers=member.headers).json()
        assert page["total"] == 5 and len(page["items"]) == 2
        found = client.get("/api/v1/leads", params={"email": "P3@Customer.example"}, headers=member.headers).json()
        assert [i["email"] for i in found["items"]] == ["p3@customer.example"]


class TestStatus:
    def test_a_stage_change_is_on_the_timeline_once_and_moves_with_the_conversion(self, client: TestClient, member, admin) -> None:  # type: ignore[no-untyped-def]
        lead_id = client.post("/api/v1/leads", json={"last_name": "山田", "email": "yamada@customer.example"}, headers=member.headers).json()["lead"]["id"]
        path = f"/api/v1/leads/{lead_id}/status"

        def statuses(record: str = f"leads/{lead_id}") -> list[str]:
            entries = client.get(f"/api/v1/{record}/timeline", headers=member.headers).json()["entries"]
            return [e["summary"] for e in entries if e["kind"] == "status"]

        moved = client.put(path, json={"status": "contacted"}, headers=member.headers)
        assert moved.status_code == 200 and moved.json()["status"] == "contacted"
        assert client.put(path, json={"status": "contacted"}, headers=member.headers).status_code == 200  # the stage it has: nothing new
        assert client.put(path, json={"status": "qualified"}, headers=member.headers).status_code == 200
        assert statuses() == ["contacted → qualified", "open → contacted"]
        for bad in ({"status": "converted"}, {"status": "won"}, {"status": 1}, {"status": "contacted", "x": 1}, {}):
            refused = client.put(path, json=bad, headers=member.headers)
            assert refused.status_code == 422 and refused.json()["type"] == "validation_error", bad
        assert client.get(f"/api/v1/leads/{lead_id}", headers=member.headers).json()["status"] == "qualified"
        assert client.post("/api/v1/leads", json={"email": "other@customer.example"}, headers=member.headers).status_code == 201  # open: not in the view
        view = client.post("/api/v1/views", json={"name": "見込みあり", "filters": {"op": "and", "conditions": [{"field": "status", "op": "equals", "value": "qualified"}, {"field": "source", "op": "equals", "value": "api"}]}}, headers=member.headers)
        assert view.status_code == 201, view.text
        assert [r["id"] for r in client.get(f"/api/v1/views/{view.json()['id']}/leads", headers=member.headers).json()["items"]] == [lead_id]  # not the other (open) one
        contact_id = client.post(f"/api/v1/leads/{lead_id}/conversion", json={}, headers=member.headers).json()["contact_id"]
        after = client.put(path, json={"status": "open"}, headers=member.headers)
        assert after.status_code == 409 and after.json()["type"] == "already_converted"
        assert statuses(f"contacts/{contact_id}")[1:] == ["contacted → qualified", "open → contacted"]

    def test_another_organisations_lead_is_not_found(self, client: TestClient, runtime, member) -> None:  # type: ignore[no-untyped-def]
        from tests.factories import make_org, make_user

        lead_id = client.post("/api/v1/leads", json={"email": "x@customer.example"}, headers=member.headers).json()["lead"]["id"]
        stranger = make_user(runtime, make_org(runtime, "Other"), "s@other.example")
        assert client.put(f"/api/v1/leads/{lead_id}/status", json={"status": "contacted"}, headers=stranger.headers).status_code == 404
        assert client.get(f"/api/v1/leads/{lead_id}", headers=member.headers).json()["status"] == "open"


class TestConcurrency:
    def test_twenty_concurrent_saves_of_one_draft_make_one_lead(self, live_server: str, member, session) -> None:  # type: ignore[no-untyped-def]
        def save(_: int) -> tuple[int, str, int]:
            response = httpx.post(f"{live_server}/api/v1/leads", json={**DRAFT, "message": MESSAGE}, headers=member.headers, timeout=60)
            body = response.json()
            return response.status_code, body.get("outcome", body.get("type")), body.get("lead", {}).get("id", body.get("existing_id"))

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(save, range(20)))
        statuses = sorted(r[0] for r in results)
        assert statuses.count(201) == 1, results
        assert all(s in (200, 201) for s in statuses), results
        assert len({r[2] for r in results}) == 1
        assert count(session, Lead) == 1 and count(session, MessageCapture) == 1

    def test_twenty_concurrent_saves_from_different_messages_same_email_make_one_lead(self, live_server: str, member, session) -> None:  # type: ignore[no-untyped-def]
        def save(i: int) -> int:
            message = {**MESSAGE, "message_id": f"<m{i}@example.co.jp>", "uid": i + 1}
            return httpx.post(f"{live_server}/api/v1/leads", json={**DRAFT, "message": message}, headers=member.headers, timeout=60).status_code

        with ThreadPoolExecutor(20) as pool:
            statuses = sorted(pool.map(save, range(20)))
        assert statuses == [201] + [409] * 19
        assert count(session, Lead) == 1 and count(session, LeadUniqueKey) == 1


class TestExistingRecords:
    """The draft's `existing` list: the organisation's leads and contacts with the address
    (one statement since issue 18), leads first, another organisation's never."""

    def test_leads_then_contacts_of_the_address_in_the_organisation_only(self, runtime, org, member, session) -> None:  # type: ignore[no-untyped-def]
        from crm.domain.principal import Principal
        from crm.services import leads
        from crm.store.models import Contact
        from tests.factories import make_org

        other = make_org(runtime, "Other KK")
        lead = Lead(organisation_id=org.id, first_name="Taro", email="Taro@Example.jp", email_norm="taro@example.jp", company="Example KK", status="open")
        session.add_all(
            [
                lead,
                Contact(organisation_id=org.id, first_name="T.", last_name="Yamada", email="taro@example.jp", email_norm="taro@example.jp"),
                Contact(organisation_id=other.id, first_name="Not", email="taro@example.jp", email_norm="taro@example.jp"),
                Lead(organisation_id=other.id, email="taro@example.jp", email_norm="taro@example.jp"),
            ]
        )
        session.commit()
        principal = Principal(member.id, org.id, member.email)
        with runtime.read_sessions() as read:
            found = leads.existing_records(read, principal, " TARO@example.jp")
            assert leads.existing_records(read, principal, "nobody@example.jp") == []
        assert [r["kind"] for r in found] == ["lead", "contact"]
        assert found[0] == leads.lead_summary(lead)
        assert found[1] == {"kind": "contact", "id": found[1]["id"], "first_name": "T.", "last_name": "Yamada", "email": "taro@example.jp", "account_id": None}
