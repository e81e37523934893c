"""CSV imports as background jobs (widget_api.import_worker, crm.services.import_jobs):
202 and a job resource, progress while it runs, the error CSV, a runner killed halfway whose
job another run finishes with every row imported exactly once, bad files failing the job
with a clear error, and nobody seeing another organisation's job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm.domain.principal import Principal
from crm.services import csv_import, import_jobs
from crm.store.jobs import ImportJob
from crm.store.models import Lead
from tests.factories import import_csv, make_org, make_user
from widget_api.import_worker import upload_path


def big_csv(rows: int) -> bytes:
    """Every other row has no email (no unique key: only the committed offset keeps a rerun
    from importing it twice)."""
    lines = ["会社名,姓,メールアドレス"]
    for i in range(rows):
        lines.append(f"株式会社テスト{i},姓{i}," + (f"p{i}@import{i % 90}.example" if i % 2 else ""))
    return ("\n".join(lines) + "\n").encode()


def queue_job(runtime, user, data: bytes, **options) -> int:  # type: ignore[no-untyped-def]
    """A job as the upload leaves it, without waking this process's runner."""
    path, relative = upload_path(runtime.settings.data_dir)
    path.write_bytes(data)
    principal = Principal(user.id, user.organisation_id, user.email, "member", "en")
    with runtime.sessions.begin() as s:
        return import_jobs.create(s, principal, filename="l.csv", path=relative, size=len(data), on_duplicate="skip", all_or_nothing=False, mapping={}, **options).id


def job_row(runtime, job_id: int) -> ImportJob:  # type: ignore[no-untyped-def]
    with runtime.read_sessions() as s:
        job = s.get(ImportJob, job_id)
        assert job is not None
        return job


def lead_count(runtime) -> int:  # type: ignore[no-untyped-def]
    with runtime.read_sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Lead)) or 0)


