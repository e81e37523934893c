"""PostgreSQL for the tests: a throwaway cluster (initdb into a temporary directory, the
server on a free loopback port), or a server named by DATABASE_URL. Either way tests get
databases of their own through `create_database()`.

The cluster runs the `postgres` binary directly rather than through `pg_ctl`, which
daemonizes it: as our child it can be given a parent-death signal, so a killed test run
leaves no server behind. PostgreSQL refuses to run as root; as root it runs as `postgres`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from tests.servers.net import die_with_parent, free_port, scratch_dir

# Durability is pointless for a throwaway cluster; a fast start and fast commits are not.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "32MB",
    "logging_collector": "off",
}


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian keeps them versioned)."""
    versions = sorted(
        (int(p.parent.name), p)
        for p in Path("/usr/lib/postgresql").glob("*/bin")
        if p.parent.name.isdigit() and (p / "initdb").exists()
    )
    if versions:
        return versions[-1][1]
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _quote(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise ValueError(f"database name {name!r}: letters, digits and _ only")
    return f'"{name}"'


class PostgresCluster:
    """`with PostgresCluster() as pg: url = pg.create_database("x")`."""

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.settings = {**SERVER_SETTINGS, **(settings or {})}
        self.bin = pg_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (scripts/test-deps.sh installs it)")
        self.user = "postgres" if os.geteuid() == 0 else None
        self.dir = scratch_dir("mailwidget-pg-")
        self.data = self.dir / "data"
        self.log_file = self.dir / "postgres.log"
        self.host = "127.0.0.1"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> PostgresCluster:
        if self.user:
            shutil.chown(self.dir, self.user, self.user)
        assert self.bin is not None
        try:
            subprocess.run(
                [
                    *die_with_parent("KILL", self.user),
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",
                    "--no-instructions",
                ],
                check=True,
                capture_output=True,
                timeout=120,
                cwd=self.dir,
            )
            for _attempt in range(3):  # the free port may be taken before the server binds it
                if self._launch():
                    return self
            raise RuntimeError(f"postgres did not start: {self.log()[-2000:]}")
        except BaseException:
            self.stop()
            raise

    def _launch(self, port: int | None = None) -> bool:
        assert self.bin is not None
        self.port = port or free_port()
        options = [
            f"--{key}={value}"
            for key, value in {
                **self.settings,
                "port": str(self.port),
                "unix_socket_directories": str(self.dir),
            }.items()
        ]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [*die_with_parent("QUIT", self.user), str(self.bin / "postgres"), "-D", str(self.data), *options],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.dir,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                time.sleep(0.02)
        raise RuntimeError(f"postgres did not accept connections in 60 s: {self.log()[-2000:]}")

    def dsn(self, database: str) -> str:
        return f"host={self.host} port={self.port} user=postgres dbname={database}"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database (uniquely named unless `name` is given); its SQLAlchemy URL."""
        name = name or unique_name()
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {_quote(name)}")
        return self.url(name)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def halt(self) -> None:
        """The server goes away as in an operator's restart: a fast shutdown cuts every
        connection and keeps what was committed (this cluster runs with synchronous_commit
        off, so an immediate shutdown could lose the last commits). The files stay, so
        `resume()` brings the same databases back on the same port."""
        self._shut_down(signal.SIGINT)

    def resume(self) -> None:
        """Start the halted server again on its old port (clients reconnect to the same URL)."""
        if not self._launch(self.port):
            raise RuntimeError(f"postgres did not restart: {self.log()[-2000:]}")

    def stop(self) -> None:
        """Immediate shutdown (nothing here is worth a checkpoint), then delete the files."""
        self._shut_down()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _shut_down(self, how: signal.Signals = signal.SIGQUIT) -> None:
        if self.process is not None:
            group = self.process.pid
            try:
                os.killpg(group, how)
                self.process.wait(20)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(group, signal.SIGKILL)
                self.process.wait(5)
            self.process = None


class ExternalPostgres:
    """DATABASE_URL names a server already: databases are created in it, and dropped at the end."""

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        self.server = make_url(url).set(drivername="postgresql+psycopg")
        self.created: list[str] = []

    def _admin(self) -> psycopg.Connection[Any]:
        url = self.server
        return psycopg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            dbname=url.database or "postgres",
            autocommit=True,
        )

    def create_database(self, name: str | None = None) -> str:
        name = name or unique_name()
        with self._admin() as conn:
            conn.execute(f"CREATE DATABASE {_quote(name)}")
        self.created.append(name)
        return self.server.set(database=name).render_as_string(hide_password=False)

    def stop(self) -> None:
        if not self.created:
            return
        with self._admin() as conn:
            for name in self.created:
                conn.execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")
        self.created.clear()


def postgres_from_environment() -> ExternalPostgres | None:
    url = os.environ.get("DATABASE_URL", "")
    return ExternalPostgres(url) if url.startswith(("postgres://", "postgresql")) else None


def bench_databases(choice: str, name: str) -> Iterator[tuple[str, str]]:
    """(label, URL) of each database a benchmark runs on (`--db sqlite|postgres|both`): a
    SQLite file in a fresh directory, then a database on a throwaway cluster with
    PostgreSQL's default 128 MB of shared buffers (the test clusters' 32 MB is a memory
    saving for parallel tests), stopped when the caller is done with it."""
    if choice in ("sqlite", "both"):
        yield "SQLite", f"sqlite:///{Path(tempfile.mkdtemp()) / f'{name}.db'}"
    if choice in ("postgres", "both"):
        cluster = PostgresCluster({"shared_buffers": "128MB"}).start()
        try:
            yield "PostgreSQL", cluster.create_database(name)
        finally:
            cluster.stop()
