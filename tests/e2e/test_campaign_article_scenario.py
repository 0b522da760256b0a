"""The source article's scenario end to end, on SQLite and PostgreSQL, through the Graph API
emulator and a real SMTP server (aiosmtpd), on the frozen clock (DESIGN sections 5-8).

1,000 contacts in every state a bulk send meets: window open, closed, 23 h 59 m after the last
message, email only, Messenger only, unsubscribed, unconfirmed, conversation taken over by a
person, and combinations of these. One two-step promotional campaign (step 2 is
`before_window_closes: 1h` with fallback `wait_for_window`) is created and launched through the
REST API; its jobs (planning, dispatch, the inbox, the hold sweep, run completion) are run one
after another while the clock is moved from phase to phase. Some people follow a fallback
email's m.me button and reply, some reply without clicking, some unsubscribe from the email.

The expected outcome of every step is written down per group (`GROUPS`) from DESIGN's rules,
never computed by the policy, and checked per contact, per PSID on the emulator (accepted
messages, nothing refused), per address on the SMTP server, and in the campaign's stats.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Literal
from urllib.parse import parse_qs, urlparse

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.email import SmtpSender
from channels.sandbox import AfterSend, GraphEmulator
from orchestrator import contacts, dispatch, inbound, sweeps
from orchestrator.campaigns import runs
from orchestrator.clock import FrozenClock
from orchestrator.ids import new_id
from orchestrator.models import (
    ConsentRecord,
    Contact,
    Delivery,
    EmailIdentity,
    MessengerIdentity,
    table_of,
)
from orchestrator.resources import Resources
from tests.e2e.test_email_reopen_loop import SETTINGS, Inbox, smtp, smtp_server  # noqa: F401
from tests.fixtures.api import T0, Tenant
from tests.integration.webhooks.test_webhook_receive import APP_ID, PAGE_ID, wired  # noqa: F401

# -- the campaign --------------------------------------------------------------------------------

CAMPAIGN_NAME = "Khuyến mãi tháng 12"
STEP1_TEXT = "Chào {{ contact.name | default('bạn') }}! Áo dài giảm 30% hôm nay."
STEP2_TEXT = "Còn 1 giờ: mã TET2027 cho {{ contact.name | default('bạn') }}"
STEP1_SUBJECT = "Ưu đãi tháng 12 cho {{ contact.name | default('bạn') }}"
SUPPORT, SUBSCRIBE = "Nhận hỗ trợ", "Đăng ký nhận thông báo"
MAX_WAIT = timedelta(days=3)
MARGIN = timedelta(hours=1)
CAMPAIGN: dict[str, Any] = {
    "name": CAMPAIGN_NAME,
    "page_id": PAGE_ID,
    "purpose": "promotional",
    "topic": "sale",
    # Everyone in the workspace: the policy, not the audience, must sort them out.
    "audience": {"email_status": [], "messenger": "any"},
    "trigger": None,
    "steps": [
        {
            "delay": {"after": "0s"},
            "messenger": {"text": STEP1_TEXT},
            "email": {
                "subject": STEP1_SUBJECT,
                "html": "<p>Chào {{ contact.name | default('bạn') }}, áo dài giảm 30%!</p>",
                "text": "Chào {{ contact.name | default('bạn') }}, áo dài giảm 30%!",
                "buttons": {
                    "support": {"vi": SUPPORT, "en": "Get support"},
                    "subscribe": {"vi": SUBSCRIBE, "en": "Subscribe to notifications"},
                },
            },
            "fallback": "email",
            "max_wait": None,
        },
        {
            "delay": {"before_window_closes": "1h"},
            "messenger": {"text": STEP2_TEXT},
            "email": None,
            "fallback": "wait_for_window",
            "max_wait": "3d",
        },
    ],
    "schedule": "now",
    "send_window": None,
    "frequency_cap": 2,
    # No throttle: it paces in real seconds, which the frozen clock cannot skip (a 50/s throttle
    # alone would make this test last 30 s); the throttle has its own tests.
    "throttle": None,
}
EMAIL_REQUEST_TEXT = "Bạn cho shop xin email để nhận ưu đãi và hỗ trợ nhanh hơn nhé?"

# -- expected outcomes ---------------------------------------------------------------------------

Outcome = tuple[str, str | None, str | None]  # (state, reason, channel)


def sent(reason: str) -> Outcome:
    return ("sent", reason, reason.split(".", maxsplit=1)[0])


def skipped(reason: str) -> Outcome:
    return ("skipped", f"skipped.{reason}", None)


MESSENGER = sent("messenger.window")
EMAIL_CLOSED = sent("email.window_closed")
EMAIL_NO_MESSENGER = sent("email.no_messenger")
EMAIL_HOLD_EXPIRED = sent("email.hold_expired")
HELD: Outcome = ("held", "held.until_window", None)
WAITING: Outcome = ("pending", None, None)  # planned for the window's end minus the margin
TAKEOVER = skipped("human_takeover")
NO_CHANNEL = skipped("no_reachable_channel")
UNSUBSCRIBED = skipped("unsubscribed")
UNCONFIRMED = skipped("unconfirmed")

OPEN = timedelta(hours=2)  # the person wrote 2 h before the launch
LAST_MINUTE = timedelta(hours=23, minutes=59)
CLOSED = timedelta(days=3)

EmailState = Literal["subscribed", "unsubscribed", "unconfirmed"]
Then = Literal["click", "reply", "unsubscribe"]
Via = Literal["core", "api", "webhook"]


@dataclass(frozen=True)
class Group:
    """Contacts in one state, and what DESIGN says each step must do for them.

    `step2_first` is step 2 right after step 1 (planned at once when step 1 ended), `step2` its
    final outcome. `then` is what the people do an hour after the launch: follow the support or
    subscribe button of their email and reply, reply without clicking, or unsubscribe from the
    email. `via` is how the contacts come to exist (see `create_contacts`)."""

    name: str
    count: int
    email: EmailState | None
    last_message: timedelta | None  # before the launch; None: no Messenger identity
    step1: Outcome
    step2_first: Outcome
    step2: Outcome
    takeover: bool = False
    then: Then | None = None
    via: Via = "core"


GROUPS = (
    # Window open: both steps on Messenger, step 2 at last message + 24h - 1h = T0 + 21h.
    Group("open", 200, None, OPEN, MESSENGER, WAITING, MESSENGER),
    Group("open, new via webhook", 20, None, OPEN, MESSENGER, WAITING, MESSENGER, via="webhook"),
    Group("open, email too", 60, "subscribed", OPEN, MESSENGER, WAITING, MESSENGER),
    # An email unsubscribe says nothing about Messenger.
    Group("open, email unsubscribed", 30, "unsubscribed", OPEN, MESSENGER, WAITING, MESSENGER,
          via="api"),
    # The window closes 1 minute after the launch: step 1 still inside it; step 2, planned inside
    # its margin, is due at once and still goes on Messenger.
    Group("23h59m ago", 60, None, LAST_MINUTE, MESSENGER, MESSENGER, MESSENGER),
    # Window closed, subscribed email: the fallback email, step 2 held for the window.
    Group("closed, clicks", 50, "subscribed", CLOSED, EMAIL_CLOSED, HELD, MESSENGER,
          then="click"),
    Group("closed, replies", 30, "subscribed", CLOSED, EMAIL_CLOSED, HELD, MESSENGER,
          then="reply"),
    Group("closed, silent", 70, "subscribed", CLOSED, EMAIL_CLOSED, HELD, EMAIL_HOLD_EXPIRED),
    # Email only: the invitation email; a click through Get Started binds a new PSID.
    Group("email only, clicks", 60, "subscribed", None, EMAIL_NO_MESSENGER, HELD, MESSENGER,
          then="click"),
    Group("email only, silent", 130, "subscribed", None, EMAIL_NO_MESSENGER, HELD,
          EMAIL_HOLD_EXPIRED),
    Group("email only, unsubscribes", 20, "subscribed", None, EMAIL_NO_MESSENGER, HELD,
          UNSUBSCRIBED, then="unsubscribe"),
    # Messenger only, window closed: no address for the fallback email.
    Group("messenger only, closed", 60, None, CLOSED, NO_CHANNEL, HELD, NO_CHANNEL),
    Group("messenger only, closed, replies", 20, None, CLOSED, NO_CHANNEL, HELD, MESSENGER,
          then="reply"),
    Group("unsubscribed", 50, "unsubscribed", None, UNSUBSCRIBED, HELD, UNSUBSCRIBED, via="api"),
    Group("unsubscribed, closed", 20, "unsubscribed", CLOSED, UNSUBSCRIBED, HELD, UNSUBSCRIBED,
          via="api"),
    Group("unconfirmed", 60, "unconfirmed", None, UNCONFIRMED, HELD, UNCONFIRMED, via="api"),
    # A person on the Page inbox took over an hour before the launch: nothing automated for the
    # 24 h quiet period, no email either; step 2 (due T0 + 21h) falls inside it.
    Group("taken over", 30, None, OPEN, TAKEOVER, WAITING, TAKEOVER, takeover=True),
    Group("taken over, email too", 20, "subscribed", OPEN, TAKEOVER, WAITING, TAKEOVER,
          takeover=True),
    Group("taken over from the Page inbox", 10, None, OPEN, TAKEOVER, WAITING, TAKEOVER,
          takeover=True, via="webhook"),
)  # fmt: skip
assert sum(group.count for group in GROUPS) == 1000

LAUNCH = T0
ACTIONS = T0 + timedelta(hours=1)
STEP2_DUE = T0 - OPEN + timedelta(hours=24) - MARGIN
LATE = STEP2_DUE + timedelta(minutes=30)
HOLDS_EXPIRE = LAUNCH + MAX_WAIT
AFTER_HOLDS = HOLDS_EXPIRE + timedelta(minutes=1)
ROUNDS = timedelta(minutes=1)  # the most that dispatch rounds move the clock in one phase
TAKEOVER_AT = T0 - timedelta(hours=1)


@dataclass
class Person:
    group: Group
    contact_id: str
    name: str | None
    address: str | None
    psid: str | None  # an email-only clicker gets one when they click

    def expected(self, step: int, *, final: bool) -> Outcome:
        if step == 0:
            return self.group.step1
        return self.group.step2 if final else self.group.step2_first

    def messenger_texts(self) -> list[str]:
        """What our app must have sent this person on Messenger, in any order."""
        who = self.name or "bạn"
        texts = []
        if self.group.via == "webhook" and not self.group.takeover:
            texts.append(EMAIL_REQUEST_TEXT)  # asked of every new PSID, outside campaigns
        if self.group.step1 == MESSENGER:
            texts.append(f"Chào {who}! Áo dài giảm 30% hôm nay.")
        if self.group.step2 == MESSENGER:
            texts.append(f"Còn 1 giờ: mã TET2027 cho {who}")
        return sorted(texts)

    def email_subjects(self) -> list[str]:
        subjects = []
        if self.group.step1[2] == "email":
            subjects.append(f"Ưu đãi tháng 12 cho {self.name or 'bạn'}")
        if self.group.step2[2] == "email":
            subjects.append(CAMPAIGN_NAME)  # the held step's Messenger text under its name
        return subjects


@dataclass
class Scenario:
    people: list[Person] = field(default_factory=list)

    def of(self, name: str) -> list[Person]:
        return [p for p in self.people if p.group.name == name]

    def doing(self, then: Then) -> list[Person]:
        return [p for p in self.people if p.group.then == then]


# -- creating the contacts -----------------------------------------------------------------------


def _name(group_index: int, index: int) -> str:
    return f"Khách {group_index:02d}-{index:03d}"


async def create_contacts(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
    emulator: GraphEmulator,
    clock: FrozenClock,
    resources: Resources,
) -> Scenario:
    """Three ways in, each where it matters:

    - `core`: rows inserted directly with Core, in one transaction (what the webhook and
      import paths leave behind: a contact, its identities, a consent ledger row whose projection
      is the status column); creating 900 contacts through those paths would take most of the
      test's minute, and they have tests of their own. The emulator learns each thread as Meta
      would know it (`add_person`), so it enforces the same window.
    - `api`: `POST /v1/contacts` (an address without a consent source stays unconfirmed), and an
      unsubscribe recorded through the consent ledger (`contacts.record_consent`).
    - `webhook`: the person writes to the Page through the emulator (at a past time), a person on
      the Page inbox may answer (an echo from the inbox app: the takeover), and the inbox is
      applied.
    """
    scenario = Scenario()
    contacts_rows: list[dict[str, Any]] = []
    email_rows: list[dict[str, Any]] = []
    ledger_rows: list[dict[str, Any]] = []
    identity_rows: list[dict[str, Any]] = []
    created = T0 - timedelta(days=30)
    consented = T0 - timedelta(days=20)
    psids = iter(range(1, 10_000))
    for group_index, group in enumerate(GROUPS):
        for index in range(group.count):
            psid = None
            if group.last_message is not None:
                psid = f"{6_100_000_000_000_000 + next(psids)}"
                last = T0 - group.last_message
                if group.via != "webhook":
                    emulator.add_person(PAGE_ID, psid, window_opened_at=last, last_message_at=last)
            address = f"k{group_index:02d}.{index:03d}@example.com" if group.email else None
            if group.via == "webhook":
                assert psid is not None and group.last_message is not None
                await emulator.person_writes(
                    PAGE_ID, psid, "Shop ơi, áo dài còn size M không?", at=T0 - group.last_message
                )
                if group.takeover:
                    await emulator.page_inbox_reply(
                        PAGE_ID, psid, "Dạ còn ạ, chị chờ em kiểm tra nhé", at=TAKEOVER_AT
                    )
                scenario.people.append(Person(group, "", None, None, psid))
                continue
            name = _name(group_index, index)
            if group.via == "api":
                contact_id = await _api_contact(client, tenant, group, name, address, psid)
                scenario.people.append(Person(group, contact_id, name, address, psid))
                continue
            contact_id = new_id("ct")
            scenario.people.append(Person(group, contact_id, name, address, psid))
            contacts_rows.append(
                {"id": contact_id, "workspace_id": tenant.workspace_id, "name": name,
                 "attributes": {}, "created_at": created, "updated_at": created}
            )  # fmt: skip
            if address is not None:
                assert group.email == "subscribed"  # the other statuses come through the API
                email_rows.append(
                    {"id": new_id("em"), "workspace_id": tenant.workspace_id,
                     "contact_id": contact_id, "address": address, "status": "subscribed",
                     "status_changed_at": consented, "created_at": created}
                )  # fmt: skip
                ledger_rows.append(
                    {"id": new_id("cl"), "workspace_id": tenant.workspace_id,
                     "contact_id": contact_id, "channel": "email", "action": "subscribe",
                     "source": "popup", "address": address, "redacted": False,
                     "occurred_at": consented, "created_at": consented}
                )  # fmt: skip
            if psid is not None and group.last_message is not None:
                last = T0 - group.last_message
                identity_rows.append(
                    {"id": new_id("mi"), "workspace_id": tenant.workspace_id,
                     "contact_id": contact_id, "page_id": PAGE_ID, "psid": psid,
                     "window_opened_at": last, "last_user_message_at": last,
                     "last_event_at": last,
                     "takeover_at": TAKEOVER_AT if group.takeover else None,
                     "created_at": created, "updated_at": created}
                )  # fmt: skip
    async with sessions() as s, s.begin():
        for model, rows in (
            (Contact, contacts_rows),
            (EmailIdentity, email_rows),
            (ConsentRecord, ledger_rows),
            (MessengerIdentity, identity_rows),
        ):
            await s.execute(sa.insert(table_of(model)), rows)
    await apply_inbox(sessions, clock, resources)
    # The webhook-born contacts: find them by PSID.
    identities = table_of(MessengerIdentity)
    async with sessions() as s:
        result = await s.execute(sa.select(identities.c.psid, identities.c.contact_id))
        owner = {str(psid): str(contact_id) for psid, contact_id in result.all()}
    for person in scenario.people:
        if person.group.via == "webhook":
            assert person.psid is not None
            person.contact_id = owner[person.psid]
    return scenario


async def _api_contact(
    client: httpx.AsyncClient,
    tenant: Tenant,
    group: Group,
    name: str,
    address: str | None,
    psid: str | None,
) -> str:
    payload: dict[str, Any] = {"name": name, "email": address}
    if group.email != "unconfirmed":
        payload.update(consent_source="popup", consent_at=(T0 - timedelta(days=20)).isoformat())
    if psid is not None:
        payload["messenger"] = {"page_id": PAGE_ID, "psid": psid}
    response = await client.post("/v1/contacts", headers=tenant.headers, json=payload)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def settle_api_contacts(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, scenario: Scenario
) -> None:
    """The API contacts' window (the API cannot place a past message) and their unsubscribes,
    through the consent ledger."""
    identities, emails = table_of(MessengerIdentity), table_of(EmailIdentity)
    async with sessions() as s, s.begin():
        for person in scenario.people:
            if person.group.via != "api":
                continue
            if person.group.last_message is not None:
                last = T0 - person.group.last_message
                await s.execute(
                    sa.update(identities)
                    .where(identities.c.contact_id == person.contact_id)
                    .values(window_opened_at=last, last_user_message_at=last, last_event_at=last)
                )
            if person.group.email == "unsubscribed":
                email_id = (
                    await s.execute(
                        sa.select(emails.c.id).where(emails.c.contact_id == person.contact_id)
                    )
                ).scalar_one()
                identity = await s.get(EmailIdentity, email_id)
                assert identity is not None
                await contacts.record_consent(
                    s,
                    identity=identity,
                    action="unsubscribe",
                    consent=contacts.Consent(source="unsubscribe_link", at=T0 - timedelta(days=10)),
                    now=clock.now(),
                )


# -- running the jobs ----------------------------------------------------------------------------

# Up to 250 deliveries a round, a round a second on the test's clock: under the 300 Send API calls
# a second that the emulator allows a Page. Concurrency stays 1: the fixture's sessions share the
# test's one connection.
DISPATCH = replace(SETTINGS, batch=250)
ROUND = timedelta(seconds=1)


async def apply_inbox(
    sessions: async_sessionmaker[AsyncSession], clock: FrozenClock, resources: Resources
) -> int:
    applied = 0
    while True:
        async with sessions() as s, s.begin():
            handled = await inbound.apply_pending(s, resources.keyring, now=clock.now(), limit=500)
        applied += handled
        if handled == 0:
            return applied


async def drain(
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    smtp: SmtpSender,  # noqa: F811
) -> int:
    """Dispatch rounds, each followed by the inbox (the echoes of our own sends), until nothing
    is due (a round sends at most one delivery per contact), then the run-completion job."""
    processed = 0
    for _ in range(20):
        handled = await dispatch.dispatch_once(
            resources.sessions,
            resources.keyring,
            resources.messenger,
            worker_id="wk_article",
            clock=clock.now,
            settings=DISPATCH,
            email=smtp,
        )
        applied = await apply_inbox(sessions, clock, resources)
        # A round takes time; on a clock that stood still, every round would fall in the same
        # second of the Page's send budget.
        clock.advance(ROUND)
        processed += handled
        if handled == 0 and applied == 0:
            async with sessions() as s, s.begin():
                await runs.complete_finished(s, now=clock.now())
            return processed
    raise AssertionError("dispatch did not settle in 20 rounds")


@dataclass(frozen=True)
class Row:
    state: str
    reason: str | None
    channel: str | None
    due_at: datetime
    held_until: datetime | None
    sent_at: datetime | None
    clicked_at: datetime | None

    @property
    def outcome(self) -> Outcome:
        return (self.state, self.reason, self.channel)


async def campaign_rows(
    sessions: async_sessionmaker[AsyncSession], campaign_id: str
) -> dict[tuple[str, int], Row]:
    table = table_of(Delivery)
    async with sessions() as s:
        result = await s.execute(
            sa.select(
                table.c.contact_id, table.c.step_index, table.c.state, table.c.reason,
                table.c.channel, table.c.due_at, table.c.held_until, table.c.sent_at,
                table.c.clicked_at,
            ).where(table.c.campaign_id == campaign_id)
        )  # fmt: skip
        return {(r.contact_id, r.step_index): Row(*r[2:]) for r in result.all()}


def mismatches(
    scenario: Scenario, rows: dict[tuple[str, int], Row], *, steps: Sequence[int], final: bool
) -> Counter[tuple[str, int, Outcome, Outcome | None]]:
    """(group, step, expected, actual) -> how many contacts, for every contact that is off."""
    off: Counter[tuple[str, int, Outcome, Outcome | None]] = Counter()
    for person in scenario.people:
        for step in steps:
            row = rows.get((person.contact_id, step))
            actual = row.outcome if row is not None else None
            expected = person.expected(step, final=final)
            if actual != expected:
                off[(person.group.name, step + 1, expected, actual)] += 1
    return off


async def refresh_planner_statistics(sessions: async_sessionmaker[AsyncSession]) -> None:
    """What autovacuum does for committed rows, for the rows of this rolled-back transaction,
    which it never sees. Without it PostgreSQL plans the stats' funnel for near-empty tables:
    a nested loop over the workspace's interaction events per delivery, ~6 s here."""
    async with sessions() as s, s.begin():
        if s.get_bind().dialect.name == "postgresql":
            await s.execute(sa.text("ANALYZE deliveries, interaction_events"))


