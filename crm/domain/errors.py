"""The domain's error tree. No HTTP codes here: widget_api/errors.py maps them once.

DomainError
├── NotFound            the thing does not exist *for this organisation*
├── Conflict            a unique rule would be broken (carries the existing record id)
│   └── NeverLogged     the mail names an address on a never-log list (logging by hand)
├── InvalidInput        the request is well-formed but makes no sense
├── PermissionDenied    the user may not do this
├── RateLimited         too much at once from this token or organisation (try again later)
├── MailboxError        the mailbox could not be reached or refused us
│   ├── MailboxAuthError
│   ├── MailboxUnavailable
│   └── MessageNotFound
└── MailSendError       the SMTP submission server did not accept a mail
    ├── MailSendTemporary   4xx or the connection was lost before the final reply: retry
    └── MailSendRejected    5xx: the server refused for good
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    code = "error"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:  # a more precise stable code than the class's (the API translates codes)
            self.code = code


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    """A unique field would be duplicated; `existing_id` names the record that has it."""

    code = "duplicate"

    def __init__(
        self, detail: str, *, existing_id: int | None = None, field: str | None = None, existing: dict[str, object] | None = None, code: str | None = None
    ) -> None:
        super().__init__(detail, code=code)
        self.existing_id = existing_id
        self.field = field
        self.existing = existing  # the existing record as the API shows it


class NeverLogged(Conflict):
    """A mail to be logged by hand names `address`, which is on a never-log list: `scope`
    "user" (the rep's own) or "org" (the organisation's). The rep may log it anyway."""

    code = "never_log"

    def __init__(self, detail: str, *, scope: str, address: str) -> None:
        super().__init__(detail)
        self.scope = scope
        self.address = address


class InvalidInput(DomainError):
    """`field`: the input the request got wrong, when one can be named."""

    code = "invalid_input"

    def __init__(self, detail: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.field = field


class PermissionDenied(DomainError):
    code = "forbidden"


class RateLimited(DomainError):
    """`retry_after`: whole seconds after which the same request may succeed."""

    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after = max(1, retry_after)


class MailboxError(DomainError):
    code = "mailbox_error"


class MailboxAuthError(MailboxError):
    code = "mailbox_auth_failed"


class MailboxUnavailable(MailboxError):
    code = "mailbox_unavailable"


class MessageNotFound(MailboxError, NotFound):
    code = "message_not_found"


class MailSendError(DomainError):
    """`smtp_code`: the server's reply code (None when the connection failed)."""

    code = "mail_send_error"

    def __init__(self, detail: str, *, smtp_code: int | None = None, recipient_refused: bool = False, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.smtp_code = smtp_code
        self.recipient_refused = recipient_refused  # refused at RCPT TO (the address itself)


class MailSendTemporary(MailSendError):
    code = "mail_send_temporary"


class MailSendRejected(MailSendError):
    code = "mail_send_rejected"
