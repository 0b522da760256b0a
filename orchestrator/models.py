"""Tables (DESIGN section 4). Every row carries `workspace_id`; ids are opaque strings.

Bulk paths use `Model.__table__` through SQLAlchemy Core; the ORM classes serve single-row work.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from orchestrator.db import JSONType, UTCDateTime

# Named constraints: Alembic's batch mode on SQLite must address them by name.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

EMAIL_STATUSES = ("unconfirmed", "subscribed", "unsubscribed", "bounced", "complained")
CONSENT_ACTIONS = ("subscribe", "confirm", "unsubscribe", "bounce", "complaint", "resubscribe")
CONSENT_SOURCES = (
    "popup", "minigame", "embedded", "comment", "hotline", "import", "api",
    "messenger_quick_reply", "mme", "double_opt_in", "unsubscribe_link", "merge",
)  # fmt: skip
DELIVERY_STATES = (
    "pending",
    "claimed",
    "sent",
    "held",
    "deferred",
    "skipped",
    "failed",
    "cancelled",
)
POLICY_PROFILES = ("meta-2026-04", "meta-2020-03")


def table_of(model: type[SQLModel]) -> sa.Table:
    """The Core table of a model, for bulk statements (DESIGN section 8)."""
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    return table


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ws_fk() -> Any:
    return Field(foreign_key="workspaces.id", index=True, max_length=32, ondelete="CASCADE")


def _created() -> Any:
    return Field(sa_type=UTCDateTime, nullable=False)


def _maybe_time() -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=True)


class Workspace(SQLModel, table=True):
    __tablename__ = "workspaces"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200, unique=True)
    from_name: str | None = Field(default=None, max_length=200)
    from_address: str | None = Field(default=None, max_length=320)
    reply_to: str | None = Field(default=None, max_length=320)
    postal_address: str | None = Field(default=None, max_length=500)
    timezone: str = Field(default="Asia/Ho_Chi_Minh", max_length=64)
    transactional_to_unconfirmed: bool = Field(default=False)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    prefix: str = Field(max_length=16, unique=True)
    key_hash: str = Field(max_length=64)
    name: str | None = Field(default=None, max_length=200)
    created_at: datetime = _created()
    last_used_at: datetime | None = _maybe_time()
    revoked_at: datetime | None = _maybe_time()


class MessengerApp(SQLModel, table=True):
    __tablename__ = "messenger_apps"

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    app_id: str = Field(max_length=64, unique=True)
    app_secret_enc: str = Field(sa_type=sa.Text)
    verify_token_enc: str = Field(sa_type=sa.Text)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Page(SQLModel, table=True):
    __tablename__ = "pages"
    __table_args__ = (sa.CheckConstraint(_in("policy_profile", POLICY_PROFILES), name="profile"),)

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    page_id: str = Field(max_length=64, unique=True)
    messenger_app_id: str = Field(foreign_key="messenger_apps.id", index=True, max_length=32)
    username: str = Field(max_length=100)
    access_token_enc: str = Field(sa_type=sa.Text)
    graph_api_version: str = Field(max_length=16)
    policy_profile: str = Field(default="meta-2026-04", max_length=32)
    region: str | None = Field(default=None, max_length=8)
    human_agent_enabled: bool = Field(default=False)
    otn_enabled: bool = Field(default=False)
    checks: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    paused_reason: str | None = Field(default=None, max_length=200)
    paused_at: datetime | None = _maybe_time()
    created_at: datetime = _created()
    updated_at: datetime = _created()


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    name: str | None = Field(default=None, max_length=300)
    locale: str | None = Field(default=None, max_length=35)
    timezone: str | None = Field(default=None, max_length=64)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    merged_into: str | None = Field(default=None, max_length=32)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class EmailIdentity(SQLModel, table=True):
    __tablename__ = "email_identities"
    __table_args__ = (
        sa.UniqueConstraint("workspace_id", "address", name="uq_email_identities_address"),
        sa.CheckConstraint(_in("status", EMAIL_STATUSES), name="status"),
    )

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    contact_id: str = Field(
        foreign_key="contacts.id", index=True, max_length=32, ondelete="CASCADE"
    )
    address: str = Field(max_length=320)
    status: str = Field(default="unconfirmed", max_length=16)
    status_changed_at: datetime = _created()
    created_at: datetime = _created()


class MessengerIdentity(SQLModel, table=True):
    __tablename__ = "messenger_identities"
    __table_args__ = (sa.UniqueConstraint("page_id", "psid", name="uq_messenger_identities_psid"),)

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    contact_id: str = Field(
        foreign_key="contacts.id", index=True, max_length=32, ondelete="CASCADE"
    )
    page_id: str = Field(foreign_key="pages.page_id", index=True, max_length=64)
    psid: str = Field(max_length=64)
    window_opened_at: datetime | None = _maybe_time()
    last_user_message_at: datetime | None = _maybe_time()
    last_event_at: datetime | None = _maybe_time()
    takeover_at: datetime | None = _maybe_time()
    takeover_released_at: datetime | None = _maybe_time()
    waiting_for_human_since: datetime | None = _maybe_time()
    stopped_at: datetime | None = _maybe_time()
    unavailable_until: datetime | None = _maybe_time()
    created_at: datetime = _created()
    updated_at: datetime = _created()


class ContactTag(SQLModel, table=True):
    __tablename__ = "contact_tags"
    __table_args__ = (sa.Index("ix_contact_tags_workspace_tag", "workspace_id", "tag"),)

    contact_id: str = Field(
        foreign_key="contacts.id", primary_key=True, max_length=32, ondelete="CASCADE"
    )
    tag: str = Field(primary_key=True, max_length=100)
    workspace_id: str = Field(foreign_key="workspaces.id", max_length=32, ondelete="CASCADE")
    created_at: datetime = _created()


class ConsentRecord(SQLModel, table=True):
    """Append-only consent ledger; the email status column is its projection."""

    __tablename__ = "consent_ledger"
    __table_args__ = (
        sa.UniqueConstraint(
            "contact_id", "action", "source", "occurred_at", name="uq_consent_ledger_dedup"
        ),
        sa.CheckConstraint(_in("action", CONSENT_ACTIONS), name="action"),
        sa.CheckConstraint(_in("source", CONSENT_SOURCES), name="source"),
        # The status projection replays an address's rows; without this, every upsert with
        # consent and every import batch would scan the workspace's whole ledger.
        sa.Index("ix_consent_ledger_address", "workspace_id", "address"),
    )

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    contact_id: str = Field(index=True, max_length=32)
    channel: str = Field(default="email", max_length=16)
    topic: str | None = Field(default=None, max_length=100)
    action: str = Field(max_length=16)
    source: str = Field(max_length=32)
    form_id: str | None = Field(default=None, max_length=32)
    consent_text_version: str | None = Field(default=None, max_length=64)
    address: str | None = Field(default=None, max_length=320)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=500)
    redacted: bool = Field(default=False)
    occurred_at: datetime = _created()
    created_at: datetime = _created()


class Suppression(SQLModel, table=True):
    __tablename__ = "suppressions"

    workspace_id: str = Field(
        foreign_key="workspaces.id", primary_key=True, max_length=32, ondelete="CASCADE"
    )
    address_hash: str = Field(primary_key=True, max_length=64)
    reason: str = Field(max_length=32)
    created_at: datetime = _created()


class OptinToken(SQLModel, table=True):
    __tablename__ = "optin_tokens"
    __table_args__ = (sa.Index("ix_optin_tokens_identity_topic", "messenger_identity_id", "topic"),)

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    messenger_identity_id: str = Field(
        foreign_key="messenger_identities.id", max_length=32, ondelete="CASCADE"
    )
    kind: str = Field(max_length=16)
    topic: str | None = Field(default=None, max_length=100)
    token_enc: str = Field(sa_type=sa.Text)
    token_hash: str = Field(max_length=64, unique=True)
    status: str = Field(default="active", max_length=16)
    status_changed_at: datetime = _created()
    expires_at: datetime | None = _maybe_time()
    used_at: datetime | None = _maybe_time()
    created_at: datetime = _created()


class WebhookBody(SQLModel, table=True):
    """A verified webhook body exactly as received (the signature covers these bytes)."""

    __tablename__ = "webhook_bodies"

    id: str = Field(primary_key=True, max_length=32)
    app_id: str = Field(max_length=64)
    raw: bytes = Field(sa_type=sa.LargeBinary)
    signature: str = Field(max_length=100)
    received_at: datetime = _created()


class WebhookInbox(SQLModel, table=True):
    __tablename__ = "webhook_inbox"
    __table_args__ = (sa.Index("ix_webhook_inbox_pending", "applied_at", "event_time"),)

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str | None = Field(
        default=None, foreign_key="workspaces.id", index=True, max_length=32, ondelete="CASCADE"
    )
    app_id: str = Field(max_length=64)
    body_id: str | None = Field(default=None, max_length=32, index=True)
    page_id: str | None = Field(default=None, max_length=64)
    event_key: str = Field(max_length=300, unique=True)
    event_type: str = Field(max_length=64)
    event_time: datetime = _created()
    payload: str = Field(sa_type=sa.Text)
    status: str = Field(default="pending", max_length=16)
    error: str | None = Field(default=None, sa_type=sa.Text)
    received_at: datetime = _created()
    applied_at: datetime | None = _maybe_time()


class InteractionEvent(SQLModel, table=True):
    __tablename__ = "interaction_events"
    __table_args__ = (
        sa.Index("ix_interaction_events_contact", "contact_id", "occurred_at"),
        # The campaign funnel joins events to the campaign's deliveries.
        sa.Index("ix_interaction_events_delivery", "delivery_id"),
    )

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    contact_id: str | None = Field(default=None, max_length=32)
    page_id: str | None = Field(default=None, max_length=64)
    psid: str | None = Field(default=None, max_length=64)
    type: str = Field(max_length=32)
    delivery_id: str | None = Field(default=None, max_length=32)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    occurred_at: datetime = _created()
    created_at: datetime = _created()


class Delivery(SQLModel, table=True):
    """The unit of sending and the work queue: no provider call without a row (DESIGN section 4)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        sa.UniqueConstraint(
            "campaign_run_id", "step_index", "contact_id", name="uq_deliveries_step"
        ),
        sa.UniqueConstraint("workspace_id", "idempotency_key", name="uq_deliveries_idempotency"),
        sa.CheckConstraint(_in("state", DELIVERY_STATES), name="state"),
        sa.Index("ix_deliveries_due", "state", "due_at"),
        # claim_due's `ORDER BY due_at, id` over pending rows only: without it every round scans
        # the sent history too (bench/campaign.py).
        sa.Index(
            "ix_deliveries_pending_due",
            "due_at",
            "id",
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        ),
        sa.Index("ix_deliveries_contact", "contact_id", "state"),
    )

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    kind: str = Field(max_length=32)
    idempotency_key: str | None = Field(default=None, max_length=200)
    campaign_id: str | None = Field(default=None, index=True, max_length=32)
    campaign_run_id: str | None = Field(default=None, max_length=32)
    step_index: int | None = Field(default=None)
    contact_id: str = Field(max_length=32)
    page_id: str | None = Field(default=None, max_length=64)
    purpose: str = Field(max_length=32)
    topic: str | None = Field(default=None, max_length=100)
    state: str = Field(default="pending", max_length=16)
    due_at: datetime = _created()
    channel: str | None = Field(default=None, max_length=16)
    reason: str | None = Field(default=None, max_length=64)
    messaging_type: str | None = Field(default=None, max_length=16)
    tag: str | None = Field(default=None, max_length=32)
    content: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = _maybe_time()
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = _maybe_time()
    provider_message_id: str | None = Field(default=None, max_length=200)
    last_error: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    held_until: datetime | None = _maybe_time()
    sent_at: datetime | None = _maybe_time()
    delivered_at: datetime | None = _maybe_time()
    read_at: datetime | None = _maybe_time()
    clicked_at: datetime | None = _maybe_time()
    created_at: datetime = _created()
    updated_at: datetime = _created()


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_keys"

    workspace_id: str = Field(
        foreign_key="workspaces.id", primary_key=True, max_length=32, ondelete="CASCADE"
    )
    method: str = Field(primary_key=True, max_length=8)
    path: str = Field(primary_key=True, max_length=300)
    key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    status_code: int | None = Field(default=None)
    response_body: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = _created()


