"""`mailwidget inspect` and the admin commands: JSON out, one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.mails import business_mail

MAILWIDGET = [sys.executable, "-m", "widget_api.cli"]


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MAILWIDGET, *args], capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=120)


class TestInspect:
    def test_prints_one_json_object_with_every_lead_field(self, tmp_path: Path) -> None:
        path = tmp_path / "m.eml"
        path.write_bytes(business_mail())
        result = run("inspect", str(path))
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert set(out["lead"]) >= {"first_name", "last_name", "email", "company", "title", "phone", "mobile", "website", "street", "city", "state", "zip_code", "country", "description"}
        assert out["lead"]["email"] == "taro.yamada@example.co.jp"

    def test_not_an_email_is_exit_2_one_line(self, tmp_path: Path) -> None:
        path = tmp_path / "photo.jpg"
        path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" + os.urandom(2000))
        result = run("inspect", str(path))
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and "not an email" in result.stderr and "Traceback" not in result.stderr

    def test_a_missing_file_is_exit_2_one_line(self, tmp_path: Path) -> None:
        result = run("inspect", str(tmp_path / "nope.eml"))
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no such file" in result.stderr

    def test_a_bad_option_is_exit_2(self) -> None:
        assert run("inspect").returncode == 2


class TestAdminCommands:
    def test_org_user_and_token(self, tmp_path: Path) -> None:
        env = {"MAILWIDGET_DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
        env.pop("MAILWIDGET_SECRET_KEY", None)
        created = run("org-create", "Acme", "--admin", "boss@acme.example", env=env)
        assert created.returncode == 0, created.stderr
        assert "token: mw_" in created.stdout
        assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0  # key file readable by its owner only
        again = run("user-add", "boss@acme.example", "--org", "1", env=env)
        assert again.returncode == 2 and "already exists" in again.stderr
        listed = run("users", env=env)
        assert "boss@acme.example" in listed.stdout and "mw_" not in listed.stdout


def test_an_unreachable_database_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    from tests.servers.net import free_port

    for url in (f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"):
        result = run("campaign-show", "1", "--user", "a@acme.example", "--org", "1", env={"MAILWIDGET_DATA_DIR": str(tmp_path), "DATABASE_URL": url})
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1].startswith("mailwidget campaign-show: the database is unavailable (")
        assert "Traceback" not in result.stderr
