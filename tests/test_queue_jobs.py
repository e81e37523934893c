"""The other kinds of job on the queue (widget_api.queue), with real `mailwidget worker`
processes on PostgreSQL: a CSV import (`run_imports`), the outbox's sender (`send_outbox`,
against a real SMTP server on loopback) and a series expansion (`expand_series`) are each
done exactly once when the worker running them is SIGKILLed mid-job and another takes over
(the job put back by `retry_stalled_jobs`, counted rows and received Message-IDs); and a
worker whose job runs past MAILWIDGET_QUEUE_SHUTDOWN_SECONDS exits soon after SIGTERM,
its job left to another worker, never run twice at once.

These tests need PostgreSQL (the `postgres_cluster` fixture skips without its binaries)."""

from __future__ import annotations

import email
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import procrastinate
import pytest
from cryptography.fernet import Fernet

from crm.domain.ports import CalendarObject
from crm.domain.principal import Principal
from crm.services import calendar, outbox
from mail_adapter.invites import read_invites
from tests.factories import make_org, make_user
from tests.servers.queue_stack import Stack, conninfo
from tests.servers.smtp import SmtpSink
from tests.test_import_jobs import big_csv, queue_job
from tests.test_outbox import configure, mail
from widget_api import queue
from widget_api.config import Settings
from widget_api.runtime import Runtime


@pytest.fixture()
def runtime_on(stack: Stack, tmp_path: Path) -> Iterator[Runtime]:
    """This process's runtime on the stack's database, with the key its workers get."""
    key = Fernet.generate_key().decode()
    stack.env["MAILWIDGET_SECRET_KEY"] = key
    runtime = Runtime.build(Settings(database_url=stack.url, secret_keys=[key], data_dir=tmp_path, allow_private_hosts=True))
    try:
        yield runtime
    finally:
        runtime.close()


def defer(stack: Stack, task: str, **kwargs: object) -> int:
    """A job deferred as an API process would (by name, on the stack's database)."""
    app = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=conninfo(stack.url), min_size=0, max_size=1))
    with app.open():
        return app.configure_task(task, queue=queue.app.tasks[task].queue).defer(**kwargs)


def kill(worker: subprocess.Popen[str]) -> None:
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)


def wait_until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def put_back(job_id: int, task: str) -> str:
    return f"job {job_id} ({task}) of a stopped worker put back"


def test_an_import_killed_mid_job_is_finished_by_another_worker_every_row_once(stack: Stack, runtime_on: Runtime) -> None:
    rows = 20000
    member = make_user(runtime_on, make_org(runtime_on, "Import Co"), "rep@import.example")
    import_id = queue_job(runtime_on, member, big_csv(rows))
    # The killed runner's claim on the import outlasts its heartbeat: the job put back after
    # 3 s finds the import still leased, and a pass is deferred for when the lease ends.
    lease = 6
    env = {"MAILWIDGET_IMPORT_LEASE": str(lease)}
    first = stack.start_worker(env=env)
    first_id = stack.worker_id(first)
    defer(stack, "run_imports")  # as an upload does (the worker's minutely pass may take it first)
    job = stack.running_job("run_imports", first_id)
    wait_until(lambda: stack.sql("SELECT rows_done FROM import_jobs WHERE id = %s", import_id)[0][0] > 0, 20, "no batch committed")
    kill(first)
    killed = time.monotonic()
    done_at_kill = stack.sql("SELECT rows_done FROM import_jobs WHERE id = %s", import_id)[0][0]
    assert 0 < done_at_kill < rows, "killed too late to be mid-job"

    second = stack.start_worker(env=env)
    stack.wait_for_log(second, put_back(job, "run_imports"))
    resumed = lambda: stack.sql("SELECT attempts FROM import_jobs WHERE id = %s", import_id)[0][0] == 2  # noqa: E731
    wait_until(resumed, lease + 10, "the import was not resumed once its lease ended (only the minutely pass would)")
    assert time.monotonic() - killed > lease - 1  # not before: the dead runner's lease held it
    wait_until(lambda: stack.sql("SELECT status FROM import_jobs WHERE id = %s", import_id)[0][0] == "done", 30, "the import never finished")
    assert stack.sql("SELECT rows_done, created, attempts FROM import_jobs WHERE id = %s", import_id) == [(rows, rows, 2)]
    assert stack.sql("SELECT count(*), count(DISTINCT last_name) FROM leads") == [(rows, rows)]  # every row once (half have no email to dedupe on)