# -- what the outside world saw ------------------------------------------------------------------


def parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def received(inbox: Inbox) -> Counter[tuple[str, str]]:
    """(recipient, subject) of every email the SMTP server accepted."""
    got: Counter[tuple[str, str]] = Counter()
    for _, recipients, raw in inbox.messages:
        subject = str(parsed(raw)["Subject"])
        for recipient in recipients:
            got[(recipient, subject)] += 1
    return got


def email_to(inbox: Inbox, address: str) -> EmailMessage:
    [raw] = [raw for _, recipients, raw in inbox.messages if address in recipients]
    return parsed(raw)


def button_links(message: EmailMessage) -> dict[str, str]:
    """The plain-text part lists each m.me button as `label: url`."""
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    found = re.findall(r"^(.+): (https://outreach\.test/r/\S+)\s*$", part.get_content(), re.M)
    return {label.strip(): url for label, url in found}


def messenger_texts(emulator: GraphEmulator, psid: str) -> list[str]:
    return sorted(
        str((m.message or {}).get("text"))
        for m in emulator.sent_to(PAGE_ID, psid)
        if m.app_id == APP_ID  # not the Page inbox's own replies
    )


def refused(emulator: GraphEmulator) -> list[tuple[str, str, int, Any]]:
    """Every Graph API call the emulator answered with an error (a refused send among them)."""
    return [
        (r.method, r.endpoint, r.status_code, r.response)
        for r in emulator.requests
        if r.status_code != 200
    ]


