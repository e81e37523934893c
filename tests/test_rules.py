"""Templates and workflow rules through the API: merge fields checked at save time and
escaped in HTML, rules' conditions in the view filter language, admin-only writes, dry run."""

from __future__ import annotations

from fastapi.testclient import TestClient

from crm.domain import templates as t

TEMPLATE = {"name": "welcome", "language": "ja", "subject": "{{lead.last_name}}様 ご登録ありがとうございます", "text_body": "{{lead.company}} {{lead.last_name}}様\nありがとうございます。", "html_body": "<p>{{lead.company}} {{ lead.last_name }}様</p>"}


def make_template(client: TestClient, admin, **extra) -> dict:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/templates", json={**TEMPLATE, **extra}, headers=admin.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def make_rule(client: TestClient, admin, template_id: int, **extra) -> dict:  # type: ignore[no-untyped-def]
    body = {"name": "welcome imports", "sources": ["csv_import"], "template_id": template_id, **extra}
    response = client.post("/api/v1/rules", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def import_csv(client: TestClient, user, text: str, **data: str) -> dict:  # type: ignore[no-untyped-def]
    """An import job run to its end (tests.factories.import_csv): its counts, and the job."""
    from tests import factories

    job = factories.import_csv(client, user, text.encode(), dict(data))
    assert job["status"] == "done", job
    return {**job["counts"], "job": job}


def rule_mails(client: TestClient, admin, rule_id: int) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    """The rule's mails as the product lists them (GET /api/v1/outbox/sources/rule/{id})."""
    response = client.get(f"/api/v1/outbox/sources/rule/{rule_id}", headers=admin.headers)
    assert response.status_code == 200, response.text
    return sorted(response.json(), key=lambda m: m["to_address"].lower())  # type: ignore[no-any-return]


class TestRenderer:
    def test_html_values_are_escaped_text_and_subject_are_not(self) -> None:
        values = t.lead_values({"company": "<b>Acme</b> & Co", "last_name": "O'Neil\r\nBcc: x@evil.example"}, {"plan": 3.0})
        mail = t.render("Hi {{lead.last_name}}", "{{lead.company}} {{lead.custom.plan}}", "<p>{{lead.company}}</p>", values)
        assert mail.html == "<p>&lt;b&gt;Acme&lt;/b&gt; &amp; Co</p>"
        assert mail.text == "<b>Acme</b> & Co 3"
        assert mail.subject == "Hi O'Neil Bcc: x@evil.example"  # one header line, whatever the lead holds

    def test_unknown_fields_are_named(self) -> None:
        assert t.unknown_fields(["{{lead.company}} {{lead.compny}}", "{{lead.custom.plan}} {{lead.custom.size}} {{user.name}}"], ["plan"]) == ["lead.compny", "lead.custom.size", "user.name"]


class TestTemplates:
    def test_an_unknown_merge_field_is_422_naming_it_and_nothing_saved(self, client: TestClient, admin) -> None:  # type: ignore[no-untyped-def]
        response = client.post("/api/v1/templates", json={**TEMPLATE, "text_body": "{{lead.compnay}}"}, headers=admin.headers)
        assert response.status_code == 422, response.text
        assert response.json()["type"] == "unknown_merge_field" and response.json()["field"] == "lead.compnay"
        assert client.get("/api/v1/templates", headers=admin.headers).json() == []

    def test_custom_fields_are_known_once_defined(self, client: TestClient, admin) -> None:  # type: ignore[no-untyped-def]
        body = {**TEMPLATE, "text_body": "{{lead.custom.industry}}"}
        assert client.post("/api/v1/templates", json=body, headers=admin.headers).status_code == 422
        client.post("/api/v1/custom-fields", json={"key": "industry", "label": "業種", "type": "text"}, headers=admin.headers)
        assert client.post("/api/v1/templates", json=body, headers=admin.headers).status_code == 201

    def test_a_member_reads_but_does_not_write(self, client: TestClient, admin, member) -> None:  # type: ignore[no-untyped-def]
        made = make_template(client, admin)
        assert client.post("/api/v1/templates", json={**TEMPLATE, "name": "x"}, headers=member.headers).status_code == 403
        assert client.patch(f"/api/v1/templates/{made['id']}", json={"subject": "x"}, headers=member.headers).status_code == 403
        assert client.get(f"/api/v1/templates/{made['id']}", headers=member.headers).json()["subject"] == TEMPLATE["subject"]

    def test_update_checks_merge_fields_too(self, client: TestClient, admin) -> None:  # type: ignore[no-untyped-def]
        made = make_template(client, admin)
        assert client.patch(f"/api/v1/templates/{made['id']}", json={"html_body": "{{lead.nope}}"}, headers=admin.headers).status_code == 422
        assert client.get(f"/api/v1/templates/{made['id']}", headers=admin.headers).json()["html_body"] == TEMPLATE["html_body"]

    def test_iso_2022_jp_refuses_text_it_cannot_hold(self, client: TestClient, admin) -> None:  # type: ignore[no-untyped-def]
        response = client.post("/api/v1/templates", json={**TEMPLATE, "charset": "iso-2022-jp", "text_body": "😀"}, headers=admin.headers)
        assert response.status_code == 400 and response.json()["field"] == "charset"


class TestRules:
    def test_create_list_update_pause_resume_delete(self, client: TestClient, admin, member) -> None:  # type: ignore[no-untyped-def]
        template = make_template(client, admin)
        conditions = {"field": "company", "op": "contains", "value": "株式会社"}
        rule = make_rule(client, admin, template["id"], conditions=conditions, delay_minutes=30)
        assert rule["conditions"] == {"field": "company", "op": "contains", "value": "株式会社"} and rule["delay_minutes"] == 30
        assert client.post(f"/api/v1/rules/{rule['id']}/pause", headers=member.headers).status_code == 403
        assert client.post(f"/api/v1/rules/{rule['id']}/pause", headers=admin.headers).json()["paused"] is True
        assert client.post(f"/api/v1/rules/{rule['id']}/resume", headers=admin.headers).json()["paused"] is False
        changed = client.patch(f"/api/v1/rules/{rule['id']}", json={"sources": ["web_form", "api"], "conditions": None}, headers=admin.headers).json()
        assert changed["sources"] == ["web_form", "api"] and changed["conditions"] is None
        assert [r["id"] for r in client.get("/api/v1/rules", headers=member.headers).json()] == [rule["id"]]
        assert client.delete(f"/api/v1/templates/{template['id']}", headers=admin.headers).status_code == 409  # in use
        assert client.delete(f"/api/v1/rules/{rule['id']}", headers=admin.headers).status_code == 204
        assert client.get(f"/api/v1/rules/{rule['id']}", headers=admin.headers).status_code == 404

    def test_bad_rules_are_refused(self, client: TestClient, admin, runtime) -> None:  # type: ignore[no-untyped-def]
        from tests.factories import make_org, make_user

        template = make_template(client, admin)
        other_admin = make_user(runtime, make_org(runtime, "Other"), "a@other.example", role="admin")
        other_template = make_template(client, other_admin)
        assert client.post("/api/v1/rules", json={"name": "r", "sources": ["fax"], "template_id": template["id"]}, headers=admin.headers).status_code == 422
        assert client.post("/api/v1/rules", json={"name": "r", "sources": [], "template_id": template["id"]}, headers=admin.headers).status_code == 422
        unknown = client.post("/api/v1/rules", json={"name": "r", "sources": ["api"], "template_id": template["id"], "conditions": {"field": "custom:nope", "op": "equals", "value": "x"}}, headers=admin.headers)
        assert unknown.status_code == 400 and "nope" in unknown.json()["reason"]
        assert client.post("/api/v1/rules", json={"name": "r", "sources": ["api"], "template_id": other_template["id"]}, headers=admin.headers).status_code == 404

    def test_dry_run_lists_whom_it_would_mail_and_who_is_skipped_why(self, client: TestClient, admin, member) -> None:  # type: ignore[no-untyped-def]
        client.post("/api/v1/custom-fields", json={"key": "size", "label": "規模", "type": "number"}, headers=admin.headers)
        template = make_template(client, admin)
        conditions = {"op": "and", "conditions": [{"field": "company", "op": "contains", "value": "株式会社"}, {"field": "custom:size", "op": "between", "value": [10, 100]}]}
        csv = "姓,会社名,メール,size\n山田,A 株式会社,yamada@a.example,50\n佐藤,B 株式会社,,20\n鈴木,C Inc,suzuki@c.example,50\n田中,D 株式会社,tanaka@d.example,500\n"
        report = import_csv(client, member, csv, mapping="size=custom:size")
        assert report["created"] == 4
        rule = make_rule(client, admin, template["id"], conditions=conditions)  # after the import: a dry run over leads it never saw
        response = client.post(f"/api/v1/rules/{rule['id']}/dry-run", json={}, headers=admin.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert [(m["to"], m["subject"]) for m in body["would_mail"]] == [("yamada@a.example", "山田様 ご登録ありがとうございます")]
        assert [(s["email"], s["reason"]) for s in body["skipped"]] == [(None, "no_address")]
        assert client.post(f"/api/v1/rules/{rule['id']}/dry-run", json={}, headers=member.headers).status_code == 403


def configure_smtp(runtime, org_id: int) -> None:  # type: ignore[no-untyped-def]
    from crm.services import outbox

    with runtime.sessions.begin() as s:
        outbox.save_smtp_settings(s, org_id, runtime.secrets, host="127.0.0.1", port=2525, security="none", from_address="info@acme.example", public_url="https://crm.acme.example")


def outbox_rows(session, **where):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from crm.store.outbox import OutboxMail

    session.expire_all()
    query = select(OutboxMail).order_by(OutboxMail.id)
    for key, value in where.items():
        query = query.where(getattr(OutboxMail, key) == value)
    rows = list(session.scalars(query))
    session.commit()  # SQLite: the read's transaction holds the write lock (BEGIN IMMEDIATE); the rows stay loaded
    return rows


CSV = "姓,会社名,メール\n山田,A 株式会社,yamada@a.example\n佐藤,B 株式会社,sato@b.example\n鈴木,C Inc,suzuki@c.example\n"


class TestRulesSend:
    def test_a_csv_import_mails_each_imported_lead_once_and_a_reimport_mails_nobody(self, client: TestClient, runtime, admin, member, session) -> None:  # type: ignore[no-untyped-def]
        configure_smtp(runtime, admin.organisation_id)
        rule = make_rule(client, admin, make_template(client, admin)["id"], delay_minutes=10)
        report = import_csv(client, member, CSV)
        assert report["created"] == 3
        assert [(m["to_address"], m["status"]) for m in rule_mails(client, admin, rule["id"])] == [("sato@b.example", "queued"), ("suzuki@c.example", "queued"), ("yamada@a.example", "queued")]
        rows = outbox_rows(session, source_id=rule["id"])
        assert sorted(r.to_address for r in rows) == ["sato@b.example", "suzuki@c.example", "yamada@a.example"]
        assert all(r.kind == "rule" and r.status == "queued" and r.lead_id is not None for r in rows)
        assert all((r.next_attempt_at - r.created_at).total_seconds() == 600 for r in rows)  # the rule's delay
        assert {r.subject for r in rows} == {"山田様 ご登録ありがとうございます", "佐藤様 ご登録ありがとうございます", "鈴木様 ご登録ありがとうございます"}
        again = import_csv(client, member, CSV, on_duplicate="merge", mode="row_by_row")
        assert again["created"] == 0 and again["updated"] + again["skipped"] == 3
        assert len(outbox_rows(session)) == 3 and len(rule_mails(client, admin, rule["id"])) == 3

    def test_one_lead_is_never_mailed_twice_by_one_rule(self, client: TestClient, runtime, admin, member, session) -> None:  # type: ignore[no-untyped-def]
        from crm.domain.principal import Principal
        from crm.services import rules

        configure_smtp(runtime, admin.organisation_id)
        rule = make_rule(client, admin, make_template(client, admin)["id"])
        import_csv(client, member, CSV)
        ids = [r.lead_id for r in outbox_rows(session)]
        with runtime.sessions.begin() as s:  # the same leads handed to the rules again (a retried job)
            again = rules.on_leads_created(s, Principal(member.id, member.organisation_id, member.email), ids, "csv_import")
        assert again.per_rule == {rule["id"]: {"duplicate": 3}}
        assert len(outbox_rows(session)) == 3

    def test_two_leads_with_one_address_get_one_mail(self, client: TestClient, runtime, admin, member, session) -> None:  # type: ignore[no-untyped-def]
        configure_smtp(runtime, admin.organisation_id)
        assert client.put("/api/v1/settings/unique-fields/email", json={"unique": False}, headers=admin.headers).status_code == 200
        rule = make_rule(client, admin, make_template(client, admin)["id"])
        report = import_csv(client, member, "姓,メール\n山田,Yamada@A.example\n山田,yamada@a.example \n佐藤,sato@b.example\n")
        assert report["created"] == 3
        mails = rule_mails(client, admin, rule["id"])
        # The second 山田 skipped, with the reason on a row of its own (its status per lead).
        assert sorted((m["to_address"].lower().strip(), m["status"], m["reason"]) for m in mails) == [
            ("sato@b.example", "queued", None), ("yamada@a.example", "queued", None), ("yamada@a.example", "skipped", "duplicate_address"),
        ]
        assert sorted(r.address_norm for r in outbox_rows(session) if r.status == "queued") == ["sato@b.example", "yamada@a.example"]

    def test_a_lead_without_an_address_is_skipped_with_the_reason_visible_per_lead_and_rule(self, client: TestClient, runtime, admin, member, session) -> None:  # type: ignore[no-untyped-def]
        configure_smtp(runtime, admin.organisation_id)
        rule = make_rule(client, admin, make_template(client, admin)["id"])
        assert import_csv(client, member, "姓,メール\n山田,\n佐藤,sato@b.example\n")["created"] == 2
        [mail, skipped] = sorted(rule_mails(client, admin, rule["id"]), key=lambda m: m["status"])
        assert (mail["status"], skipped["status"], skipped["reason"], skipped["to_address"]) == ("queued", "skipped", "no_address", "")
        per_lead = client.get(f"/api/v1/outbox/leads/{skipped['lead_id']}?lang=ja", headers=member.headers).json()
        assert [(m["status"], m["reason"], m["status_label"], m["reason_label"]) for m in per_lead] == [("skipped", "no_address", "送信対象外", "宛先のメールアドレスがありません")]
        english = client.get(f"/api/v1/outbox/leads/{skipped['lead_id']}?lang=en", headers=member.headers).json()
        assert english[0]["reason_label"] == "No email address"

    def test_conditions_are_respected(self, client: TestClient, runtime, admin, member, session) -> None:  # type: ignore[no-untyped-def]
        configure_smtp(runtime, admin.organisation_id)
        rule = make_rule(client, admin, make_template(client, admin)["id"], conditions={"op": "or", "conditions": [{"field": "company", "op": "contains", "value": "株式会社"}]})
        import_csv(client, member, CSV)
        assert sorted(r.to_address for r in outbox_rows(session)) == ["sato@b.example", "yamada@a.example"]
        assert [m["to_address"] for m in rule_mails(client, admin, rule["id"])] == ["sato@b.example", "yamada@a.example"]

    def test_a_paused_rule_or_another_source_sends_nothing(self, client: TestClient, runtime, admin, member, session) -> None:  # type: ignore[no-untyped-def]
        configure_smtp(runtime, admin.organisation_id)
        template = make_template(client, admin)
        paused = make_rule(client, admin, template["id"], paused=True)
        other = make_rule(client, admin, template["id"], name="api only", sources=["api", "widget"])
        report = import_csv(client, member, CSV)
        assert report["created"] == 3
        assert outbox_rows(session) == [] and rule_mails(client, admin, paused["id"]) == [] and rule_mails(client, admin, other["id"]) == []
        client.post(f"/api/v1/rules/{paused['id']}/resume", headers=admin.headers)
        import_csv(client, member, "姓,メール\n高橋,takahashi@e.example\n")
        assert [r.to_address for r in outbox_rows(session)] == ["takahashi@e.example"]
        assert [m["to_address"] for m in rule_mails(client, admin, paused["id"])] == ["takahashi@e.example"]

    def test_a_lead_saved_through_the_api_triggers_api_rules_with_custom_fields(self, client: TestClient, runtime, admin, member, session) -> None:  # type: ignore[no-untyped-def]
        configure_smtp(runtime, admin.organisation_id)
        client.post("/api/v1/custom-fields", json={"key": "plan", "label": "プラン", "type": "picklist", "options": ["gold", "free"]}, headers=admin.headers)
        template = make_template(client, admin, html_body="<p>{{lead.company}}: {{lead.custom.plan}}</p>")
        make_rule(client, admin, template["id"], sources=["api"], conditions={"field": "custom:plan", "op": "equals", "value": "gold"})
        client.post("/api/v1/leads", json={"last_name": "A", "email": "free@x.example", "custom": {"plan": "free"}}, headers=member.headers)
        saved = client.post("/api/v1/leads", json={"last_name": "B", "company": "<script>x</script>", "email": "gold@x.example", "custom": {"plan": "gold"}}, headers=member.headers)
        assert saved.status_code == 201
        rows = outbox_rows(session)
        assert [r.to_address for r in rows] == ["gold@x.example"]
        import email
        from email import policy

        html = email.message_from_bytes(rows[0].raw, policy=policy.default).get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert "&lt;script&gt;x&lt;/script&gt;: gold" in html and "<script>" not in html

    def test_dry_run_names_those_already_mailed_and_unsubscribed(self, client: TestClient, runtime, admin, member, session) -> None:  # type: ignore[no-untyped-def]
        from crm.services import outbox

        rule = make_rule(client, admin, make_template(client, admin)["id"])
        import_csv(client, member, CSV)  # no SMTP yet: queued as skipped (smtp_not_configured), keyed all the same
        with runtime.sessions.begin() as s:
            from sqlalchemy import delete

            from crm.store.outbox import OutboxMail

            s.execute(delete(OutboxMail))  # as if never queued
        configure_smtp(runtime, admin.organisation_id)
        import_csv(client, member, "姓,メール\n高橋,takahashi@e.example\n伊藤,ito@f.example\n")
        with runtime.sessions.begin() as s:
            outbox.suppress(s, admin.organisation_id, "ITO@f.example", "unsubscribed")
        body = client.post(f"/api/v1/rules/{rule['id']}/dry-run", json={}, headers=admin.headers).json()
        assert sorted(m["to"] for m in body["would_mail"]) == ["sato@b.example", "suzuki@c.example", "yamada@a.example"]
        assert sorted((s["email"], s["reason"]) for s in body["skipped"]) == [("ito@f.example", "unsubscribed"), ("takahashi@e.example", "already_mailed")]
        assert len(outbox_rows(session)) == 2  # the dry run queued nothing


class TestCommandLine:
    def test_template_rule_pause_dry_run_and_delete(self, tmp_path) -> None:  # type: ignore[no-untyped-def]
        import json

        from tests.test_cli import run

        env = {"MAILWIDGET_DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
        assert run("org-create", "Acme", "--admin", "boss@acme.example", env=env).returncode == 0
        run("user-add", "rep@acme.example", "--org", "1", env=env)
        who = ["--org", "1", "--user", "boss@acme.example"]
        (tmp_path / "body.txt").write_text("{{lead.last_name}}様", encoding="utf-8")
        made = run("template-create", "welcome", "--subject", "{{lead.last_name}}様へ", "--text-file", str(tmp_path / "body.txt"), *who, env=env)
        assert made.returncode == 0, made.stderr
        bad = run("template-create", "typo", "--subject", "{{lead.lastname}}", "--text-file", str(tmp_path / "body.txt"), *who, env=env)
        assert bad.returncode == 2 and "lead.lastname" in bad.stderr and "Traceback" not in bad.stderr
        template_id = json.loads(made.stdout)["id"]
        rule = run("rule-create", "imports", "--sources", "csv_import", "--template", str(template_id), "--conditions", '{"field": "company", "op": "contains", "value": "株式会社"}', *who, env=env)
        assert rule.returncode == 0, rule.stderr
        rule_id = str(json.loads(rule.stdout)["id"])
        assert run("rule-create", "x", "--sources", "csv_import", "--template", str(template_id), "--user", "rep@acme.example", "--org", "1", env=env).returncode == 2  # members read only
        (tmp_path / "leads.csv").write_text("姓,会社名,メール\n山田,A 株式会社,yamada@a.example\n鈴木,C Inc,suzuki@c.example\n", encoding="utf-8")
        assert run("rule-pause", rule_id, *who, env=env).returncode == 0
        assert run("import-leads", str(tmp_path / "leads.csv"), *who, env=env).returncode == 0
        dry = run("rule-dry-run", rule_id, *who, env=env)
        assert dry.returncode == 0 and dry.stdout.splitlines() == ["mail\t1\tyamada@a.example\t山田様へ"]
        assert json.loads(run("rules", *who, env=env).stdout)["paused"] is True
        assert json.loads(run("rule-update", rule_id, "--delay", "15", "--conditions", "none", *who, env=env).stdout)["conditions"] is None
        assert run("rule-delete", rule_id, *who, env=env).returncode == 0
        assert run("rules", *who, env=env).stdout == ""
        sent = run("bulk-send", "--template", str(template_id), "--leads", "1,2", "--key", "k1", *who, env=env)
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout) | {"counts": None} == {"batch_key": "k1", "kind": "bulk", "recipients": 2, "send_at": None, "counts": None}
        assert json.loads(sent.stdout)["counts"] == {"skipped": 2}  # no SMTP server set up: recorded, not lost
        assert run("bulk-send", "--template", str(template_id), "--leads", "1", "--view", "1", *who, env=env).returncode == 2
        assert run("form-duplicates", *who, env=env).stdout.strip() == '{"on_duplicate": "fill"}'
        assert run("form-duplicates", "--set", "keep", *who, env=env).stdout.strip() == '{"on_duplicate": "keep"}'
        assert run("form-duplicates", "--set", "fill", "--user", "rep@acme.example", "--org", "1", env=env).returncode == 2  # admins only