class WorkerHeartbeat(SQLModel, table=True):
    """Which scheduler processes are alive; `/readyz` and lease owners read it."""

    __tablename__ = "worker_heartbeats"

    id: str = Field(primary_key=True, max_length=64)
    hostname: str = Field(max_length=200)
    pid: int
    kind: str = Field(max_length=16)
    started_at: datetime = _created()
    seen_at: datetime = _created()


class ContactMerge(SQLModel, table=True):
    """What a merge moved, so that it can be reverted (DESIGN section 4)."""

    __tablename__ = "contact_merges"

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    kept_id: str = Field(index=True, max_length=32)
    merged_id: str = Field(max_length=32)
    moved: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    created_at: datetime = _created()
    reverted_at: datetime | None = _maybe_time()


class ContactImport(SQLModel, table=True):
    __tablename__ = "contact_imports"

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    format: str = Field(max_length=8)
    status: str = Field(default="receiving", max_length=16, index=True)
    bytes_received: int = Field(default=0, sa_type=sa.BigInteger)
    chunks: int = Field(default=0)
    # Where processing resumes: chunk, byte offset in it, and the number of the line there.
    next_chunk: int = Field(default=0)
    next_offset: int = Field(default=0)
    next_line: int = Field(default=1)
    lines: int = Field(default=0)
    created: int = Field(default=0)
    updated: int = Field(default=0)
    unchanged: int = Field(default=0)
    failed: int = Field(default=0)
    error: str | None = Field(default=None, sa_type=sa.Text)
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_expires_at: datetime | None = _maybe_time()
    created_at: datetime = _created()
    updated_at: datetime = _created()
    finished_at: datetime | None = _maybe_time()