def tally(outcomes: Iterable[Outcome], state: str) -> dict[str, int]:
    return dict(Counter(reason for s, reason, _ in outcomes if s == state and reason))


# -- the scenario --------------------------------------------------------------------------------


async def test_the_article_scenario_with_a_thousand_contacts(
    wired: GraphEmulator,  # noqa: F811
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    resources: Resources,
    smtp: SmtpSender,  # noqa: F811
    smtp_server: tuple[Inbox, int],  # noqa: F811
) -> None:
    inbox, _ = smtp_server
    # Our own echoes stay on (they must never read as a takeover); delivery receipts only set
    # `delivered_at`, which this scenario does not check, and would add a webhook per send.
    wired.after_send = AfterSend(echo=True, delivery=False)
    scenario = await create_contacts(client, sessions, tenant, wired, clock, resources)
    await settle_api_contacts(sessions, clock, scenario)
    assert len({p.contact_id for p in scenario.people}) == 1000

    # Phase 1, the launch: step 1 for everyone; step 2 planned as each step 1 ends.
    created = await client.post("/v1/campaigns", headers=tenant.headers, json=CAMPAIGN)
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    launched = await client.post(f"/v1/campaigns/{campaign_id}/launch", headers=tenant.headers)
    assert launched.status_code == 202, launched.text
    assert await runs.plan_pending_runs(resources.sessions, clock=clock.now) == 1000
    await drain(sessions, clock, resources, smtp)
    rows = await campaign_rows(sessions, campaign_id)
    assert mismatches(scenario, rows, steps=(0, 1), final=False) == Counter()
    assert len(rows) == 2000
    for person in scenario.people:
        second = rows[(person.contact_id, 1)]
        if second.outcome == WAITING:
            assert second.due_at == STEP2_DUE, person.group.name
        if second.outcome == HELD:
            assert second.held_until is not None
            assert HOLDS_EXPIRE <= second.held_until < HOLDS_EXPIRE + ROUNDS, person.group.name

    # Phase 2, an hour later: people act on their emails, or write to the Page.
    clock.set(ACTIONS)
    for number, person in enumerate(scenario.doing("click")):
        assert person.address is not None
        links = button_links(email_to(inbox, person.address))
        assert set(links) == {SUPPORT, SUBSCRIBE}
        followed = await client.get(
            links[SUPPORT if number % 2 else SUBSCRIBE].removeprefix("https://outreach.test")
        )
        assert followed.status_code == 302
        location = urlparse(followed.headers["location"])
        assert (location.netloc, location.path) == ("m.me", "/shop")
        ref = parse_qs(location.query)["ref"][0]
        if person.psid is None:  # a new thread: Get Started with the ref binds the new PSID
            person.psid = f"{6_200_000_000_000_000 + number}"
        assert await wired.person_clicks_mme_link(PAGE_ID, person.psid, ref) is not None
        await wired.person_writes(PAGE_ID, person.psid, "Mình muốn xem mẫu áo dài đỏ")
    for person in scenario.doing("reply"):
        assert person.psid is not None
        await wired.person_writes(PAGE_ID, person.psid, "Còn mã giảm giá không shop?")
    for person in scenario.doing("unsubscribe"):
        assert person.address is not None
        url = email_to(inbox, person.address)["List-Unsubscribe"].strip("<>")
        response = await client.post(url.removeprefix("https://outreach.test"))
        assert response.status_code == 200
    await apply_inbox(sessions, clock, resources)
    await drain(sessions, clock, resources, smtp)
    rows = await campaign_rows(sessions, campaign_id)
    for person in scenario.people:
        clicked = rows[(person.contact_id, 0)].clicked_at
        assert clicked == (ACTIONS if person.group.then == "click" else None), person.group.name
        if person.group.then in ("click", "reply"):
            row = rows[(person.contact_id, 1)]
            assert row.outcome == MESSENGER, person.group.name
            assert row.sent_at is not None
            assert ACTIONS <= row.sent_at < ACTIONS + ROUNDS, person.group.name

    # Phase 3, just before the open windows close: step 2 at their end minus the margin.
    clock.set(LATE)
    await drain(sessions, clock, resources, smtp)

    # Phase 4, past the maximum wait: the holds left expire into the email (or a skip).
    clock.set(AFTER_HOLDS)
    async with sessions() as s, s.begin():
        expired = await sweeps.expire_holds(s, now=clock.now())
    assert expired == sum(1 for p in scenario.people if p.group.step2_first == HELD) - sum(
        1 for p in scenario.people if p.group.then in ("click", "reply")
    )
    await drain(sessions, clock, resources, smtp)

    # Every contact got exactly what the policy allows, on the right channel.
    rows = await campaign_rows(sessions, campaign_id)
    assert len(rows) == 2000
    assert mismatches(scenario, rows, steps=(0, 1), final=True) == Counter()

    # Messenger: what the emulator accepted, per PSID, and it refused nothing.
    assert refused(wired) == []
    assert all(d.ok for d in wired.deliveries), [d.error for d in wired.deliveries if not d.ok]
    expected_texts = {p.psid: p.messenger_texts() for p in scenario.people if p.psid}
    actual_texts = {psid: messenger_texts(wired, psid) for psid in expected_texts}
    assert {k: v for k, v in actual_texts.items() if v != expected_texts[k]} == {}
    ours = [m for m in wired.sent if m.app_id == APP_ID]
    assert len(ours) == sum(len(texts) for texts in expected_texts.values())
    campaign_sends = [m for m in ours if m.message and m.message.get("text") != EMAIL_REQUEST_TEXT]
    assert {(m.messaging_type, m.tag) for m in campaign_sends} == {("UPDATE", None)}

    # Email: what the SMTP server received, per address.
    expected_mail = Counter(
        (p.address, subject) for p in scenario.people if p.address for subject in p.email_subjects()
    )
    assert received(inbox) == expected_mail
    for person in scenario.of("closed, silent")[:3]:
        assert person.address is not None
        [_, after_hold] = [
            parsed(raw) for _, recipients, raw in inbox.messages if person.address in recipients
        ]
        body = after_hold.get_body(preferencelist=("plain",))
        assert body is not None
        assert f"Còn 1 giờ: mã TET2027 cho {person.name}" in body.get_content()

    # The stats add up.
    await refresh_planner_statistics(sessions)
    outcomes = [p.expected(step, final=True) for p in scenario.people for step in (0, 1)]
    stats = (await client.get(f"/v1/campaigns/{campaign_id}/stats", headers=tenant.headers)).json()
    assert stats["audience"] == 1000
    assert sum(stats["by_state"].values()) == 2000
    assert {k: v for k, v in stats["by_state"].items() if v} == dict(
        Counter(state for state, _, _ in outcomes)
    )
    assert stats["sent_by_route"] == tally(outcomes, "sent")
    assert stats["skipped_by_reason"] == tally(outcomes, "skipped")
    assert stats["failed_by_reason"] == {}
    clickers = len(scenario.doing("click"))
    back_on_messenger = sum(
        1 for p in scenario.people if p.group.step1[2] == "email" and p.group.step2 == MESSENGER
    )
    assert stats["funnel"] == {
        "fallback_emails": sum(1 for _, _, channel in outcomes if channel == "email"),
        "clicked": clickers,
        "reopened": clickers,
        "completed_on_messenger": back_on_messenger,
        "unsubscribed": len(scenario.doing("unsubscribe")),
    }
    held = await client.get(
        f"/v1/campaigns/{campaign_id}/deliveries",
        headers=tenant.headers,
        params={"reason": "email.hold_expired", "limit": 500},
    )
    assert len(held.json()["data"]) == tally(outcomes, "sent")["email.hold_expired"]
    campaign = (await client.get(f"/v1/campaigns/{campaign_id}", headers=tenant.headers)).json()
    assert campaign["status"] == "completed"
