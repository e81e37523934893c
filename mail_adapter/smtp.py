"""SMTP submission (RFC 6409) of a message's stored bytes, with smtplib.

One connection per mail: automatic mail trickles out under a daily limit of at most 2,250,
so a pooled connection would save little and add a state to get wrong after a failure.

Outcomes map to the domain's errors (crm.domain.errors):
- 250 to DATA: sent. What happens to the connection afterwards (QUIT lost, reset) changes
  nothing: the server took responsibility for the mail, and a retry would duplicate it.
- 4xx anywhere, or the connection lost or timed out before DATA's reply: MailSendTemporary.
- 5xx: MailSendRejected (`recipient_refused` when it was the RCPT TO), except a refused
  login: that is the organisation's settings, not the mail, so it is retried like a 4xx.
"""

from __future__ import annotations

import functools
import smtplib
import socket
import ssl

from crm.domain.errors import MailSendRejected, MailSendTemporary
from crm.domain.ports import SmtpConfig

_CONNECTION_LOST = (smtplib.SMTPServerDisconnected, ConnectionError, socket.timeout, TimeoutError, ssl.SSLError, OSError)


@functools.cache
def _system_context() -> ssl.SSLContext:
    # Loading the system's CAs costs ~0.1 s of CPU (under the GIL): once per process, not per mail.
    return ssl.create_default_context()


class SmtpSubmission:
    """The SubmissionPort of one organisation's server. `ssl_context`: how to check its
    certificate (default: the system's CAs and the host name)."""

    def __init__(self, config: SmtpConfig, ssl_context: ssl.SSLContext | None = None, local_hostname: str | None = None) -> None:
        if config.security not in ("starttls", "tls", "none"):
            raise ValueError(f"unknown SMTP security {config.security!r}")
        self.config = config
        self._context = ssl_context
        self._local_hostname = local_hostname

    def __repr__(self) -> str:  # never show the password
        return f"SmtpSubmission({self.config.host}:{self.config.port}, {self.config.security})"

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        client: smtplib.SMTP
        if c.security == "tls":
            client = smtplib.SMTP_SSL(c.host, c.port, local_hostname=self._local_hostname, timeout=c.timeout, context=self._context or _system_context())
        else:
            client = smtplib.SMTP(c.host, c.port, local_hostname=self._local_hostname, timeout=c.timeout)
        try:
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