class ContactImportChunk(SQLModel, table=True):
    """The uploaded file, kept in the database so any worker can process it after a restart."""

    __tablename__ = "contact_import_chunks"

    import_id: str = Field(
        foreign_key="contact_imports.id", primary_key=True, max_length=32, ondelete="CASCADE"
    )
    seq: int = Field(primary_key=True)
    data: bytes = Field(sa_type=sa.LargeBinary)


class ContactImportError(SQLModel, table=True):
    __tablename__ = "contact_import_errors"

    import_id: str = Field(
        foreign_key="contact_imports.id", primary_key=True, max_length=32, ondelete="CASCADE"
    )
    line: int = Field(primary_key=True)
    field: str = Field(primary_key=True, max_length=100)
    message: str = Field(max_length=500)


class LinkBinding(SQLModel, table=True):
    """Which PSID a ref bound, so a ref binds at most one PSID (DESIGN section 6)."""

    __tablename__ = "link_bindings"

    ref_hash: str = Field(primary_key=True, max_length=64)
    workspace_id: str = _ws_fk()
    page_id: str = Field(max_length=64)
    psid: str = Field(max_length=64)
    contact_id: str = Field(max_length=32)
    created_at: datetime = _created()


class ChannelPause(SQLModel, table=True):
    """A channel stopped for every workspace until an operator resumes it (e.g. the SMTP relay
    refused our credentials): sends wait instead of failing one by one."""

    __tablename__ = "channel_pauses"

    channel: str = Field(primary_key=True, max_length=32)
    reason: str = Field(max_length=500)
    paused_at: datetime = _created()


