"""Web forms through the API and the public endpoints: the embeddable page (escaped labels,
signed token, honeypot), the submission (lead created with source web_form, an existing one
updated never duplicated, the same answer both ways), the auto-reply queued, and the abuse
limits (honeypot, too fast, bad signature, size, rate)."""

from __future__ import annotations

import re
import time

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from crm.domain import form_tokens
from crm.store.automation import WebForm
from crm.store.models import Lead
from tests.test_rules import configure_smtp, make_rule, make_template, outbox_rows

FIELDS = [
    {"field": "last_name", "label_ja": "姓", "label_en": "Last name", "required": True},
    {"field": "company", "label_ja": "会社名 <b>", "label_en": "Company", "required": False},
    {"field": "email", "label_ja": "メール", "label_en": "Email", "required": True},
]


def make_form(client: TestClient, admin, **extra) -> dict:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/forms", json={"name": "お問い合わせ", "fields": FIELDS, **extra}, headers=admin.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def token(runtime, session, key: str, age: float = 5) -> str:  # type: ignore[no-untyped-def]
    """A token as the form's page issues it, `age` seconds ago (instead of waiting)."""
    form = session.scalar(select(WebForm).where(WebForm.key == key))
    secret = runtime.secrets.decrypt(form.secret_encrypted)
    session.commit()
    return form_tokens.sign(secret, key, time.time() - age)


def post(client: TestClient, key: str, data: dict[str, str], **headers: str):  # type: ignore[no-untyped-def]
    return client.post(f"/f/{key}", data=data, headers=headers)


def leads(session) -> list[Lead]:  # type: ignore[no-untyped-def]
    session.expire_all()
    rows = list(session.scalars(select(Lead).order_by(Lead.id)))
    session.commit()
    return rows


class TestAdmin:
    def test_crud_is_admin_only_and_fields_are_checked(self, client: TestClient, admin, member) -> None:  # type: ignore[no-untyped-def]
        assert client.post("/api/v1/forms", json={"name": "x", "fields": FIELDS}, headers=member.headers).status_code == 403
        form = make_form(client, admin)
        assert form["path"] == f"/f/{form['key']}" and "secret" not in str(form).lower()
        unknown = client.post("/api/v1/forms", json={"name": "x", "fields": [*FIELDS, {"field": "custom:nope", "label_ja": "a", "label_en": "a"}]}, headers=admin.headers)
        assert unknown.status_code == 400 and unknown.json()["field"] == "custom:nope"
        no_email = client.post("/api/v1/forms", json={"name": "x", "fields": FIELDS[:2]}, headers=admin.headers)
        assert no_email.status_code == 400
        assert form["on_duplicate"] == "inherit"  # the organisation's setting
        changed = client.patch(f"/api/v1/forms/{form['id']}", json={"on_duplicate": "keep", "language": "en"}, headers=admin.headers).json()
        assert changed["on_duplicate"] == "keep" and changed["language"] == "en"
        assert client.patch(f"/api/v1/forms/{form['id']}", json={"on_duplicate": "merge"}, headers=admin.headers).status_code == 422
        assert [f["id"] for f in client.get("/api/v1/forms", headers=member.headers).json()] == [form["id"]]
        assert client.delete(f"/api/v1/forms/{form['id']}", headers=admin.headers).status_code == 204
        assert client.get(f"/f/{form['key']}").status_code == 404