class TestImportJob:
    def test_202_then_progress_while_it_runs_then_the_counts(self, client, member, runtime) -> None:  # type: ignore[no-untyped-def]
        rows = 20000
        response = client.post("/api/v1/imports/leads", files={"file": ("big.csv", big_csv(rows), "text/csv")}, data={"mode": "row_by_row"}, headers=member.headers)
        assert response.status_code == 202
        job = response.json()
        assert job["status"] in ("queued", "running") and job["filename"] == "big.csv" and job["mode"] == "row_by_row"
        seen_midway = []
        while job["status"] in ("queued", "running"):
            job = client.get(f"/api/v1/imports/{job['id']}", headers=member.headers).json()
            total = job["progress"]["rows_total"]
            if job["status"] == "running" and total and 0 < job["progress"]["rows_done"] < total:
                seen_midway.append(job["progress"]["rows_done"])
            time.sleep(0.02)
        assert seen_midway, "no progress seen between the first and the last batch"
        assert job["status"] == "done" and job["committed"] is True and job["error"] is None
        assert job["progress"] == {"rows_done": rows, "rows_total": rows}
        assert job["counts"] == {"created": rows, "updated": 0, "skipped": 0, "errors": 0}
        assert lead_count(runtime) == rows
        assert not list((runtime.settings.data_dir / "imports").iterdir())  # the upload is gone once imported

    def test_the_error_csv_lists_rejected_rows_and_neutralises_formulas(self, client, admin, member) -> None:  # type: ignore[no-untyped-def]
        assert client.post("/api/v1/custom-fields", json={"key": "rank", "label": "=HYPERLINK(\"http://x\")", "type": "text", "required": True}, headers=admin.headers).status_code == 201
        data = "Company,Mail,Rank\nA社,a@a.example,1\nB社,b@b.example,\n,,\n".encode()
        job = import_csv(client, member, data, {"mapping": ["Rank=custom:rank"], "mode": "row_by_row"})
        assert job["counts"] == {"created": 1, "updated": 0, "skipped": 0, "errors": 1}
        lines = job["errors_text"].splitlines()
        assert lines[0] == "line,reason" and lines[1].startswith("3,") and "'=HYPERLINK" in lines[1]

    def test_a_runner_killed_halfway_is_resumed_and_every_row_imported_once(self, runtime, member, database_url: str) -> None:  # type: ignore[no-untyped-def]
        rows = 40000
        job_id = queue_job(runtime, member, big_csv(rows))
        env = {**os.environ, "DATABASE_URL": database_url, "MAILWIDGET_DATA_DIR": str(runtime.settings.data_dir), "MAILWIDGET_IMPORT_LEASE": "2"}
        command = [sys.executable, "-m", "widget_api.cli", "import-jobs"]
        runner = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while not 0 < job_row(runtime, job_id).rows_done < rows // 2:
                assert runner.poll() is None, runner.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
                assert time.monotonic() < deadline
                time.sleep(0.01)
        finally:
            os.kill(runner.pid, signal.SIGKILL)
            runner.wait(30)
        killed = job_row(runtime, job_id)
        assert killed.status == "running" and 0 < killed.rows_done < rows and killed.lease_owner
        assert lead_count(runtime) == killed.created == killed.rows_done  # the offset moved with its leads, no more, no less

        time.sleep(2.5)  # the dead runner's lease expires
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and "1 import job(s) run" in again.stderr, again.stderr[-2000:]
        job = job_row(runtime, job_id)
        assert (job.status, job.rows_done, job.created, job.skipped, job.rejected, job.attempts) == ("done", rows, rows, 0, 0, 2)
        assert lead_count(runtime) == rows
        with runtime.read_sessions() as s:
            twice = s.execute(select(Lead.last_name).group_by(Lead.last_name).having(func.count() > 1)).all()
        assert twice == []

    def test_the_runner_in_a_child_process_imports_the_job(self, runtime, member) -> None:  # type: ignore[no-untyped-def]
        """What `serve` does (MAILWIDGET_IMPORT_IN_SUBPROCESS, the default): a thread of the API
        starts `mailwidget import-jobs` and waits; the import's CPU work is not in the API's process."""
        from widget_api.import_worker import ImportWorker

        job_id = queue_job(runtime, member, big_csv(3000))
        worker = ImportWorker(runtime, 1, poll=0.2, in_subprocess=True)
        worker.start()
        try:
            deadline = time.monotonic() + 120
            while job_row(runtime, job_id).status != "done":
                assert time.monotonic() < deadline, job_row(runtime, job_id).status
                time.sleep(0.1)
        finally:
            worker.stop()
        assert job_row(runtime, job_id).created == lead_count(runtime) == 3000

    def test_a_failing_runner_is_retried_then_the_job_failed_and_the_loop_lives_on(self, runtime, member, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
        job_id = queue_job(runtime, member, big_csv(10))
        monkeypatch.setattr(csv_import.Importer, "batch", lambda *a: 1 / 0)
        for attempt in range(1, import_jobs.MAX_ATTEMPTS + 1):
            assert runtime.import_worker.run_once("test") is True  # no exception escapes
            assert job_row(runtime, job_id).status == ("queued" if attempt < import_jobs.MAX_ATTEMPTS else "failed")
        job = job_row(runtime, job_id)
        assert job.error_code == "import_failed" and job.attempts == import_jobs.MAX_ATTEMPTS
        assert runtime.import_worker.run_once("test") is False  # nothing left to claim

    def test_one_running_import_per_organisation(self, runtime, member) -> None:  # type: ignore[no-untyped-def]
        other = make_user(runtime, make_org(runtime, "Other"), "o@other.example")
        first, second, theirs = queue_job(runtime, member, b"email\na@a.example\n"), queue_job(runtime, member, b"email\nb@b.example\n"), queue_job(runtime, other, b"email\nc@c.example\n")
        with runtime.sessions.begin() as s:
            claimed = [import_jobs.claim(s, f"runner-{i}", 60) for i in range(3)]
        assert [c.id if c else None for c in claimed] == [first, theirs, None]
        assert job_row(runtime, second).status == "queued"


class TestBadFiles:
    def test_a_field_over_the_csv_limit_fails_the_job_with_its_line(self, client, member, runtime) -> None:  # type: ignore[no-untyped-def]
        data = b"email,company\na@a.example,A\nb@b.example," + b"x" * 200_000 + b"\n"
        job = import_csv(client, member, data, {"mode": "row_by_row"})
        assert job["status"] == "failed" and job["error"]["type"] == "bad_csv" and "line" in job["error"]["reason"]
        assert job["counts"]["created"] == 0 and lead_count(runtime) == 0  # the scan refuses it before any row is written

    def test_binary_garbage_fails_the_job_in_the_users_language(self, client, member) -> None:  # type: ignore[no-untyped-def]
        job = import_csv(client, member, os.urandom(4096).replace(b"\n", b"") + b"\x85\x40")
        assert job["status"] == "failed" and job["error"]["type"] in ("bad_encoding", "bad_csv", "no_mapping")
        ja = client.get(f"/api/v1/imports/{job['id']}", params={"lang": "ja"}, headers=member.headers).json()
        assert ja["error"]["detail"] != job["error"]["detail"] and ja["error"]["reason"] == job["error"]["reason"]

    def test_an_upload_over_the_limit_is_413_and_leaves_no_file(self, client, member, runtime, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
        monkeypatch.setattr("widget_api.routes.imports.MAX_BYTES", 10_000)
        response = client.post("/api/v1/imports/leads", files={"file": ("l.csv", b"email\n" + b"a@a.example\n" * 2000, "text/csv")}, headers=member.headers)
        assert response.status_code == 413 and response.json()["type"] == "payload_too_large"
        assert not list(Path(runtime.settings.data_dir, "imports").glob("*"))
        with runtime.read_sessions() as s:
            assert s.scalar(select(func.count()).select_from(ImportJob)) == 0


class TestAccess:
    def test_another_organisations_job_is_404(self, client, member, runtime) -> None:  # type: ignore[no-untyped-def]
        job = import_csv(client, member, b"email\na@a.example\n")
        outsider = make_user(runtime, make_org(runtime, "Other"), "o@other.example")
        for path in (f"/api/v1/imports/{job['id']}", job["errors_csv"]):
            assert client.get(path, headers=outsider.headers).status_code == 404
            assert client.get(path).status_code == 401
        assert client.get(f"/api/v1/imports/{2**40}", headers=member.headers).status_code == 422