CAMPAIGN_STATUSES = ("draft", "scheduled", "running", "paused", "completed", "cancelled")
RUN_STATUSES = ("planning", "running", "completed", "cancelled")


class Campaign(SQLModel, table=True):
    """A campaign (DESIGN section 7). `spec` is the validated request body; the dispatcher reads a
    step's content from it, so 100,000 deliveries do not each carry a copy.

    `next_run_at` is when the scheduler starts the next run (`{"at": ...}` or the next cron
    occurrence); `trigger_on`/`trigger_key` index trigger campaigns (`tag_added`/`vip`)."""

    __tablename__ = "campaigns"
    __table_args__ = (
        sa.CheckConstraint(_in("status", CAMPAIGN_STATUSES), name="status"),
        sa.Index("ix_campaigns_next_run", "status", "next_run_at"),
        sa.Index("ix_campaigns_trigger", "workspace_id", "trigger_on", "trigger_key"),
    )

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    name: str = Field(max_length=200)
    page_id: str = Field(max_length=64)
    purpose: str = Field(max_length=32)
    topic: str | None = Field(default=None, max_length=100)
    spec: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    status: str = Field(default="draft", max_length=16)
    trigger_on: str | None = Field(default=None, max_length=32)
    trigger_key: str | None = Field(default=None, max_length=200)
    next_run_at: datetime | None = _maybe_time()
    launched_at: datetime | None = _maybe_time()
    paused_at: datetime | None = _maybe_time()
    cancelled_at: datetime | None = _maybe_time()
    completed_at: datetime | None = _maybe_time()
    created_at: datetime = _created()
    updated_at: datetime = _created()


