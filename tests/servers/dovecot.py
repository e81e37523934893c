"""A real Dovecot IMAP server from a throwaway configuration.

Plain IMAP (with STARTTLS) and IMAPS listeners on free loopback ports, passwd-file users,
maildir under a temporary directory, SPECIAL-USE folders. Variants advertise no MOVE or no
UIDPLUS (by an explicit `imap_capability`), or keep the Junk folder without its
special-use flag under another name.
"""

from __future__ import annotations

import datetime
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

from tests.servers.net import free_port, wait_for_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
# What Dovecot 2.3 advertises after login; variants remove one capability from it.
CAPABILITIES = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
    "THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS "
    "LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH "
    "LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE"
).split()


@dataclass(frozen=True)
class ImapUser:
    name: str
    password: str
    host: str
    port: int
    tls_port: int


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


class Dovecot:
    def __init__(self, *, remove_capabilities: tuple[str, ...] = (), junk_name: str = "Junk", special_use: bool = True) -> None:
        self.remove_capabilities = remove_capabilities
        self.junk_name = junk_name
        self.special_use = special_use
        self.dir = Path(tempfile.mkdtemp(prefix="dovecot-"))
        self.dir.chmod(0o755)  # the auth and mail processes run as the dovecot user
        self.port = free_port()
        self.tls_port = free_port()
        self.host = "127.0.0.1"
        self.users: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None
        self.ca_file = ""

    # -- lifecycle --------------------------------------------------------------------

    def _config(self) -> str:
        mail_owner = pwd.getpwnam("dovecot") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
        uid, gid = mail_owner.pw_uid, mail_owner.pw_gid
        (self.dir / "mail").mkdir(exist_ok=True)
        os.chown(self.dir / "mail", uid, gid)
        junk_flag = "special_use = \\Junk" if self.special_use else ""
        capability = f"imap_capability = {' '.join(c for c in CAPABILITIES if c not in self.remove_capabilities)}" if self.remove_capabilities else ""
        root_only = "default_login_user = dovenull\ndefault_internal_user = dovecot\n" if os.geteuid() == 0 else ""
        return f"""
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
{root_only}
ssl = yes
ssl_cert = <{self.ca_file}
ssl_key = <{self.dir}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:{self.dir}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.dir}/users/%u
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={self.dir}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
{capability}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox "{self.junk_name}" {{
    {junk_flag}
    auto = subscribe
  }}
}}
"""

    def start(self) -> Dovecot:
        cert, _key = _self_signed(self.dir)
        self.ca_file = str(cert)
        (self.dir / "users").mkdir()
        (self.dir / "dovecot.conf").write_text(self._config())
        self.process = subprocess.Popen([DOVECOT, "-F", "-c", str(self.dir / "dovecot.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            wait_for_port(self.port, what="dovecot")
            wait_for_port(self.tls_port, what="dovecot (TLS)")
        except RuntimeError:
            self.stop()
            log = (self.dir / "dovecot.log").read_text() if (self.dir / "dovecot.log").exists() else ""
            raise RuntimeError(f"dovecot failed to start: {log[-2000:]}") from None
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        if self.process and self.process.stderr:
            self.process.stderr.close()
        self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- users and mail ---------------------------------------------------------------

    def add_user(self, name: str | None = None, password: str | None = None) -> ImapUser:
        name = name or f"u{uuid.uuid4().hex[:10]}"
        password = password or uuid.uuid4().hex
        self.users[name] = password
        # One passwd-file per user (the path has %u): a new user is a new file, so Dovecot's
        # cache of a changed file (checked by mtime, to the second) never hides them.
        (self.dir / "users" / name).write_text(f"{name}:{{PLAIN}}{password}\n")
        return ImapUser(name, password, self.host, self.port, self.tls_port)

    @contextmanager
    def imap(self, user: str) -> Iterator[IMAPClient]:
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=20)
        client.login(user, self.users[user])
        try:
            yield client
        finally:
            client.logout()

    def append(self, user: str, folder: str, raw: bytes, flags: tuple[bytes | str, ...] = ()) -> int:
        """APPEND a message; returns its UID (from APPENDUID, else the folder's newest)."""
        with self.imap(user) as client:
            response = client.append(folder, raw, flags=flags)
            text = response.decode() if isinstance(response, bytes) else str(response)
            if "APPENDUID" in text:
                return int(text.split("APPENDUID", 1)[1].split("]")[0].split()[1])
            client.select_folder(folder, readonly=True)
            return int(max(client.search(["ALL"])))
