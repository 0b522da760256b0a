"""`/v1/contacts`: the contact store with consent, tags and merges."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime, Field, StringConstraints, field_validator, model_validator

from orchestrator import contacts, reachability
from orchestrator.api.audience_query import AudienceQueryDep
from orchestrator.api.deps import (
    IdempotencyDep,
    NowDep,
    ResourcesDep,
    SessionDep,
    WorkspaceIdDep,
)
from orchestrator.campaigns import triggers
from orchestrator.schemas import InputModel, ListPage, OutputModel

router = APIRouter(prefix="/v1/contacts", tags=["contacts"])

Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
ConsentSource = Literal[
    "popup", "minigame", "embedded", "comment", "hotline", "import", "api",
    "messenger_quick_reply", "mme", "double_opt_in", "unsubscribe_link", "merge",
]  # fmt: skip
_LOCALE = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")
_MAX_ATTRIBUTES = 100


def _zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("unknown IANA time zone") from exc
    return value


def _locale(value: str | None) -> str | None:
    if value is not None and not _LOCALE.match(value):
        raise ValueError("not a locale such as 'vi' or 'en_US'")
    return value


def _attributes(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if len(value) > _MAX_ATTRIBUTES:
        raise ValueError(f"at most {_MAX_ATTRIBUTES} attributes")
    for key in value:
        if not key or len(key) > 64:
            raise ValueError("attribute names are 1-64 characters")
    return value


class MessengerIn(InputModel):
    page_id: str = Field(min_length=1, max_length=64, pattern=r"^\d+$")
    psid: str = Field(min_length=1, max_length=64, pattern=r"^\d+$")


class _ContactFields(InputModel):
    name: str | None = Field(default=None, max_length=300)
    locale: str | None = Field(default=None, max_length=35)
    timezone: str | None = Field(default=None, max_length=64)
    attributes: dict[str, Any] | None = None
    consent_source: ConsentSource | None = None
    consent_at: AwareDatetime | None = None

    _check_zone = field_validator("timezone")(_zone)
    _check_locale = field_validator("locale")(_locale)
    _check_attributes = field_validator("attributes")(_attributes)

    @model_validator(mode="after")
    def _consent_pair(self) -> _ContactFields:
        if (self.consent_source is None) != (self.consent_at is None):
            missing = "consent_at" if self.consent_at is None else "consent_source"
            raise ValueError(f"consent_source and consent_at go together; {missing} is missing")
        return self

    def consent(self, request_ip: str | None, user_agent: str | None) -> contacts.Consent | None:
        if self.consent_source is None or self.consent_at is None:
            return None
        return contacts.Consent(
            source=self.consent_source, at=self.consent_at, ip=request_ip, user_agent=user_agent
        )


class ContactCreate(_ContactFields):
    email: str | None = Field(default=None, max_length=320)
    messenger: MessengerIn | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _identified(self) -> ContactCreate:
        if self.email is None and self.messenger is None:
            raise ValueError("give an email or a messenger identity (page_id and psid)")
        if self.consent_source is not None and self.email is None:
            raise ValueError("consent_source needs an email")
        return self


class ContactUpdate(_ContactFields):
    email: str | None = Field(default=None, max_length=320)
    tags: list[Tag] | None = Field(default=None, max_length=100)


class TagsIn(InputModel):
    tags: list[Tag] = Field(min_length=1, max_length=100)


class MergeIn(InputModel):
    contact_id: str = Field(min_length=1, max_length=32)


class EmailOut(OutputModel):
    address: str
    status: str


class MessengerOut(OutputModel):
    page_id: str
    psid: str
    window_opened_at: datetime | None
    last_user_message_at: datetime | None


class ContactPublic(OutputModel):
    id: str
    name: str | None
    locale: str | None
    timezone: str | None
    attributes: dict[str, Any]
    tags: list[str]
    email: EmailOut | None
    messenger: list[MessengerOut]
    created_at: datetime
    updated_at: datetime


class MergePublic(OutputModel):
    merge_id: str
    contact: ContactPublic


class RevertPublic(OutputModel):
    kept: ContactPublic
    restored: ContactPublic


def _public(view: contacts.ContactView) -> ContactPublic:
    return ContactPublic.model_validate(view, from_attributes=True)


def _data(body: ContactCreate, ip: str | None, user_agent: str | None) -> contacts.ContactData:
    return contacts.ContactData(
        email=body.email,
        messenger=contacts.MessengerRef(body.messenger.page_id, body.messenger.psid)
        if body.messenger
        else None,
        name=body.name,
        locale=body.locale,
        timezone=body.timezone,
        tags=body.tags,
        attributes=body.attributes or {},
        consent=body.consent(ip, user_agent),
        source="api",
    )


@router.post(
    "",
    status_code=201,
    response_model=ContactPublic,
    responses={200: {"model": ContactPublic, "description": "An existing contact was updated"}},
)
async def create_contact(
    body: ContactCreate,
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
    idem: IdempotencyDep,
) -> Response:
    """Create a contact, or upsert the one its `email` or `messenger` identity names."""
    if idem.replayed is not None:
        return idem.replayed
    view, outcome = await contacts.upsert_contact(
        session,
        resources.keyring,
        workspace_id=workspace_id,
        data=_data(body, None, None),
        now=now,
        on_tags_added=triggers.on_tags_added(session, workspace_id=workspace_id, now=now),
    )
    return await idem.respond(201 if outcome == "created" else 200, _public(view))


@router.get("", response_model=ListPage[ContactPublic])
async def list_contacts(
    session: SessionDep,
    workspace_id: WorkspaceIdDep,
    audience: AudienceQueryDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ListPage[ContactPublic]:
    """Tags filters take repeated parameters or comma-separated values."""
    views, next_cursor = await contacts.list_contacts(
        session, workspace_id=workspace_id, audience=audience, limit=limit, cursor=cursor
    )
    return ListPage[ContactPublic](data=[_public(v) for v in views], next_cursor=next_cursor)


@router.post("/merges/{merge_id}/revert", response_model=RevertPublic)
async def revert_merge(
    merge_id: str, session: SessionDep, workspace_id: WorkspaceIdDep, now: NowDep
) -> RevertPublic:
    kept, restored = await contacts.revert_merge(
        session, workspace_id=workspace_id, merge_id=merge_id, now=now
    )
    return RevertPublic(kept=_public(kept), restored=_public(restored))


@router.get("/{contact_id}", response_model=ContactPublic)
async def read_contact(
    contact_id: str, session: SessionDep, workspace_id: WorkspaceIdDep
) -> ContactPublic:
    return _public(await contacts.view(session, workspace_id=workspace_id, contact_id=contact_id))


@router.patch("/{contact_id}", response_model=ContactPublic)
async def patch_contact(
    contact_id: str,
    body: ContactUpdate,
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
) -> ContactPublic:
    changes: dict[str, Any] = body.model_dump(
        exclude_unset=True, exclude={"consent_source", "consent_at"}
    )
    consent = body.consent(None, None)
    if consent is not None:
        changes["consent"] = consent
    view = await contacts.update_contact(
        session,
        resources.keyring,
        workspace_id=workspace_id,
        contact_id=contact_id,
        changes=changes,
        now=now,
        on_tags_added=triggers.on_tags_added(session, workspace_id=workspace_id, now=now),
    )
    return _public(view)


@router.delete("/{contact_id}", status_code=204)
async def delete_contact(
    contact_id: str,
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
) -> Response:
    """Erase the contact: personal data and identities go, the ledger is redacted, and the
    address stays suppressed so no later import subscribes it again."""
    await contacts.erase_contact(
        session, resources.keyring, workspace_id=workspace_id, contact_id=contact_id, now=now
    )
    return Response(status_code=204)


@router.post("/{contact_id}/tags", response_model=ContactPublic)
async def add_tags(
    contact_id: str,
    body: TagsIn,
    session: SessionDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
) -> ContactPublic:
    view = await contacts.view(session, workspace_id=workspace_id, contact_id=contact_id)
    added = await contacts.add_tags(
        session, workspace_id=workspace_id, contact_id=contact_id, tags=body.tags, now=now
    )
    if added:
        await contacts.touch(session, contact_id=contact_id, now=now)
        await triggers.fire_tags_added(
            session, workspace_id=workspace_id, contact_id=contact_id, tags=added, now=now
        )
        view = await contacts.view(session, workspace_id=workspace_id, contact_id=contact_id)
    return _public(view)


@router.delete("/{contact_id}/tags/{tag}", status_code=204)
async def remove_tag(
    contact_id: str, tag: str, session: SessionDep, workspace_id: WorkspaceIdDep, now: NowDep
) -> Response:
    await contacts.remove_tag(
        session, workspace_id=workspace_id, contact_id=contact_id, tag=tag, now=now
    )
    return Response(status_code=204)


@router.post("/{contact_id}/merge", response_model=MergePublic)
async def merge_contact(
    contact_id: str,
    body: MergeIn,
    session: SessionDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
) -> MergePublic:
    """Merge `contact_id` from the body into this contact (the older id is kept); reversible with
    `POST /v1/contacts/merges/{merge_id}/revert`."""
    view, merge_id = await contacts.merge_contacts(
        session, workspace_id=workspace_id, contact_id=contact_id, other_id=body.contact_id, now=now
    )
    return MergePublic(merge_id=merge_id, contact=_public(view))


class TokenOut(OutputModel):
    topic: str | None
    kind: str
    expires_at: datetime | None


class MessengerReach(OutputModel):
    page_id: str
    psid: str
    window_open: bool
    window_closes_at: datetime | None
    human_agent_until: datetime | None
    taken_over_until: datetime | None
    stopped: bool
    tokens: list[TokenOut]


class DecisionOut(OutputModel):
    route: str
    reason: str
    messaging_type: str | None
    tag: str | None
    page_id: str | None
    refused_tag: str | None = None


class ReachabilityPublic(OutputModel):
    email: EmailOut | None
    messenger: list[MessengerReach]
    decisions: dict[str, DecisionOut]


@router.get("/{contact_id}/reachability", response_model=ReachabilityPublic)
async def read_reachability(
    contact_id: str,
    session: SessionDep,
    resources: ResourcesDep,
    workspace_id: WorkspaceIdDep,
    now: NowDep,
    page_id: Annotated[str | None, Query(max_length=64)] = None,
) -> ReachabilityPublic:
    """Per Page: window open and until when, HUMAN_AGENT eligibility, usable tokens (never the
    token itself); the email status; and what the policy would decide now for a promotional and a
    transactional message."""
    facts = await reachability.load_facts(session, workspace_id=workspace_id, contact_id=contact_id)
    quiet = timedelta(seconds=resources.settings.takeover_quiet_seconds)
    return ReachabilityPublic.model_validate(
        reachability.reachability(facts, now=now, quiet=quiet, page_id=page_id)
    )
