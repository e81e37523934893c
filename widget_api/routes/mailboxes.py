"""Connect, test, list and remove the user's IMAP mailbox."""

from __future__ import annotations

from fastapi import status

from crm.services import mailboxes
from widget_api.deps import CurrentUser, MailboxTestUser, ReadSessionDep, RuntimeDep, SessionDep
from widget_api.errors import responses
from widget_api.routing import PrefixRouter
from widget_api.schemas import Id, MailboxIn, MailboxRead

router = PrefixRouter(prefix="/api/v1/mailboxes", tags=["mailboxes"], responses=responses(400, 404, 429, 502))


@router.post("", status_code=status.HTTP_201_CREATED)
def connect(body: MailboxIn, session: SessionDep, principal: MailboxTestUser, runtime: RuntimeDep) -> MailboxRead:
    """Log in once to check the settings, then store them (the password encrypted)."""
    settings = runtime.mailbox_settings(body.host, body.port, body.security, body.username, body.password, body.auth)
    # A sync route: the connection runs in the thread pool, never on the event loop.
    with runtime.connection_tests.slot(principal.organisation_id, settings.host, settings.port):
        folders = runtime.pool.get(settings).check()
    account = mailboxes.save_account(
        session, principal, runtime.secrets,
        host=body.host, port=body.port, security=body.security, username=body.username,
        secret=body.password, auth=body.auth, trusted_authserv_ids=body.trusted_authserv_ids,
    )
    return MailboxRead.model_validate(account).model_copy(update={"folders": folders})


@router.get("")
def list_mailboxes(session: ReadSessionDep, principal: CurrentUser) -> list[MailboxRead]:
    return [MailboxRead.model_validate(a) for a in mailboxes.list_accounts(session, principal)]


@router.post("/{mailbox_id}/test")
def test_mailbox(mailbox_id: Id, session: SessionDep, principal: MailboxTestUser, runtime: RuntimeDep) -> MailboxRead:
    account = mailboxes.get_account(session, principal, mailbox_id)
    settings = runtime.account_settings(session, principal, mailbox_id)
    with runtime.connection_tests.slot(principal.organisation_id, settings.host, settings.port):
        folders = runtime.pool.get(settings).check()
    return MailboxRead.model_validate(account).model_copy(update={"folders": folders})


@router.delete("/{mailbox_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove(mailbox_id: Id, session: SessionDep, principal: CurrentUser) -> None:
    mailboxes.delete_account(session, principal, mailbox_id)
