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


# The libraries a command must not pay for unless it needs them.
HEAVY = ("fastapi", "starlette", "sqlalchemy", "alembic", "imapclient", "widget_api.main")
LOADED = "import sys, runpy; sys.argv = ['mailwidget', *{args!r}]\ntry:\n    runpy.run_module('widget_api.cli', run_name='__main__')\nexcept SystemExit:\n    pass\nprint('LOADED', ' '.join(m for m in {heavy!r} if m in sys.modules))"


def loaded_heavy(*args: str, env: dict[str, str] | None = None) -> list[str]:
    code = LOADED.format(args=list(args), heavy=HEAVY)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("LOADED"), result.stdout + result.stderr
    return last.split()[1:]


class TestStartup:
    """Every command imports what it needs when it runs, so `--help` and `inspect` answer fast."""

    def test_help_imports_no_framework(self) -> None:
        assert loaded_heavy("--help") == []

    def test_inspect_imports_no_framework_nor_imap(self, tmp_path: Path) -> None:
        path = tmp_path / "m.eml"
        path.write_bytes(business_mail())
        assert loaded_heavy("inspect", str(path)) == []

    def test_the_probe_sees_a_command_that_does_load_them(self) -> None:
        # guards the test above: the same probe does report SQLAlchemy for a database command
        assert "sqlalchemy" in loaded_heavy("users", "--help")

    def test_a_database_command_imports_no_web_framework(self, tmp_path: Path) -> None:
        env = {"MAILWIDGET_DATA_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}
        loaded = loaded_heavy("users", env=env)
        assert "sqlalchemy" in loaded and not {"fastapi", "starlette", "widget_api.main"} & set(loaded)

    def test_the_command_table_matches_what_each_module_registers(self) -> None:
        import argparse
        import importlib

        from widget_api.cli import COMMANDS

        registered: dict[str, tuple[str, str]] = {}
        for module in sorted({m for m, _ in COMMANDS.values()}):
            sub = argparse.ArgumentParser().add_subparsers()
            importlib.import_module(f"widget_api.cli.{module}").register(sub)
            registered |= {a.dest: (module, a.help) for a in sub._choices_actions}
        assert registered == COMMANDS


def test_a_server_bound_to_loopback_allows_the_local_mail_server() -> None:
    from widget_api.cli.serve import loopback_only

    assert all(loopback_only(h) for h in ("127.0.0.1", "::1", "localhost", "127.0.0.2"))
    assert not any(loopback_only(h) for h in ("0.0.0.0", "::", "192.168.1.5", "mail.example.com"))
