"""A large raw upload neither stalls the server nor takes long: the HTML is cut before it is
converted, and the parsing runs in the thread pool while the event loop keeps answering."""

from __future__ import annotations

import base64
import threading
import time

import httpx
import pytest

from mail_adapter import parsing
from mail_adapter.parsing import MAX_HTML_CHARS, MAX_TEXT_CHARS, parse_message


def big_html_mail(html_bytes: int) -> bytes:
    row = "<tr><td>株式会社サンプル</td><td>taro.yamada@example.co.jp</td><td>03-1234-5678</td></tr>\n"
    html = ("<html><body><p>Hello, 山田です。</p><table>" + row * (html_bytes // len(row.encode())) + "</table></body></html>").encode()
    body = base64.encodebytes(html)
    return (
        b"From: Taro Yamada <taro.yamada@example.co.jp>\r\nTo: rep@acme.example\r\nSubject: big\r\n"
        b"Message-ID: <big@example.co.jp>\r\nDate: Thu, 3 Dec 2026 10:00:00 +0900\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body
    )


def test_a_large_html_part_is_cut_before_it_is_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    converted: list[int] = []
    real = parsing.html_to_text
    monkeypatch.setattr(parsing, "html_to_text", lambda markup: converted.append(len(markup)) or real(markup))
    raw = big_html_mail(8 * 2**20)
    started = time.monotonic()
    parsed = parse_message(raw)
    assert time.monotonic() - started < 5
    assert converted and max(converted) <= MAX_HTML_CHARS  # the markup was cut, not the text after
    assert "山田" in parsed.text and len(parsed.text) <= MAX_TEXT_CHARS
    assert parsed.message_id == "<big@example.co.jp>"


def probe_while(work, url: str) -> list[float]:  # type: ignore[no-untyped-def]
    """Seconds of each GET of url made while work runs in another thread."""
    worker = threading.Thread(target=work)
    worker.start()
    seconds = []
    while worker.is_alive():
        started = time.monotonic()
        assert httpx.get(url, timeout=30).status_code == 200
        seconds.append(time.monotonic() - started)
        time.sleep(0.05)
    worker.join()
    return seconds


def test_the_event_loop_answers_during_a_large_upload(live_server: str, member) -> None:  # type: ignore[no-untyped-def]
    raw = big_html_mail(8 * 2**20)
    result: dict[str, object] = {}

    def upload() -> None:
        started = time.monotonic()
        response = httpx.post(f"{live_server}/api/v1/messages/draft/raw", content=raw, headers={**member.headers, "Content-Type": "message/rfc822"}, timeout=60)
        result["status"], result["seconds"] = response.status_code, time.monotonic() - started

    httpx.get(f"{live_server}/api/v1/health", timeout=30)  # warm: a first answer's cost is not a stall
    health = probe_while(upload, f"{live_server}/api/v1/health")
    assert result["status"] == 200
    assert float(result["seconds"]) < 15  # type: ignore[arg-type]
    # A blocked event loop answers once, after the whole upload (34 s before the fix); the
    # bound leaves room for a loaded CI machine, not for a stall.
    assert len(health) >= 2 and max(health) < 2.0, health


def test_reads_answer_during_a_large_import(live_server: str, member) -> None:  # type: ignore[no-untyped-def]
    """The import is a job that commits every few hundred rows: the health check and a read
    of the database behind a token answer while it runs (on main: one answer after the
    whole import)."""
    csv = "email,company,last_name\n" + "".join(f"lead{i}@example{i % 97}.co.jp,株式会社{i},山田{i}\n" for i in range(20000))
    response = httpx.post(f"{live_server}/api/v1/imports/leads", files={"file": ("l.csv", csv.encode(), "text/csv")}, data={"mode": "row_by_row"}, headers=member.headers, timeout=120)
    assert response.status_code == 202
    job_url = f"{live_server}{response.headers['location']}"
    seconds: list[float] = []
    statuses = set()
    while (job := httpx.get(job_url, headers=member.headers, timeout=30).json())["status"] in ("queued", "running"):
        statuses.add(job["status"])
        for path in ("/api/v1/health", "/api/v1/leads?limit=5"):
            started = time.monotonic()
            assert httpx.get(f"{live_server}{path}", headers=member.headers, timeout=30).status_code == 200
            seconds.append(time.monotonic() - started)
        time.sleep(0.05)
    assert job["status"] == "done" and job["counts"]["created"] == 20000
    assert "running" in statuses and len(seconds) > 3 and max(seconds) < 1.5, seconds
