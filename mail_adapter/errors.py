"""The one place where imapclient and socket failures become domain errors.

Callers above the adapter only ever see crm.domain.errors types: an unreachable server is
MailboxUnavailable (HTTP 502), refused credentials MailboxAuthError (HTTP 4xx), a UID or
Message-ID that is not there MessageNotFound (404).
"""

from __future__ import annotations

import socket
import ssl

from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from crm.domain.errors import MailboxAuthError, MailboxError, MailboxUnavailable

# Failures after which the connection is unusable and one reconnect is worth trying.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    IMAPClientAbortError,
    ConnectionError,
    socket.timeout,
    ssl.SSLError,
    EOFError,
    OSError,
)


def translate(exc: BaseException, host: str) -> MailboxError:
    """A domain error for an IMAP failure. The message names the server, never a secret."""
    if isinstance(exc, LoginError):
        return MailboxAuthError(f"the IMAP server {host} refused the login")
    if isinstance(exc, CONNECTION_ERRORS):
        return MailboxUnavailable(f"the IMAP server {host} is unreachable or dropped the connection")
    if isinstance(exc, IMAPClientError):
        return MailboxError(f"the IMAP server {host} refused the request: {exc}"[:300])
    return MailboxError(f"IMAP error on {host}")