class TestPage:
    def test_the_page_has_escaped_labels_a_valid_token_and_a_honeypot(self, client: TestClient, admin, runtime, session) -> None:  # type: ignore[no-untyped-def]
        form = make_form(client, admin)
        page = client.get(f"/f/{form['key']}")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "会社名 &lt;b&gt;" in page.text and "会社名 <b>" not in page.text
        assert 'name="hp_website"' in page.text and "frame-ancestors" not in page.headers["content-security-policy"]
        english = client.get(f"/f/{form['key']}?lang=en").text
        assert "Last name" in english and "Send" in english
        issued = re.search(r'name="_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        stored = session.scalar(select(WebForm).where(WebForm.key == form["key"]))
        secret = runtime.secrets.decrypt(stored.secret_encrypted)
        session.commit()
        form_tokens.check(secret, form["key"], issued, time.time() + 4)  # good once the minimum fill time passed
        assert client.get("/f/unknown-form-key").status_code == 404


class TestSubmit:
    def test_happy_path_creates_the_lead_runs_web_form_rules_and_queues_the_auto_reply(self, client: TestClient, admin, runtime, session) -> None:  # type: ignore[no-untyped-def]
        configure_smtp(runtime, admin.organisation_id)
        reply = make_template(client, admin, name="auto reply", subject="{{lead.last_name}}様 お問い合わせを受け付けました")
        welcome = make_template(client, admin, name="welcome")
        rule = make_rule(client, admin, welcome["id"], sources=["web_form"], delay_minutes=60)
        form = make_form(client, admin, template_id=reply["id"])
        response = post(client, form["key"], {"_token": token(runtime, session, form["key"]), "last_name": "山田", "company": "<i>A</i> 株式会社", "email": "Yamada@A.example", "hp_website": ""})
        assert response.status_code == 200, response.text
        assert "ありがとうございます" in response.text
        [lead] = leads(session)
        assert (lead.last_name, lead.company, lead.email, lead.source) == ("山田", "<i>A</i> 株式会社", "Yamada@a.example", "web_form")
        rows = outbox_rows(session)
        assert sorted((r.kind, r.source_id, r.subject) for r in rows) == sorted([("form_reply", form["id"], "山田様 お問い合わせを受け付けました"), ("rule", rule["id"], "山田様 ご登録ありがとうございます")])
        assert all(r.lead_id == lead.id and r.status == "queued" for r in rows)

    def test_an_existing_lead_is_updated_not_duplicated_with_the_identical_answer(self, client: TestClient, admin, member, runtime, session) -> None:  # type: ignore[no-untyped-def]
        form = make_form(client, admin)
        first = post(client, form["key"], {"_token": token(runtime, session, form["key"]), "last_name": "山田", "email": "yamada@a.example"})
        existing = post(client, form["key"], {"_token": token(runtime, session, form["key"]), "last_name": "山田", "company": "A 株式会社", "email": " YAMADA@a.example"})
        assert (first.status_code, first.text) == (existing.status_code, existing.text)
        assert first.headers["content-type"] == existing.headers["content-type"]
        [lead] = leads(session)
        assert lead.company == "A 株式会社"  # the empty field filled (the organisation's default, "fill")
        client.patch(f"/api/v1/forms/{form['id']}", json={"on_duplicate": "keep"}, headers=admin.headers)
        skipped = post(client, form["key"], {"_token": token(runtime, session, form["key"]), "last_name": "別人", "email": "yamada@a.example"})
        assert skipped.text == first.text
        assert [(x.last_name, x.company) for x in leads(session)] == [("山田", "A 株式会社")]

    def test_a_filled_honeypot_is_thanked_and_nothing_is_stored(self, client: TestClient, admin, runtime, session) -> None:  # type: ignore[no-untyped-def]
        configure_smtp(runtime, admin.organisation_id)
        form = make_form(client, admin, template_id=make_template(client, admin)["id"])
        real = post(client, form["key"], {"_token": token(runtime, session, form["key"]), "last_name": "A", "email": "a@a.example"})
        bot = post(client, form["key"], {"_token": token(runtime, session, form["key"]), "last_name": "B", "email": "b@b.example", "hp_website": "http://spam.example"})
        assert bot.status_code == 200 and bot.text == real.text
        assert [x.email for x in leads(session)] == ["a@a.example"] and len(outbox_rows(session)) == 1

    def test_too_fast_expired_and_bad_signatures_are_refused(self, client: TestClient, admin, runtime, session) -> None:  # type: ignore[no-untyped-def]
        form = make_form(client, admin)
        other = make_form(client, admin, name="other")
        data = {"last_name": "A", "email": "a@a.example"}
        cases = {
            "form_too_fast": token(runtime, session, form["key"], age=0.5),
            "form_expired": token(runtime, session, form["key"], age=form_tokens.MAX_AGE_SECONDS + 60),
            "form_token_invalid": token(runtime, session, other["key"]),  # another form's token
        }
        good = token(runtime, session, form["key"])
        cases["form_token_invalid "] = good[:-1] + ("0" if good[-1] != "0" else "1")
        for code, value in cases.items():
            response = post(client, form["key"], {**data, "_token": value})
            assert response.status_code == 400 and response.json()["type"] == code.strip(), (code, response.text)
            assert response.json()["detail"]
        missing = post(client, form["key"], data)
        assert missing.status_code == 400 and missing.json()["type"] == "form_token_invalid"
        assert leads(session) == []

    def test_bad_input_is_4xx_with_type_and_detail(self, client: TestClient, admin, runtime, session) -> None:  # type: ignore[no-untyped-def]
        form = make_form(client, admin)
        good = token(runtime, session, form["key"])
        no_name = post(client, form["key"], {"_token": good, "email": "a@a.example"})
        assert no_name.status_code == 400 and no_name.json()["type"] == "required_field" and no_name.json()["field"] == "last_name"
        bad_email = post(client, form["key"], {"_token": good, "last_name": "A", "email": "not an address"})
        assert bad_email.status_code == 400 and {"type", "detail"} <= set(bad_email.json())
        huge = post(client, form["key"], {"_token": good, "last_name": "A" * 20_000, "email": "a@a.example"})
        assert huge.status_code == 413 and huge.json()["type"] == "payload_too_large"
        as_json = client.post(f"/f/{form['key']}", json={"_token": good, "last_name": "A", "email": "a@a.example"})
        assert as_json.status_code == 415 and as_json.json()["type"] == "unsupported_media_type"
        assert leads(session) == []

    def test_the_per_address_rate_limit_answers_429(self, client: TestClient, admin, runtime, session) -> None:  # type: ignore[no-untyped-def]
        form = make_form(client, admin)
        statuses = [post(client, form["key"], {"_token": token(runtime, session, form["key"]), "last_name": "A", "email": f"a{i}@a.example"}).status_code for i in range(12)]
        assert statuses[:10] == [200] * 10 and statuses[10:] == [429, 429]
        limited = post(client, form["key"], {"last_name": "A", "email": "x@a.example"})
        assert limited.json()["type"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
        assert session.scalar(select(func.count()).select_from(Lead)) == 10

    def test_one_auto_reply_per_address_and_day(self, client: TestClient, admin, runtime, session) -> None:  # type: ignore[no-untyped-def]
        configure_smtp(runtime, admin.organisation_id)
        form = make_form(client, admin, template_id=make_template(client, admin)["id"])
        for _ in range(3):  # someone posting a victim's address again and again
            assert post(client, form["key"], {"_token": token(runtime, session, form["key"]), "last_name": "A", "email": "victim@a.example"}).status_code == 200
        assert len(outbox_rows(session, kind="form_reply")) == 1 and len(leads(session)) == 1


class TestCustomFields:
    def test_a_custom_field_of_the_form_is_stored_and_checked_before_the_lead_is_looked_up(self, client: TestClient, admin, runtime, session) -> None:  # type: ignore[no-untyped-def]
        client.post("/api/v1/custom-fields", json={"key": "plan", "label": "プラン", "type": "picklist", "options": ["gold", "free"]}, headers=admin.headers)
        form = make_form(client, admin, fields=[*FIELDS, {"field": "custom:plan", "label_ja": "プラン", "label_en": "Plan"}])
        assert post(client, form["key"], {"_token": token(runtime, session, form["key"]), "last_name": "A", "email": "a@a.example", "custom:plan": "gold"}).status_code == 200
        [lead] = leads(session)
        assert client.get(f"/api/v1/leads/{lead.id}/custom", headers=admin.headers).json() == {"plan": "gold"}
        known = post(client, form["key"], {"_token": token(runtime, session, form["key"]), "last_name": "A", "email": "a@a.example", "custom:plan": "platinum"})
        new = post(client, form["key"], {"_token": token(runtime, session, form["key"]), "last_name": "B", "email": "b@b.example", "custom:plan": "platinum"})
        assert known.status_code == new.status_code == 400
        assert known.json()["type"] == new.json()["type"] and known.json()["detail"] == new.json()["detail"]
        assert len(leads(session)) == 1


class TestDuplicatePolicy:
    """The organisation's setting for a submission whose address is already a lead's, and a
    form's own: through the public endpoint, never a second lead and the same answer."""

    FIRST = {"last_name": "山田", "company": "", "email": "yamada@a.example", "custom:plan": "free"}
    AGAIN = {"last_name": "山田太郎", "company": "B 株式会社", "email": "YAMADA@a.example", "custom:plan": "gold"}
    PLAN = {"field": "custom:plan", "label_ja": "プラン", "label_en": "Plan"}

    def _form(self, client: TestClient, admin, **extra) -> dict:  # type: ignore[no-untyped-def]
        client.post("/api/v1/custom-fields", json={"key": "plan", "label": "プラン", "type": "picklist", "options": ["gold", "free"]}, headers=admin.headers)
        return make_form(client, admin, fields=[*FIELDS, self.PLAN], **extra)

    def _twice(self, client: TestClient, admin, runtime, session, form: dict) -> tuple[Lead, dict, list]:  # type: ignore[no-untyped-def]
        answers = [post(client, form["key"], {"_token": token(runtime, session, form["key"]), **data}) for data in (self.FIRST, self.AGAIN)]
        assert [a.status_code for a in answers] == [200, 200] and answers[0].text == answers[1].text
        assert answers[0].headers["content-type"] == answers[1].headers["content-type"]
        [lead] = leads(session)  # never a second lead
        custom = client.get(f"/api/v1/leads/{lead.id}/custom", headers=admin.headers).json()
        entries = client.get(f"/api/v1/leads/{lead.id}/timeline", headers=admin.headers).json()["entries"]
        return lead, custom, [e for e in entries if e["kind"] == "form_submission"]

    def test_the_setting_is_admin_only_and_defaults_to_fill(self, client: TestClient, admin, member) -> None:  # type: ignore[no-untyped-def]
        assert client.get("/api/v1/settings/form-duplicates", headers=member.headers).json() == {"on_duplicate": "fill"}
        assert client.put("/api/v1/settings/form-duplicates", json={"on_duplicate": "keep"}, headers=member.headers).status_code == 403
        assert client.put("/api/v1/settings/form-duplicates", json={"on_duplicate": "merge"}, headers=admin.headers).status_code == 422
        form = make_form(client, admin)
        assert (form["on_duplicate"], form["applied_on_duplicate"]) == ("inherit", "fill")
        assert client.put("/api/v1/settings/form-duplicates", json={"on_duplicate": "replace"}, headers=admin.headers).json() == {"on_duplicate": "replace"}
        assert client.get("/api/v1/settings/form-duplicates", headers=member.headers).json() == {"on_duplicate": "replace"}
        assert client.get(f"/api/v1/forms/{form['id']}", headers=member.headers).json()["applied_on_duplicate"] == "replace"
        own = client.patch(f"/api/v1/forms/{form['id']}", json={"on_duplicate": "keep"}, headers=admin.headers).json()
        assert (own["on_duplicate"], own["applied_on_duplicate"]) == ("keep", "keep")

    def test_fill_only_fills_empty_fields(self, client: TestClient, admin, runtime, session) -> None:  # type: ignore[no-untyped-def]
        lead, custom, entries = self._twice(client, admin, runtime, session, self._form(client, admin))
        assert (lead.last_name, lead.company, lead.email) == ("山田", "B 株式会社", "yamada@a.example") and custom == {"plan": "free"}
        assert entries[0]["payload"]["policy"] == "fill" and entries[0]["payload"]["changed"] == ["company"]
        assert entries[1]["payload"]["created"] is True and len(entries) == 2

    def test_replace_overwrites_with_the_submitted_values(self, client: TestClient, admin, runtime, session) -> None:  # type: ignore[no-untyped-def]
        client.put("/api/v1/settings/form-duplicates", json={"on_duplicate": "replace"}, headers=admin.headers)
        lead, custom, entries = self._twice(client, admin, runtime, session, self._form(client, admin))
        assert (lead.last_name, lead.company, lead.email) == ("山田太郎", "B 株式会社", "yamada@a.example") and custom == {"plan": "gold"}
        assert entries[0]["payload"]["policy"] == "replace" and sorted(entries[0]["payload"]["changed"]) == ["company", "custom:plan", "last_name"]

    def test_replace_never_clears_a_field_left_blank(self, client: TestClient, admin, runtime, session) -> None:  # type: ignore[no-untyped-def]
        client.put("/api/v1/settings/form-duplicates", json={"on_duplicate": "replace"}, headers=admin.headers)
        form = make_form(client, admin)
        post(client, form["key"], {"_token": token(runtime, session, form["key"]), "last_name": "山田", "company": "A 株式会社", "email": "yamada@a.example"})
        post(client, form["key"], {"_token": token(runtime, session, form["key"]), "last_name": "山田", "company": "", "email": "yamada@a.example"})
        assert [x.company for x in leads(session)] == ["A 株式会社"]

    def test_keep_leaves_the_lead_and_records_the_submission(self, client: TestClient, admin, runtime, session) -> None:  # type: ignore[no-untyped-def]
        client.put("/api/v1/settings/form-duplicates", json={"on_duplicate": "keep"}, headers=admin.headers)
        lead, custom, entries = self._twice(client, admin, runtime, session, self._form(client, admin))
        assert (lead.last_name, lead.company) == ("山田", None) and custom == {"plan": "free"}
        assert entries[0]["payload"]["policy"] == "keep" and entries[0]["payload"]["changed"] == []
        assert entries[0]["payload"]["submitted"] == {"last_name": "山田太郎", "company": "B 株式会社", "email": "YAMADA@a.example", "custom:plan": "gold"}
        assert entries[0]["summary"] == "お問い合わせ"

    def test_a_form_overrides_the_organisation(self, client: TestClient, admin, runtime, session) -> None:  # type: ignore[no-untyped-def]
        client.put("/api/v1/settings/form-duplicates", json={"on_duplicate": "keep"}, headers=admin.headers)
        lead, custom, _ = self._twice(client, admin, runtime, session, self._form(client, admin, on_duplicate="replace"))
        assert lead.last_name == "山田太郎" and custom == {"plan": "gold"}

    def test_no_second_lead_even_where_emails_may_repeat(self, client: TestClient, admin, runtime, session) -> None:  # type: ignore[no-untyped-def]
        """Unique email turned off (for imports): a form still finds the person's lead."""
        client.put("/api/v1/settings/unique-fields/email", json={"unique": False}, headers=admin.headers)
        lead, _, entries = self._twice(client, admin, runtime, session, self._form(client, admin))
        assert lead.company == "B 株式会社" and entries[0]["payload"]["policy"] == "fill"

    def test_a_value_another_lead_holds_is_left_out_with_the_same_answer(self, client: TestClient, admin, runtime, session) -> None:  # type: ignore[no-untyped-def]
        client.put("/api/v1/settings/form-duplicates", json={"on_duplicate": "replace"}, headers=admin.headers)
        client.put("/api/v1/settings/unique-fields/company", json={"unique": True}, headers=admin.headers)
        form = make_form(client, admin)
        answers = [
            post(client, form["key"], {"_token": token(runtime, session, form["key"]), **data})
            for data in (
                {"last_name": "佐藤", "company": "B 株式会社", "email": "sato@b.example"},
                {"last_name": "山田", "company": "A 株式会社", "email": "yamada@a.example"},
                {"last_name": "山田太郎", "company": "B 株式会社", "email": "yamada@a.example"},  # B is 佐藤's company
            )
        ]
        assert {(a.status_code, a.text) for a in answers} == {(200, answers[0].text)}
        assert [(x.last_name, x.company) for x in leads(session)] == [("佐藤", "B 株式会社"), ("山田太郎", "A 株式会社")]
