"""SMTP submission (RFC 6409) of a message's stored bytes, with smtplib.

One connection per mail: automatic mail trickles out under a daily limit of at most 2,250,
so a pooled connection would save little and add a state to get wrong after a failure.

Outcomes map to the domain's errors (crm.domain.errors):
- 250 to DATA: sent. What happens to the connection afterwards (QUIT lost, reset) changes
  nothing: the server took responsibility for the mail, and a retry would duplicate it.
- 4xx anywhere, or the connection lost or timed out before DATA's reply: MailSendTemporary.
- 5xx: MailSendRejected (`recipient_refused` when it was the RCPT TO), except a refused
  login: that is the organisation's settings, not the mail, so it is retried like a 4xx.
- A server name resolving to a loopback, private or reserved address (unless allowed):
  MailSendTemporary `smtp_private_address`, before any connection (also the settings).

The name is resolved and every address checked at each connect, and the connection goes to
a checked address, never to the name resolved anew (DNS rebinding: a name that was public
when the settings were saved may point at the local network by the time a mail leaves).
TLS (implicit or STARTTLS) still sends the name as SNI and verifies the certificate
against it (mail_adapter.addresses, as the IMAP connects do).
"""

from __future__ import annotations

import functools
import smtplib
import socket
import ssl

from crm.domain.errors import InvalidInput, MailSendRejected, MailSendTemporary
from crm.domain.ports import SmtpConfig
from mail_adapter.addresses import checked_addresses, connect

_CONNECTION_LOST = (smtplib.SMTPServerDisconnected, ConnectionError, socket.timeout, TimeoutError, ssl.SSLError, OSError)


@functools.cache
def _system_context() -> ssl.SSLContext:
    # Loading the system's CAs costs ~0.1 s of CPU (under the GIL): once per process, not per mail.
    return ssl.create_default_context()


class _PinnedSMTP(smtplib.SMTP):
    """smtplib.SMTP connecting to `addresses` (checked beforehand) while `_host` stays the
    name: STARTTLS sends it as SNI and checks the certificate against it."""

    addresses: list[str]
    _host: str  # smtplib's; not in its type stubs

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return connect(self.addresses, port, timeout)


class _PinnedSMTPSSL(smtplib.SMTP_SSL):
    """Implicit TLS to a checked address, the certificate checked against the name."""

    addresses: list[str]
    _host: str

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return self.context.wrap_socket(connect(self.addresses, port, timeout), server_hostname=self._host)


class SmtpSubmission:
    """The SubmissionPort of one organisation's server. `ssl_context`: how to check its
    certificate (default: the system's CAs and the host name). `allow_private`: connect to
    loopback and private addresses too (the admin's MAILWIDGET_ALLOW_PRIVATE_HOSTS, as for
    IMAP; the tests' server on 127.0.0.1)."""

    def __init__(self, config: SmtpConfig, ssl_context: ssl.SSLContext | None = None, local_hostname: str | None = None, *, allow_private: bool = False) -> None:
        if config.security not in ("starttls", "tls", "none"):
            raise ValueError(f"unknown SMTP security {config.security!r}")
        self.config = config
        self._context = ssl_context
        self._local_hostname = local_hostname
        self._allow_private = allow_private

    def __repr__(self) -> str:  # never show the password
        return f"SmtpSubmission({self.config.host}:{self.config.port}, {self.config.security})"

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        addresses = checked_addresses(c.host, c.port, allow_private=self._allow_private)
        client: _PinnedSMTP | _PinnedSMTPSSL
        if c.security == "tls":
            client = _PinnedSMTPSSL(local_hostname=self._local_hostname, timeout=c.timeout, context=self._context or _system_context())
        else:
            client = _PinnedSMTP(local_hostname=self._local_hostname, timeout=c.timeout)
        # Built unconnected (smtplib connects in __init__ when given a host): the addresses
        # first, and `_host`, the name TLS checks, which only __init__ would set.
        client.addresses, client._host = addresses, c.host
        try:
            code, text = client.connect(c.host, c.port)
            if code != 220:
                raise smtplib.SMTPConnectError(code, text)
            client.ehlo()
            if c.security == "starttls":
                if not client.has_extn("starttls"):
                    raise MailSendRejected("the SMTP server does not offer STARTTLS", code="smtp_no_starttls")
                client.starttls(context=self._context or _system_context())
                client.ehlo()
            if c.username:
                client.login(c.username, c.password or "")
        except BaseException:
            _close(client)
            raise
        return client

    def send(self, envelope_from: str, recipient: str, message: bytes) -> str:
        """See crm.domain.ports.SubmissionPort."""
        try:
            client = self._connect()
        except InvalidInput:  # the name leads to our own network: no connection made
            raise MailSendTemporary(f"the SMTP server {self.config.host} resolves to a loopback, private or reserved address", code="smtp_private_address") from None
        except smtplib.SMTPAuthenticationError as exc:
            # The organisation's settings, not this mail: it waits (backoff) for the admin's fix.
            raise MailSendTemporary("the SMTP server refused the login", smtp_code=exc.smtp_code, code="smtp_auth_failed") from None
        except smtplib.SMTPResponseException as exc:
            raise _from_reply(exc.smtp_code, exc.smtp_error, "connect") from None
        except _CONNECTION_LOST as exc:  # before SMTPException: SMTPServerDisconnected is one
            raise MailSendTemporary(f"SMTP connection failed: {type(exc).__name__}", code="smtp_connection_lost") from None
        except smtplib.SMTPException as exc:  # e.g. no AUTH offered
            raise MailSendRejected(f"SMTP: {exc}"[:300], code="smtp_session_failed") from None
        try:
            reply = _transaction(client, envelope_from, recipient, message)
        finally:
            _close(client)
        return reply


def _transaction(client: smtplib.SMTP, envelope_from: str, recipient: str, message: bytes) -> str:
    try:
        code, text = client.mail(envelope_from)
        if code != 250:
            raise _from_reply(code, text, "MAIL FROM")
        code, text = client.rcpt(recipient)
        if code not in (250, 251):
            raise _from_reply(code, text, "RCPT TO", recipient_refused=True)
        # data() dot-stuffs and ends with CRLF.CRLF; the stored bytes already have CRLF line ends.
        code, text = client.data(message)
    except smtplib.SMTPResponseException as exc:
        raise _from_reply(exc.smtp_code, exc.smtp_error, "DATA") from None
    except _CONNECTION_LOST as exc:
        raise MailSendTemporary(f"the SMTP connection was lost before the server accepted the mail ({type(exc).__name__})", code="smtp_connection_lost") from None
    if code != 250:
        raise _from_reply(code, text, "DATA")
    return text.decode("utf-8", "replace")[:300]


def _from_reply(code: int, text: bytes | str, stage: str, *, recipient_refused: bool = False) -> MailSendTemporary | MailSendRejected:
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    detail = f"{stage}: {code} {said}"[:300]
    if 400 <= code < 500:
        return MailSendTemporary(detail, smtp_code=code, recipient_refused=recipient_refused, code="smtp_temporary")
    return MailSendRejected(detail, smtp_code=code, recipient_refused=recipient_refused, code="smtp_rejected")


def _close(client: smtplib.SMTP) -> None:
    """QUIT politely; a connection already gone is no error (the outcome is known by now)."""
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()