def test_an_outbox_pass_killed_mid_send_is_finished_by_another_worker_no_mail_twice(stack: Stack, runtime_on: Runtime, smtp_sink: SmtpSink) -> None:
    mails = 8
    org = make_org(runtime_on, "Mail Co")
    configure(runtime_on, org.id, port=smtp_sink.port)
    with runtime_on.sessions.begin() as s:
        for i in range(mails):
            outbox.enqueue(s, organisation_id=org.id, **mail(to_address=f"p{i}@example.jp"))  # type: ignore[arg-type]
    smtp_sink.delay = 0.5  # each mail takes half a second to be accepted
    first = stack.start_worker(send_interval=1)
    first_id = stack.worker_id(first)
    job = stack.running_job("send_outbox", first_id)
    wait_until(lambda: len(smtp_sink.received) >= 3, 20, "the first worker sent nothing")
    kill(first)  # the third mail received, its 250 not yet answered
    received_at_kill = len(smtp_sink.received)
    assert received_at_kill < mails

    second = stack.start_worker(send_interval=1)
    stack.wait_for_log(second, put_back(job, "send_outbox"))
    wait_until(lambda: len(smtp_sink.received) >= mails, 30, f"{len(smtp_sink.received)} of {mails} received")
    time.sleep(2)  # further passes of the second worker: they must send nothing again
    ids = Counter(email.message_from_bytes(m.data)["Message-ID"] for m in smtp_sink.received)
    stored = dict(stack.sql("SELECT message_id, status FROM outbox"))
    assert set(ids) == set(stored) and set(ids.values()) == {1}, ids
    # A mail on the wire at the kill was received; its sender never recorded it, so it stays
    # "sending" (later "unconfirmed"), never sent a second time. Every other one is "sent".
    # (One per pass that ran at the kill: the periodic passes may overlap, as senders may.)
    before_kill = {email.message_from_bytes(m.data)["Message-ID"] for m in smtp_sink.received[:received_at_kill]}
    cut = {mid for mid, status in stored.items() if status == "sending"}
    assert cut and cut <= before_kill and set(stored.values()) == {"sending", "sent"}, stored


def _series(uid: str) -> bytes:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nSEQUENCE:0\r\nDTSTAMP:20260301T000000Z\r\nDTSTART:20260316T090000Z\r\nDTEND:20260316T093000Z\r\nRRULE:FREQ=DAILY;COUNT=1000\r\n"
        "ORGANIZER:mailto:o@customer.example\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:rep@series.example\r\nSUMMARY:standup\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    ).encode()


def test_a_series_expansion_killed_mid_job_is_redone_by_another_worker_each_occurrence_once(stack: Stack, runtime_on: Runtime) -> None:
    series, count = 30, 1000
    user = make_user(runtime_on, make_org(runtime_on, "Series Co"), "rep@series.example")
    principal = Principal(user.id, user.organisation_id, user.email)
    with runtime_on.sessions.begin() as s:
        for i in range(series):
            calendar.answer(s, principal, read_invites([CalendarObject(_series(f"s{i}"))])[0][0], "ACCEPTED")
    assert stack.sql("SELECT count(*) FROM calendar_events WHERE expanded") == [(0,)]
    first = stack.start_worker()
    first_id = stack.worker_id(first)
    job = defer(stack, "expand_series", user_id=user.id)
    assert stack.running_job("expand_series", first_id) == job
    time.sleep(1)  # well into its transaction (a few seconds long)
    kill(first)
    assert stack.sql("SELECT count(*) FROM event_occurrences") == [(0,)], "killed too late to be mid-job"

    second = stack.start_worker()
    stack.wait_for_log(second, put_back(job, "expand_series"))
    wait_until(lambda: stack.sql("SELECT count(*) FROM procrastinate_jobs WHERE id = %s", job) == [(0,)], 30, "the job never succeeded")  # succeeded jobs are deleted
    assert stack.sql("SELECT count(*), count(DISTINCT (uid, sort_utc)) FROM event_occurrences") == [(series * count, series * count)]
    assert stack.sql("SELECT count(*) FROM calendar_events WHERE NOT expanded") == [(0,)]


