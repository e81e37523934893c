"""The lead draft of the message the user has open: by folder + UID, by Message-ID, or from
the raw message the widget uploads when the backend has no IMAP access to that account."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from crm.domain.drafts import CONFIDENT, LEAD_FIELDS, LeadDraft, MessageRef
from crm.domain.errors import InvalidInput, PermissionDenied
from crm.domain.ports import OpenedMessage
from crm.domain.principal import Principal
from crm.services import leads, mailboxes
from mail_adapter.mailbox import same_content
from mail_adapter.reading import looks_like_mail, read_raw
from widget_api.deps import Credentials, CredentialsDep, Runtime, RuntimeDep, UploadUser, get_credentials, get_runtime, speaking
from widget_api.errors import language_of, responses
from widget_api.i18n import translate
from widget_api.quick_route import QuickRoute, query_model
from widget_api.routing import PrefixRouter
from widget_api.schemas import DraftAlternativeOut, DraftFieldOut, DraftOut, DraftPersonOut, LeadRead, MessageOut, MessageRefIn, WarningOut

router = PrefixRouter(prefix="/api/v1/messages", tags=["messages"], responses=responses(400, 404, 413, 429, 502))

MAX_RAW_BYTES = 50 * 1024 * 1024


def _fields_out(draft: LeadDraft) -> dict[str, DraftFieldOut | None]:
    fields: dict[str, DraftFieldOut | None] = {}
    for name in LEAD_FIELDS:
        f = draft.fields.get(name)
        fields[name] = DraftFieldOut(value=f.value, source=f.source, confidence=f.confidence, line=f.line, confident=f.confidence >= CONFIDENT) if f else None
    return fields


def _person_out(draft: LeadDraft, lang: str) -> DraftPersonOut | None:
    p = draft.person
    if p is None:
        return None
    evidence = [WarningOut(code=c, message=translate(f"person_{c}", lang)) for c in p.evidence]
    return DraftPersonOut(role=p.role, name=p.name, email=p.email, evidence=evidence, line=p.line)  # type: ignore[arg-type]


def draft_out(request: Request, db: Session | Connection, principal: Principal, opened: OpenedMessage, key: str) -> DraftOut:
    lang = language_of(request)
    draft = opened.draft
    ref = opened.ref
    # Duplicates are looked up for the person the draft is about (the forwarded original's
    # address, not the colleague who forwarded it).
    email = draft.value("email") or opened.sender
    captured, existing = leads.captured_and_existing(db, principal, key, email)
    alternatives = [
        DraftAlternativeOut(
            person=_person_out(alt, lang),  # type: ignore[arg-type]
            lead=_fields_out(alt),
            values=alt.values(),
            warnings=[WarningOut(code=w, message=translate(w, lang)) for w in alt.warnings],
            existing=leads.existing_records(db, principal, alt.value("email")),
        )
        for alt in draft.alternatives
        if alt.person is not None
    ]
    return DraftOut(
        message=MessageOut(folder=ref.folder, uid=ref.uid, uidvalidity=ref.uidvalidity, message_id=opened.message_id, subject=opened.subject, sender=opened.sender),
        lead=_fields_out(draft),
        values=draft.values(),
        warnings=[WarningOut(code=w, message=translate(w, lang)) for w in draft.warnings],
        existing=existing,
        captured=LeadRead.model_validate(captured) if captured else None,
        bytes_fetched=opened.bytes_fetched,
        person=_person_out(draft, lang),
        alternatives=alternatives,
    )


def json_of(out: DraftOut) -> Response:
    """The draft's JSON, encoded once. Returned as a model, FastAPI would dump it to a dict,
    validate that dict into a DraftOut again and encode that (response_model), on the event
    loop: the model was built from validated parts, and the route's `response_model` still
    documents it."""
    return Response(out.model_dump_json(), media_type="application/json")


async def draft(request: Request, ref: Annotated[MessageRefIn, Query()], credentials: CredentialsDep, runtime: RuntimeDep) -> Response:
    # The widget asks for this on every message the user opens: all of its blocking work
    # (token lookup, database, IMAP, the JSON encoding) in ONE thread-pool call. As a sync
    # endpoint with the CurrentUser dependency it took three (dependency, endpoint, response
    # validation), and each hop waits for a thread to be scheduled: most of the request on a
    # busy machine.
    return await run_in_threadpool(_draft_json, request, ref, credentials, runtime)


async def _draft_arguments(request: Request) -> dict[str, Any] | None:
    """`draft`'s arguments read without FastAPI's dependency solving (widget_api.quick_route),
    or None when the request is not an ordinary one: FastAPI's handler then answers it."""
    query = request.query_params
    ref = query_model(MessageRefIn, query)
    if ref is None:
        return None
    try:
        credentials = await get_credentials(request.headers.get("authorization"), query.get("lang"))
    except PermissionDenied:
        return None  # the 401, from FastAPI's handler
    return {"request": request, "ref": ref, "credentials": credentials, "runtime": await get_runtime(request)}