class CampaignRun(SQLModel, table=True):
    """One launch, one scheduled or cron occurrence, or one trigger firing (DESIGN section 7).

    `occurrence` is unique per campaign ("launch", "at", the cron instant, "trigger:<event>"), so
    two workers that both see an occurrence due start one run between them."""

    __tablename__ = "campaign_runs"
    __table_args__ = (
        sa.UniqueConstraint("campaign_id", "occurrence", name="uq_campaign_runs_occurrence"),
        sa.CheckConstraint(_in("status", RUN_STATUSES), name="status"),
        sa.Index("ix_campaign_runs_status", "status"),
    )

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    campaign_id: str = Field(
        foreign_key="campaigns.id", index=True, max_length=32, ondelete="CASCADE"
    )
    kind: str = Field(max_length=16)
    occurrence: str = Field(max_length=200)
    contact_id: str | None = Field(default=None, max_length=32)
    status: str = Field(default="planning", max_length=16)
    audience_count: int = Field(default=0)
    started_at: datetime = _created()
    planned_at: datetime | None = _maybe_time()
    completed_at: datetime | None = _maybe_time()
    created_at: datetime = _created()


# -- capture (DESIGN section 10) -------------------------------------------------------------

FORM_KINDS = ("popup", "minigame", "embedded")
SPIN_STATUSES = ("pending", "won", "lost", "out_of_stock")


class CaptureForm(SQLModel, table=True):
    """A popup, minigame or embedded form. `consent_texts` keeps every consent text a version
    ever named (append-only), so a ledger row's `consent_text_version` always resolves."""

    __tablename__ = "capture_forms"
    __table_args__ = (sa.CheckConstraint(_in("kind", FORM_KINDS), name="kind"),)

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    name: str = Field(max_length=200)
    kind: str = Field(max_length=16)
    allowed_origins: list[str] = Field(default_factory=list, sa_type=JSONType)
    tags: list[str] = Field(default_factory=list, sa_type=JSONType)
    consent_text: str = Field(sa_type=sa.Text)
    consent_version: str = Field(max_length=64)
    consent_texts: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    double_opt_in: bool = Field(default=True)
    page_id: str | None = Field(default=None, max_length=64)
    locale: str | None = Field(default=None, max_length=35)
    triggers: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    look: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    created_at: datetime = _created()
    updated_at: datetime = _created()
    deleted_at: datetime | None = _maybe_time()


class CapturePrize(SQLModel, table=True):
    """A lucky-wheel segment. `awarded` only grows, by a conditional update that keeps it within
    `stock` (null: unlimited); the check constraint is the last line of defence."""

    __tablename__ = "capture_prizes"
    __table_args__ = (
        sa.CheckConstraint("stock IS NULL OR awarded <= stock", name="stock"),
        sa.CheckConstraint("weight >= 0", name="weight"),
    )

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    form_id: str = Field(
        foreign_key="capture_forms.id", index=True, max_length=32, ondelete="CASCADE"
    )
    label: str = Field(max_length=100)
    weight: int = Field(default=1)
    stock: int | None = Field(default=None)
    awarded: int = Field(default=0)
    losing: bool = Field(default=False)
    active: bool = Field(default=True)
    position: int = Field(default=0)
    created_at: datetime = _created()
    updated_at: datetime = _created()


class CapturePrizeCode(SQLModel, table=True):
    """A coupon code, given out once: `spin_id` is set by the reservation that takes it."""

    __tablename__ = "capture_prize_codes"
    __table_args__ = (
        sa.UniqueConstraint("prize_id", "code", name="uq_capture_prize_codes_code"),
        sa.Index("ix_capture_prize_codes_free", "prize_id", "spin_id"),
    )

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    prize_id: str = Field(foreign_key="capture_prizes.id", max_length=32, ondelete="CASCADE")
    code: str = Field(max_length=100)
    spin_id: str | None = Field(default=None, max_length=32)
    assigned_at: datetime | None = _maybe_time()
    created_at: datetime = _created()


