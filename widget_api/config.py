"""Settings, read from the environment once at start-up and passed down (lower layers
never read the environment themselves)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from widget_api.rate_limits import DEFAULT_LIMITS, parse_limits

DEFAULT_DATA_DIR = Path("var")
# The extension's gecko id (manifest.json). Its identity API redirects the pairing to
# https://<sha1 of this id>.extensions.allizom.org/, a URL no web site can serve: the
# browser stops the request there and hands its URL to the extension.
EXTENSION_ID = "crm-mail-widget@mailwidget.example"
EXTENSION_REDIRECT_URI = f"https://{hashlib.sha1(EXTENSION_ID.encode()).hexdigest()}.extensions.allizom.org/"


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_keys: list[str] = field(repr=False)
    cors_origins: list[str] = field(default_factory=list)
    imap_ca_file: str | None = None
    pool_size: int = 64
    data_dir: Path = DEFAULT_DATA_DIR
    # Where the widget may be sent back to with a pairing code (the extension's own URI).
    redirect_uris: tuple[str, ...] = (EXTENSION_REDIRECT_URI,)
    # The admin's CRM page of a lead, with {id}; None: the backend's own lead page.
    lead_url: str | None = None
    # Mail servers the users name are reached from this server: by default only public
    # addresses, so the mailbox test is no scanner of the local network. An admin whose mail
    # server is on the LAN (or the tests' Dovecot on 127.0.0.1) allows them.
    allow_private_hosts: bool = False
    # A host that never answers must not hold a worker thread for long, nor many of them.
    connect_timeout: float = 5.0
    connection_tests_per_org: int = 2
    # Requests a minute per token on the expensive endpoints (widget_api.rate_limits).
    rate_limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    # "text" or "json" (one JSON object per line, with the request id): widget_api.logs.
    log_format: str = "text"
    # Background import jobs: runner threads per process, and the seconds a job stays
    # claimed without a sign of life from its runner (renewed at every batch).
    import_workers: int = 2
    import_lease: float = 60.0
    # Each runner thread starts `mailwidget import-jobs` as a child process and waits for it
    # (an import's CPU work never competes with requests for the GIL); off: in the thread.
    import_in_subprocess: bool = False
    # A mailbox scan's lease (widget_api.mailbox_scan), renewed every third of it while the
    # scan runs: a worker SIGKILLed mid-scan holds its mailboxes this long at most.
    scan_lease_seconds: float = 60.0
    # IMAP IDLE connections a worker holds (two per mailbox: INBOX and Junk); mailboxes
    # beyond are polled only (widget_api.idle_watch). 0 turns IDLE off.
    idle_max_connections: int = 50
    # Seconds a SQLite write waits for another writer's lock before the API answers 503.
    sqlite_busy_timeout: float = 30.0
    # The job queue (widget_api.queue, PostgreSQL only): on, background work runs as
    # procrastinate jobs in `mailwidget worker` processes (or a thread of a single `serve`);
    # off, in the process's own loops (the embedded mode). from_env turns it on for
    # PostgreSQL; built directly (tests), Settings keep the in-process loops.
    job_queue: bool = False
    # Jobs a worker runs at once (each a thread: IMAP and SMTP wait, they do not compute).
    queue_concurrency: int = 4
    # Seconds between a worker's heartbeats; three missed and its running jobs are retried.
    queue_heartbeat: float = 10.0
    # Seconds a stopping worker (SIGTERM) waits for its running jobs before it exits.
    queue_shutdown_seconds: float = 30.0
    # Megabytes of drafts already read kept per process (mail_adapter.opened_cache): a
    # message opened again skips its FETCH, parsing and extraction. 0 turns it off.
    draft_cache_mb: float = 64.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """DATABASE_URL (default: SQLite in ./var), MAILWIDGET_SECRET_KEY (comma-separated Fernet
        keys, newest first) or MAILWIDGET_SECRET_KEY_FILE, MAILWIDGET_CORS_ORIGINS
        (comma-separated), MAILWIDGET_IMAP_CA_FILE (an extra CA bundle for IMAP TLS),
        MAILWIDGET_POOL_SIZE, MAILWIDGET_DATA_DIR, MAILWIDGET_LEAD_URL (the CRM's lead page,
        with {id}), MAILWIDGET_REDIRECT_URIS (extra pairing redirect URIs, comma-separated),
        MAILWIDGET_ALLOW_PRIVATE_HOSTS (1: mail servers on loopback/private addresses),
        MAILWIDGET_CONNECT_TIMEOUT (seconds), MAILWIDGET_CONNECTION_TESTS_PER_ORG,
        MAILWIDGET_RATE_LIMITS (per token and minute: upload=30,import=5,mailbox_test=10),
        MAILWIDGET_LOG_FORMAT (text or json), MAILWIDGET_IMPORT_WORKERS (threads),
        MAILWIDGET_IMPORT_LEASE (seconds), MAILWIDGET_IMPORT_IN_SUBPROCESS (default 1; 0:
        imports run in the API process's threads), MAILWIDGET_SCAN_LEASE_SECONDS,
        MAILWIDGET_IDLE_MAX_CONNECTIONS (0: no IMAP IDLE, polling only),
        MAILWIDGET_SQLITE_BUSY_TIMEOUT (seconds), MAILWIDGET_JOB_QUEUE (default 1 on PostgreSQL;
        0: in-process loops as on SQLite), MAILWIDGET_QUEUE_CONCURRENCY,
        MAILWIDGET_QUEUE_HEARTBEAT (seconds), MAILWIDGET_QUEUE_SHUTDOWN_SECONDS,
        MAILWIDGET_DRAFT_CACHE_MB (drafts kept per process; 0: none)."""
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("MAILWIDGET_DATA_DIR", str(DEFAULT_DATA_DIR)))
        url = env.get("DATABASE_URL") or f"sqlite:///{(data_dir / 'mailwidget.db').resolve()}"
        keys = env.get("MAILWIDGET_SECRET_KEY", "")
        key_file = env.get("MAILWIDGET_SECRET_KEY_FILE")
        if not keys and key_file and Path(key_file).exists():
            keys = Path(key_file).read_text().strip()
        return cls(
            database_url=url,
            secret_keys=[k.strip() for k in keys.split(",") if k.strip()],
            cors_origins=[o.strip() for o in env.get("MAILWIDGET_CORS_ORIGINS", "").split(",") if o.strip()],
            imap_ca_file=env.get("MAILWIDGET_IMAP_CA_FILE") or None,
            pool_size=int(env.get("MAILWIDGET_POOL_SIZE", "64")),
            data_dir=data_dir,
            redirect_uris=(EXTENSION_REDIRECT_URI, *[u.strip() for u in env.get("MAILWIDGET_REDIRECT_URIS", "").split(",") if u.strip()]),
            lead_url=env.get("MAILWIDGET_LEAD_URL") or None,
            allow_private_hosts=env.get("MAILWIDGET_ALLOW_PRIVATE_HOSTS", "").lower() in ("1", "true", "yes"),
            connect_timeout=float(env.get("MAILWIDGET_CONNECT_TIMEOUT", "5")),
            connection_tests_per_org=int(env.get("MAILWIDGET_CONNECTION_TESTS_PER_ORG", "2")),
            rate_limits=parse_limits(env.get("MAILWIDGET_RATE_LIMITS", "")),
            log_format=_log_format(env.get("MAILWIDGET_LOG_FORMAT", "text")),
            import_workers=max(1, int(env.get("MAILWIDGET_IMPORT_WORKERS", "2"))),
            import_lease=float(env.get("MAILWIDGET_IMPORT_LEASE", "60")),
            import_in_subprocess=env.get("MAILWIDGET_IMPORT_IN_SUBPROCESS", "1").lower() not in ("0", "false", "no"),
            scan_lease_seconds=float(env.get("MAILWIDGET_SCAN_LEASE_SECONDS", "60")),
            idle_max_connections=int(env.get("MAILWIDGET_IDLE_MAX_CONNECTIONS", "50")),
            sqlite_busy_timeout=float(env.get("MAILWIDGET_SQLITE_BUSY_TIMEOUT", "30")),
            job_queue=url.startswith("postgresql") and env.get("MAILWIDGET_JOB_QUEUE", "1").lower() not in ("0", "false", "no"),
            queue_concurrency=max(1, int(env.get("MAILWIDGET_QUEUE_CONCURRENCY", "4"))),
            queue_heartbeat=max(0.5, float(env.get("MAILWIDGET_QUEUE_HEARTBEAT", "10"))),
            queue_shutdown_seconds=float(env.get("MAILWIDGET_QUEUE_SHUTDOWN_SECONDS", "30")),
            draft_cache_mb=max(0.0, float(env.get("MAILWIDGET_DRAFT_CACHE_MB", "64"))),
        )


def _log_format(value: str) -> str:
    value = value.strip().lower() or "text"
    if value not in ("text", "json"):
        raise ValueError(f"MAILWIDGET_LOG_FORMAT must be text or json, not {value!r}")
    return value
