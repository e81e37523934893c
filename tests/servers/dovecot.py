"""A real Dovecot IMAP server from a throwaway configuration.

Plain IMAP (with STARTTLS) and implicit-TLS listeners on free loopback ports, passwd-file
users, maildir under a temporary directory, SPECIAL-USE folders (Drafts, Sent, Trash, Junk)
created and subscribed on first login. Variants:

- `remove_capabilities=("MOVE",)` etc.: clients reach Dovecot through a `CapabilityFilter`,
  so the extension is neither advertised nor accepted (Dovecot's `imap_capability` would
  only hide it from the list);
- `junk_name="迷惑メール", special_use=False`: the spam folder has another name and no
  `\\Junk` flag, as on servers that predate RFC 6154;
- `separator="."`: the hierarchy delimiter of Courier-style servers ("Customers.Acme"),
  where a client's display path ("/Customers/Acme") is not the server's name.

XOAUTH2 is not offered: Dovecot's oauth2 passdb needs a token introspection server, and
the adapter's OAuth path is tested without IMAP.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import os
import pwd
import re
import shutil
import signal
import ssl
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

from tests.servers.net import die_with_parent, free_port, scratch_dir, wait_for_port
from tests.servers.proxy import CapabilityFilter

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")


@dataclass(frozen=True)
class ImapUser:
    """A mailbox on a test server: everything a client needs to log in."""

    name: str
    password: str
    host: str
    port: int
    tls_port: int
    ca_file: str = ""


@functools.cache
def dovecot_version() -> tuple[int, int]:
    out = subprocess.run([DOVECOT, "--version"], capture_output=True, text=True, check=True).stdout
    major, minor = re.match(r"(\d+)\.(\d+)", out).groups()  # type: ignore[union-attr]
    return int(major), int(minor)


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate it signed for localhost and 127.0.0.1.

    Two certificates rather than one self-signed: strict verifiers (Python 3.13's default
    context sets VERIFY_X509_STRICT) refuse a leaf that is its own CA. Returns (ca, cert, key).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailwidget test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].chmod(0o600)  # Dovecot's config process reads it as root
    return paths


class Dovecot:
    """One Dovecot master and its helpers, in a process group of their own.

    `port` / `tls_port` are what clients use (the filter's, for a variant); the processes
    die with the test process even if it is killed without teardown (see `die_with_parent`).
    """

    def __init__(
        self, *, remove_capabilities: tuple[str, ...] = (), junk_name: str = "Junk", special_use: bool = True, mail_format: str = "maildir",
        oauth2_url: str | None = None, separator: str = "/",
    ) -> None:
        # oauth2_url: an RFC 7662 token introspection endpoint; with it Dovecot also accepts
        # XOAUTH2 / OAUTHBEARER logins whose token that endpoint declares active.
        self.oauth2_url = oauth2_url
        # "maildir" (the tests write into it directly) or "sdbox" (Dovecot's own format: its
        # index stays cheap to sync on large folders; the benchmarks use it).
        self.mail_format = mail_format
        self.remove_capabilities = remove_capabilities
        self.junk_name = junk_name
        self.special_use = special_use
        self.separator = separator
        self.host = "127.0.0.1"
        self.dir = scratch_dir("mailwidget-dovecot-")
        self.dir.chmod(0o755)  # the auth and mail processes run as the dovecot user
        self.ca_file = str(self.dir / "ca.pem")
        self.cert_file = str(self.dir / "cert.pem")
        self.log_file = self.dir / "dovecot.log"
        self.users: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.filter: CapabilityFilter | None = None
        self.dovecot_port = self.port = 0
        self.dovecot_tls_port = self.tls_port = 0
        owner = pwd.getpwnam("dovecot") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
        self.uid, self.gid = owner.pw_uid, owner.pw_gid

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> Dovecot:
        make_certificates(self.dir)
        (self.dir / "users").mkdir(exist_ok=True)
        (self.dir / "mail").mkdir(exist_ok=True)
        os.chown(self.dir / "mail", self.uid, self.gid)
        for attempt in range(3):  # a free port can be taken by someone else before we bind it
            self.dovecot_port, self.dovecot_tls_port = free_port(), free_port()
            (self.dir / "dovecot.conf").write_text(self.config())
            self.process = subprocess.Popen(
                [*die_with_parent("TERM"), DOVECOT, "-F", "-c", str(self.dir / "dovecot.conf")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                for port in (self.dovecot_port, self.dovecot_tls_port):
                    wait_for_port(
                        port, what="dovecot", alive=lambda: self.process is not None and self.process.poll() is None
                    )
                break
            except RuntimeError as error:
                self._kill()
                if attempt == 2:
                    shutil.rmtree(self.dir, ignore_errors=True)
                    raise RuntimeError(f"{error}; log: {self.log()[-2000:]}") from None
        self.port, self.tls_port = self.dovecot_port, self.dovecot_tls_port
        if self.remove_capabilities:
            self.filter = CapabilityFilter(
                self.dovecot_port, self.remove_capabilities, tls_context=self.server_ssl_context()
            )
            self.port, self.tls_port = self.filter.port, self.filter.tls_port
        return self

    def stop(self) -> None:
        """Stop every Dovecot process of this server and delete its files."""
        if self.filter is not None:
            self.filter.close()
            self.filter = None
        self._kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _kill(self) -> None:
        if self.process is None:
            return
        group = self.process.pid
        try:
            os.killpg(group, signal.SIGTERM)
            self.process.wait(10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait(5)
        # The master waits for its children, but an imap process may be ending a session.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(group, signal.SIGKILL if time.monotonic() > deadline - 2 else 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        self.process = None

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def config(self) -> str:
        junk_flag = "special_use = \\Junk" if self.special_use else ""
        mailboxes = "".join(
            f'  mailbox "{name}" {{\n    {flag}\n    auto = subscribe\n  }}\n'
            for name, flag in (
                ("Drafts", "special_use = \\Drafts"),
                ("Sent", "special_use = \\Sent"),
                ("Trash", "special_use = \\Trash"),
                (self.junk_name, junk_flag),
            )
        )
        root_only = "default_login_user = dovenull\ndefault_internal_user = dovecot\n" if os.geteuid() == 0 else ""
        d = self.dir
        if dovecot_version() >= (2, 4):
            # Written from the 2.4 documentation; this machine runs 2.3, so it is untested here.
            return f"""dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
{root_only}ssl = yes
ssl_server_cert_file = {d}/cert.pem
ssl_server_key_file = {d}/key.pem
auth_allow_cleartext = yes
auth_failure_delay = 0
auth_mechanisms = plain login
first_valid_uid = 1
mail_uid = {self.uid}
mail_gid = {self.gid}
mail_home = {d}/mail/%{{user}}
mail_driver = maildir
mail_path = ~
passdb passwd-file {{
  passwd_file_path = {d}/users/%{{user}}
}}
userdb static {{
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    listen = 127.0.0.1
    port = {self.dovecot_port}
  }}
  inet_listener imaps {{
    listen = 127.0.0.1
    port = {self.dovecot_tls_port}
    ssl = yes
  }}
}}
namespace inbox {{
  inbox = yes
  separator = {self.separator}
{mailboxes}}}
"""
        # Mail lives directly in the home (maildir:~): bench/spam.py writes into
        # <dir>/mail/<user>/.Junk the way an MTA would deliver it (see maildir()).
        oauth_mechanisms, oauth_passdb = "", ""
        if self.oauth2_url:
            (self.dir / "oauth2.conf").write_text(
                f"introspection_mode = post\nintrospection_url = {self.oauth2_url}\nusername_attribute = username\n"
                "active_attribute = active\nactive_value = true\n"
            )
            oauth_mechanisms = " xoauth2 oauthbearer"
            oauth_passdb = f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {d}/oauth2.conf\n}}\n"
        return f"""base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
{root_only}ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login{oauth_mechanisms}
first_valid_uid = 1
mail_location = {self.mail_format}:~
passdb {{
  driver = passwd-file
  args = username_format=%u {d}/users/%u
}}
{oauth_passdb}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={d}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.dovecot_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.dovecot_tls_port}
    ssl = yes
  }}
}}
# No auth penalty: a test of a wrong password would slow every later login from
# 127.0.0.1 by up to 15 s (anvil tracks failures per IP). With the socket unreachable the
# auth process turns the penalty off.
auth_failure_delay = 0
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
namespace inbox {{
  inbox = yes
  separator = {self.separator}
{mailboxes}}}
"""

    # -- TLS ----------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's CA (and verifies the host name)."""
        return ssl.create_default_context(cafile=self.ca_file)

    def server_ssl_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.dir / "key.pem")
        return context

    # -- users and mail ---------------------------------------------------------------

    def add_user(self, name: str | None = None, password: str | None = None) -> ImapUser:
        """A new user with an empty mailbox; random name and password unless given."""
        name = name or f"u{uuid.uuid4().hex[:12]}"
        password = password or uuid.uuid4().hex
        self.users[name] = password
        # One passwd-file per user (the path holds %u): a new user is a new file, so
        # Dovecot's cache of a changed file (checked by mtime, to the second) never hides one.
        (self.dir / "users" / name).write_text(f"{name}:{{PLAIN}}{password}\n")
        return ImapUser(name, password, self.host, self.port, self.tls_port, self.ca_file)

    def maildir(self, user: str) -> Path:
        """The user's maildir (INBOX; other folders are `.Name` inside it)."""
        return self.dir / "mail" / user

    def imap(self, user: str, *, tls: bool = False) -> IMAPClient:
        """A logged-in client; use it in `with` to log out."""
        if tls:
            client = IMAPClient(self.host, port=self.tls_port, ssl=True, ssl_context=self.ssl_context(), timeout=20)
        else:
            client = IMAPClient(self.host, port=self.port, ssl=False, timeout=20)
        try:
            client.login(user, self.users[user])
        except BaseException:
            client.shutdown()
            raise
        return client

    def append(self, user: str, folder: str, raw: bytes, flags: tuple[bytes | str, ...] = ()) -> int:
        """APPEND a message as `user`; returns its UID (APPENDUID, else the folder's newest)."""
        with self.imap(user) as client:
            response = client.append(folder, raw, flags=flags)
            found = APPENDUID.search(response if isinstance(response, bytes) else str(response).encode())
            if found:
                return int(found[1])
            client.select_folder(folder, readonly=True)
            return int(max(client.search(["ALL"])))