@pytest.mark.parametrize("process", ["worker", "serve"])
def test_a_job_running_past_the_shutdown_grace_is_left_to_another_worker_and_run_once(stack: Stack, runtime_on: Runtime, smtp_sink: SmtpSink, process: str) -> None:
    """SIGTERM while a synchronous job (a send to a server slower than the grace period)
    cannot finish: the worker (a `mailwidget worker`, or the thread of a single `serve`)
    exits soon after the grace period, its job is never put back while it still runs it,
    and another worker retries it once it is gone."""
    grace = 2.0
    org = make_org(runtime_on, "Slow Co")
    configure(runtime_on, org.id, port=smtp_sink.port)
    with runtime_on.sessions.begin() as s:
        outbox.enqueue(s, organisation_id=org.id, **mail(to_address="first@example.jp"))  # type: ignore[arg-type]
    smtp_sink.delay = 20  # the 250 comes long after the grace period
    start = stack.start_worker if process == "worker" else stack.start_serve
    first = start(send_interval=1, env={"MAILWIDGET_QUEUE_SHUTDOWN_SECONDS": str(grace)})
    first_id = stack.worker_id(first)
    second = stack.start_worker(send_interval=3600)
    stack.worker_id(second)
    job = stack.running_job("send_outbox", first_id)
    wait_until(lambda: len(smtp_sink.received) == 1, 20, "the first worker sent nothing")
    smtp_sink.delay = 0  # that one waits its 20 s; the next ones are answered at once
    first.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    with runtime_on.sessions.begin() as s:  # arrives meanwhile: the stopping worker takes no new job
        outbox.enqueue(s, organisation_id=org.id, **mail(to_address="second@example.jp"))  # type: ignore[arg-type]
    while first.poll() is None:
        # Until the first worker is gone, its job stays its own (never run twice at once).
        assert stack.sql("SELECT status::text, worker_id FROM procrastinate_jobs WHERE id = %s", job) == [("doing", first_id)], stack.log(second)
        assert time.monotonic() - stopped < grace + 4, "still running well past the grace period: " + stack.log(first)
        time.sleep(0.05)
    assert first.returncode == 0, stack.log(first)
    assert "left to be retried elsewhere" in stack.log(first)

    stack.wait_for_log(second, put_back(job, "send_outbox"))
    wait_until(lambda: stack.sql("SELECT count(*) FROM procrastinate_jobs WHERE id = %s", job) == [(0,)], 20, "the retried job never succeeded")
    wait_until(lambda: len(smtp_sink.received) == 2, 20, "the mail queued meanwhile was not sent")
    time.sleep(1)
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.received) == ["first@example.jp", "second@example.jp"]  # each once
    assert dict(stack.sql("SELECT to_address, status FROM outbox")) == {"first@example.jp": "sending", "second@example.jp": "sent"}  # the cut one: never resent


def test_an_upload_through_an_api_process_is_run_by_a_worker_at_once(stack: Stack) -> None:
    """`serve --workers 2` runs no worker: its upload defers `run_imports` through its own
    small pool, on the task's queue (a job in any other queue would wait for ever), and a
    worker imports it within seconds, not at its next minutely pass."""
    stack.start_api()
    worker = stack.start_worker()
    stack.worker_id(worker)
    rows = b"email,name\n" + b"".join(f"u{i}@buyer{i}.example,U {i}\n".encode() for i in range(50))
    with stack.http() as c:
        job = c.post("/api/v1/imports/leads", files={"file": ("leads.csv", rows, "text/csv")}, data={"mode": "row_by_row"})
        assert job.status_code == 202, job.text
        wait_until(lambda: c.get(f"/api/v1/imports/{job.json()['id']}").json()["status"] == "done", 10, "not imported within 10 s")
    assert stack.sql("SELECT count(*) FROM leads") == [(50,)]
    assert stack.sql("SELECT queue_name, task_name FROM procrastinate_jobs WHERE NOT queue_name = ANY(%s)", list(queue.QUEUES)) == []
