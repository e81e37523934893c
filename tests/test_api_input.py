"""Bad input answered with a clear 4xx, found by hand before the fuzzer existed: numbers
beyond the database's integers, non-ASCII Message-IDs, hostile MIME; and the OpenAPI
document that says which errors each operation gives."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from tests.factories import connect_mailbox, make_org, make_user
from tests.test_parsing import long_headers
from tests.test_spam import mail

HUGE = [2**31, 2**63, 2**64 + 1, 10**30]


def huge_requests(n: int) -> list[tuple[str, str, dict[str, object]]]:
    """(method, url, keyword arguments) naming `n` in every place the API takes an id or a count."""
    return [
        ("GET", f"/api/v1/leads/{n}", {}), ("PATCH", f"/api/v1/leads/{n}", {"json": {"city": "x"}}),
        ("GET", f"/api/v1/leads/{n}/custom", {}), ("GET", f"/api/v1/leads/{n}/conversion", {}),
        ("GET", "/api/v1/leads", {"params": {"offset": n * 2**33}}),
        ("POST", "/api/v1/leads", {"json": {"last_name": "x", "update_existing_id": n}}),
        ("GET", f"/api/v1/campaigns/{n}", {}), ("GET", "/api/v1/campaigns/1", {"params": {"offset": n * 2**33}}),
        ("POST", f"/api/v1/campaigns/{n}/members", {"json": {"lead_ids": [1]}}), ("POST", "/api/v1/campaigns/1/members", {"json": {"lead_ids": [n]}}),
        ("PUT", f"/api/v1/campaigns/1/members/{n}", {"json": {"status": "x"}}), ("GET", f"/api/v1/campaigns/{n}/members/1/history", {}),
        ("POST", "/api/v1/leads/1/campaigns", {"json": {"campaign_id": n}}), ("POST", "/api/v1/leads/1/conversion", {"json": {"account_id": n}}),
        ("GET", f"/api/v1/views/{n}/leads", {}), ("GET", "/api/v1/views/1/leads", {"params": {"offset": n * 2**33}}),
        ("DELETE", f"/api/v1/spam/whitelist/{n}", {}), ("DELETE", f"/api/v1/mailboxes/{n}", {}), ("POST", f"/api/v1/mailboxes/{n}/test", {}),
        ("GET", "/api/v1/messages/draft", {"params": {"uid": 1, "mailbox_id": n}}), ("POST", "/api/v1/spam/not-spam", {"json": {"uid": 1, "mailbox_id": n}}),
        ("POST", "/api/v1/spam/rescue", {"params": {"mailbox_id": n}}), ("POST", "/api/v1/calendar/scan", {"params": {"mailbox_id": n}}),
    ]


@pytest.mark.parametrize("n", HUGE)
def test_an_id_or_count_beyond_the_database_is_a_422_everywhere(client, member, n: int) -> None:  # type: ignore[no-untyped-def]
    for method, url, kwargs in huge_requests(n):
        response = client.request(method, url, headers=member.headers, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 422, (method, url, kwargs, response.text)
        assert response.json()["type"] == "validation_error"


def test_campaign_history_reads_nothing_of_another_organisations_campaign(client, member, runtime) -> None:  # type: ignore[no-untyped-def]
    other = make_user(runtime, make_org(runtime, "Other"), "x@other.example")
    campaign = client.post("/api/v1/campaigns", json={"name": "theirs"}, headers=other.headers).json()
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", record)
    try:
        response = client.get(f"/api/v1/campaigns/{campaign['id']}/members/1/history", headers=member.headers)
    finally:
        event.remove(runtime.engine, "before_cursor_execute", record)
    assert response.status_code == 404
    assert not [s for s in statements if "campaign_statuses" in s]


UTF8_ID = "<日本語@例え.jp>"


def test_a_non_ascii_message_id_is_searched_not_a_500(client, member, dovecot, imap_user) -> None:  # type: ignore[no-untyped-def]
    dovecot.append(imap_user.name, "INBOX", mail(mid=UTF8_ID))
    connect_mailbox(client, member, imap_user)
    found = client.get("/api/v1/messages/draft", params={"message_id": UTF8_ID}, headers=member.headers)
    assert found.status_code == 200 and found.json()["message"]["message_id"] == UTF8_ID
    missing = "<存在しない@例え.jp>"
    for method, url, kwargs in [
        ("GET", "/api/v1/messages/draft", {"params": {"message_id": missing}}),
        ("GET", "/api/v1/calendar/invitation", {"params": {"message_id": missing}}),
        ("POST", "/api/v1/calendar/answer", {"json": {"message_id": missing, "partstat": "ACCEPTED"}}),
        ("GET", "/api/v1/spam/diagnosis", {"params": {"folder": "Junk", "message_id": missing}}),
        ("POST", "/api/v1/spam/not-spam", {"json": {"folder": "Junk", "message_id": missing}}),
    ]:
        response = client.request(method, url, headers=member.headers, **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 404, (url, response.text)


def _deep(levels: int) -> bytes:
    opening = b"".join(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i - 1, i) for i in range(1, levels))
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(levels)))
    head = b"From: Yamada <yamada@customer.co.jp>\r\nSubject: deep\r\nMessage-ID: <deep@customer.co.jp>\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
    return head + b"--b0\r\nContent-Type: text/plain\r\n\r\nYamada\r\n" + opening + b"--b%d\r\nContent-Type: text/plain\r\n\r\nx\r\n" % (levels - 1) + closing


@pytest.mark.parametrize("raw", [_deep(950), _deep(3000), long_headers(8189)], ids=["950-deep", "3000-deep", "long-headers"])
def test_the_raw_upload_reads_hostile_mime(client, member, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/api/v1/messages/draft/raw", content=raw, headers={**member.headers, "Content-Type": "message/rfc822"})
    assert response.status_code == 200, response.text
    assert response.json()["message"]["subject"] in ("deep", "long headers")


def test_the_openapi_document_lists_every_error_answer(client) -> None:  # type: ignore[no-untyped-def]
    document = client.get("/openapi.json").json()
    error_ref = {"$ref": "#/components/schemas/ErrorOut"}
    operations = [(method, path, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    assert len(operations) > 40
    for method, path, op in operations:
        codes = {int(c) for c in op["responses"] if c.isdigit() and int(c) >= 400}
        behind_token = path not in ("/api/v1/health", "/api/v1/ready", "/auth/token")  # the token exchange is how one gets a token
        assert codes >= ({401, 422, 503} if behind_token else {503}), (method, path, codes)
        for code in codes:
            assert op["responses"][str(code)]["content"]["application/json"]["schema"] == error_ref, (method, path, code)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    by_path = {(m, p): op for m, p, op in operations}
    assert "409" in by_path[("post", "/api/v1/spam/not-spam")]["responses"] and "413" in by_path[("post", "/api/v1/messages/draft/raw")]["responses"]
    assert "403" in by_path[("put", "/api/v1/conversion/settings")]["responses"]