class _DraftRoute(QuickRoute):
    async def read(self, request: Request) -> dict[str, Any] | None:
        return await _draft_arguments(request)


# As `@router.get("/draft", response_model=DraftOut)` declares it (the OpenAPI document is the same).
router.add_api_route("/draft", draft, methods=["GET"], response_model=DraftOut, route_class_override=_DraftRoute)


def _draft_json(request: Request, ref: MessageRefIn, credentials: Credentials, runtime: Runtime) -> Response:
    return json_of(_draft(request, ref, credentials, runtime))


def _draft(request: Request, ref: MessageRefIn, credentials: Credentials, runtime: Runtime) -> DraftOut:
    # Short read-only transactions around the IMAP round trips: no database transaction (on
    # SQLite, a lock) is held while the mail server answers. The token check shares the
    # first one: one per lookup cost a pool checkout, BEGIN and ROLLBACK each. Plain
    # read-only connections, not sessions: nothing here needs the ORM's unit of work, and a
    # Session's bookkeeping cost more CPU than a statement.
    # The token, the account (scoped to the principal) and the lookups run on every
    # request; only the message's content (parsed and extracted) may come from the cache,
    # under the account's id, which the principal was just checked to own.
    message = MessageRef(ref.folder, ref.uid, ref.uidvalidity, ref.message_id, ref.special_use)
    with runtime.read_connection() as db:
        # The token check and the accounts in one statement (the same checks, in the same order).
        principal, accounts = mailboxes.authenticate_with_accounts(db, credentials.token)
        speaking(request, credentials, principal)
        if ref.uid is None and not ref.message_id:
            raise InvalidInput("give uid (with folder) or message_id")
        account, ctx = mailboxes.pick_account(principal, accounts, ref.mailbox_id)
        settings = runtime.settings_of(account)
        # A message opened before: its lookups in this transaction already, so a reopen takes
        # one transaction, not two. Only a guess until the mail server confirmed the message
        # below (no transaction is held meanwhile); if what it serves differs, looked up again.
        pooled = runtime.pool.existing(settings)
        guess = pooled.peek(message, ctx, runtime.drafts, account.id) if pooled is not None else None
        early = draft_out(request, db, principal, guess, _key_of(guess, ref)) if guess is not None else None
    opened = runtime.pool.get(settings).open_message(message, ctx, runtime.drafts, account.id)
    if early is not None and guess is not None and same_content(guess, opened):
        return early
    with runtime.read_connection() as db:
        return draft_out(request, db, principal, opened, _key_of(opened, ref))


def _key_of(opened: OpenedMessage, ref: MessageRefIn) -> str:
    return MessageRefIn(folder=opened.ref.folder, uid=opened.ref.uid, uidvalidity=opened.ref.uidvalidity, message_id=opened.message_id, mailbox_id=ref.mailbox_id).key()


@router.post(
    "/draft/raw",
    response_model=DraftOut,
    openapi_extra={"requestBody": {"content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}}, "required": True}},
)
async def draft_from_raw(request: Request, principal: UploadUser, runtime: RuntimeDep) -> Response:
    """The whole message in the body (Content-Type message/rfc822)."""
    raw = await _read_limited(request)
    # Parsing a large message takes seconds of CPU, and the database calls block: all of it
    # in the thread pool, so the event loop keeps answering every other request meanwhile.
    return await run_in_threadpool(lambda: json_of(_draft_of_raw(request, principal, runtime, raw)))


def _draft_of_raw(request: Request, principal: Principal, runtime: Runtime, raw: bytearray) -> DraftOut:
    if not looks_like_mail(raw):
        raise InvalidInput("the body is not an email message", code="not_a_message")
    with runtime.read_sessions() as session:
        ctx = mailboxes.read_context(session, principal)
    opened = read_raw(raw, ctx, MessageRef(folder=request.query_params.get("folder", "")))
    key = MessageRefIn(message_id=opened.message_id).key() if opened.message_id else ""
    with runtime.read_sessions() as session:
        return draft_out(request, session, principal, opened, key)


async def _read_limited(request: Request) -> bytearray:
    """The body, grown in one buffer: the message is held once (no list of chunks joined
    into a second copy), and never more than MAX_RAW_BYTES of it."""
    raw = bytearray()
    async for chunk in request.stream():
        if len(raw) + len(chunk) > MAX_RAW_BYTES:
            raise InvalidInput(f"the message is larger than {MAX_RAW_BYTES // 2**20} MB", code="payload_too_large")
        raw += chunk
    return raw