class CaptureSpin(SQLModel, table=True):
    """One spin per address and form, decided on the server at capture and reserved only after
    confirmation. The address is a keyed hash (like the suppression list): no copy of it here."""

    __tablename__ = "capture_spins"
    __table_args__ = (
        sa.UniqueConstraint("form_id", "address_hash", name="uq_capture_spins_address"),
        sa.CheckConstraint(_in("status", SPIN_STATUSES), name="status"),
        sa.Index("ix_capture_spins_contact", "contact_id", "form_id"),
    )

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    form_id: str = Field(foreign_key="capture_forms.id", max_length=32, ondelete="CASCADE")
    address_hash: str = Field(max_length=64)
    contact_id: str = Field(max_length=32)
    prize_id: str | None = Field(default=None, max_length=32)
    status: str = Field(default="pending", max_length=16)
    code: str | None = Field(default=None, max_length=100)
    created_at: datetime = _created()
    reserved_at: datetime | None = _maybe_time()


class CaptureTokenUse(SQLModel, table=True):
    """The hash of every form token a capture used, so none is used twice (replay window)."""

    __tablename__ = "capture_token_uses"

    token_hash: str = Field(primary_key=True, max_length=64)
    workspace_id: str = _ws_fk()
    form_id: str = Field(max_length=32)
    used_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)


class CaptureInbox(SQLModel, table=True):
    """A capture accepted and answered, waiting for `capture.apply` to make its contact, ledger
    rows, tags, opt-in delivery and trigger (orchestrator/capture/inbox.py). Deleted once applied."""

    __tablename__ = "capture_inbox"
    __table_args__ = (sa.Index("ix_capture_inbox_pending", "status", "received_at"),)

    id: str = Field(primary_key=True, max_length=32)
    workspace_id: str = _ws_fk()
    form_id: str = Field(max_length=32)
    # The id a new contact gets, chosen when the answer was signed (its Messenger link names it).
    contact_id: str = Field(max_length=32)
    address: str = Field(max_length=320)
    name: str | None = Field(default=None, max_length=300)
    locale: str | None = Field(default=None, max_length=35)
    consent_version: str = Field(max_length=64)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=500)
    status: str = Field(default="pending", max_length=16)
    error: str | None = Field(default=None, sa_type=sa.Text)
    received_at: datetime = _created()


class CaptureCounter(SQLModel, table=True):
    """Per-form outcome counters (captured, confirmed, rejected.<reason>): the only thing a
    rejected request may store."""

    __tablename__ = "capture_counters"

    form_id: str = Field(primary_key=True, max_length=32)
    outcome: str = Field(primary_key=True, max_length=48)
    workspace_id: str = _ws_fk()
    count: int = Field(default=0, sa_type=sa.BigInteger)


class CommentReply(SQLModel, table=True):
    """The one private reply a Page comment allows (reference section 8), and whom it reached:
    the echo of the reply names the commenter's PSID."""

    __tablename__ = "comment_replies"
    __table_args__ = (sa.Index("ix_comment_replies_author", "page_id", "from_id"),)

    comment_id: str = Field(primary_key=True, max_length=100)
    workspace_id: str = _ws_fk()
    page_id: str = Field(max_length=64)
    from_id: str = Field(max_length=64)
    contact_id: str = Field(max_length=32, index=True)
    # Every echo of a sent delivery looks its private reply up by delivery id.
    delivery_id: str = Field(max_length=32, index=True)
    created_at: datetime = _created()


class SendBudget(SQLModel, table=True):
    """Sends taken in a key's current window, across every process (orchestrator.send_budgets)."""

    __tablename__ = "send_budgets"

    key: str = Field(primary_key=True, max_length=120)
    window_index: int = Field(sa_type=sa.BigInteger)
    period_seconds: int = Field(default=1)
    used: int = Field(default=0)
    granted: int = Field(default=0)


class SendLease(SQLModel, table=True):
    """Who may send for a Page right now (DESIGN section 8): a worker claims a Page's deliveries
    only while it holds the Page's lease, so the Page's budget holds across workers."""

    __tablename__ = "send_leases"

    key: str = Field(primary_key=True, max_length=100)
    owner: str = Field(max_length=64)
    expires_at: datetime = _created()
