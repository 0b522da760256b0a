"""The demo's contacts: who they are, where their last interaction lies, and what they will do.

Pure: every function takes `now` and returns data; the shell inserts the rows and tells the Graph
API emulator about each thread. Rather than wait for time to pass, the past is placed: a window
opened `24h - margin - step2_due_in` ago makes the campaign's `before_window_closes` step due
`step2_due_in` from now, and a closed window is simply three days old.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

EmailStatus = Literal["subscribed", "unsubscribed", "unconfirmed"]
MessengerState = Literal["open", "closed", "taken_over"]
Action = Literal["click", "reply", "unsubscribe"]

WINDOW = timedelta(hours=24)
STEP2_MARGIN = timedelta(hours=1)  # the campaign's `before_window_closes: "1h"`
CLOSED_AGO = timedelta(days=3)
TAKEOVER_AGO = timedelta(hours=1)  # inside the 24 h quiet period after a Page inbox reply
CREATED_AGO = timedelta(days=30)
CONSENTED_AGO = timedelta(days=20)
UNSUBSCRIBED_AGO = timedelta(days=10)
PSID_BASE = 6_100_000_000_000_000
NEW_PSID_BASE = 6_200_000_000_000_000  # threads that start when an email-only contact clicks


@dataclass(frozen=True)
class Group:
    """Contacts in one state. `per_mille` is the group's share of the contacts; `actions` are
    the shares (in percent of the group) that click a fallback email's button and then write,
    write on Messenger without clicking, or unsubscribe from the email, in that order."""

    key: str
    vi: str
    en: str
    per_mille: int
    email: EmailStatus | None
    messenger: MessengerState | None
    actions: tuple[tuple[Action, int], ...] = ()


GROUPS: tuple[Group, ...] = (
    Group("messenger_open", "Messenger, cửa sổ đang mở", "Messenger, window open",
          300, None, "open"),
    Group("both_open", "Messenger + email, cửa sổ đang mở", "Messenger + email, window open",
          100, "subscribed", "open"),
    Group("both_closed", "Messenger + email, cửa sổ đã đóng", "Messenger + email, window closed",
          200, "subscribed", "closed", (("click", 40), ("reply", 10), ("unsubscribe", 5))),
    Group("email_only", "Chỉ có email", "Email only",
          200, "subscribed", None, (("click", 30), ("unsubscribe", 5))),
    Group("messenger_closed", "Chỉ Messenger, cửa sổ đã đóng", "Messenger only, window closed",
          60, None, "closed", (("reply", 33),)),
    Group("unsubscribed", "Email đã hủy đăng ký", "Email unsubscribed",
          50, "unsubscribed", None),
    Group("unconfirmed", "Email chưa xác nhận", "Email not confirmed",
          50, "unconfirmed", None),
    Group("taken_over", "Nhân viên đang trả lời trên Page", "Taken over on the Page inbox",
          40, None, "taken_over"),
)  # fmt: skip
assert sum(group.per_mille for group in GROUPS) == 1000

_FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ")
_MIDDLE = ("Thị", "Văn", "Ngọc", "Minh", "Thu", "Quốc", "Hồng")
_GIVEN = ("Lan", "Minh", "Hà", "Bảo", "Trang", "Hùng", "Mai", "Tuấn", "Linh", "Phương", "Vy")


@dataclass(frozen=True)
class Person:
    index: int
    group: Group
    name: str | None
    address: str | None
    psid: str | None
    last_event_at: datetime | None
    takeover_at: datetime | None
    action: Action | None

    @property
    def new_psid(self) -> str:
        """The PSID of the thread an email-only contact starts by clicking a button."""
        return str(NEW_PSID_BASE + self.index)


def group_sizes(contacts: int) -> dict[str, int]:
    """Each group's share of `contacts`, rounded so that they add up (largest remainder)."""
    if contacts < 0:
        raise ValueError("contacts must not be negative")
    exact = [(group.key, contacts * group.per_mille) for group in GROUPS]
    sizes = {key: value // 1000 for key, value in exact}
    left = contacts - sum(sizes.values())
    by_remainder = sorted(exact, key=lambda item: (-(item[1] % 1000), item[0]))
    for key, _ in by_remainder[:left]:
        sizes[key] += 1
    return sizes


def action_counts(group: Group, size: int) -> dict[Action, int]:
    return {action: size * percent // 100 for action, percent in group.actions}


def step2_due_in_for(contacts: int) -> timedelta:
    """When step 2 falls due for the open windows: about when step 1 is done on two cores (it
    sends some 100 a second), so that the progress bars fill one after the other; 8 to 30 s."""
    return timedelta(seconds=max(8, min(30, round(5 + contacts * 0.015))))


def window_opened_for(now: datetime, step2_due_in: timedelta) -> datetime:
    """A last interaction that makes the `before_window_closes` step due `step2_due_in` from now."""
    return now - (WINDOW - STEP2_MARGIN - step2_due_in)


def _name(index: int) -> str | None:
    if index % 10 == 9:
        return None  # templates fall back to `default('bạn')`
    return (
        f"{_FAMILY[index % len(_FAMILY)]} {_MIDDLE[index // 7 % len(_MIDDLE)]} "
        f"{_GIVEN[index // 3 % len(_GIVEN)]}"
    )


def people(contacts: int, *, now: datetime, step2_due_in: timedelta) -> list[Person]:
    sizes = group_sizes(contacts)
    opened = window_opened_for(now, step2_due_in)
    everyone: list[Person] = []
    for group in GROUPS:
        size = sizes[group.key]
        planned: list[Action | None] = []
        for action, count in action_counts(group, size).items():
            planned.extend([action] * count)
        planned.extend([None] * (size - len(planned)))
        for doing in planned:
            index = len(everyone)
            last = None
            if group.messenger is not None:
                last = now - CLOSED_AGO if group.messenger == "closed" else opened
            everyone.append(
                Person(
                    index=index,
                    group=group,
                    name=_name(index),
                    address=f"khach.{index:05d}@example.com" if group.email else None,
                    psid=str(PSID_BASE + index) if group.messenger else None,
                    last_event_at=last,
                    takeover_at=now - TAKEOVER_AGO if group.messenger == "taken_over" else None,
                    action=doing,
                )
            )
    return everyone


@dataclass(frozen=True)
class Rows:
    """Core insert rows per table, as the webhook and import paths would leave them."""

    contacts: list[dict[str, Any]]
    emails: list[dict[str, Any]]
    ledger: list[dict[str, Any]]
    identities: list[dict[str, Any]]
    contact_ids: dict[int, str]  # person index -> contact id


def seed_rows(
    everyone: Sequence[Person],
    *,
    workspace_id: str,
    page_id: str,
    now: datetime,
    new_id: Callable[[str], str],
) -> Rows:
    """Unsubscribed addresses are inserted subscribed; the shell then unsubscribes them through
    the consent ledger, so the suppression list learns them as it would in production."""
    created, consented = now - CREATED_AGO, now - CONSENTED_AGO
    rows = Rows([], [], [], [], {})
    for person in everyone:
        contact_id = new_id("ct")
        rows.contact_ids[person.index] = contact_id
        rows.contacts.append(
            {"id": contact_id, "workspace_id": workspace_id, "name": person.name,
             "attributes": {}, "created_at": created, "updated_at": created}
        )  # fmt: skip
        if person.address is not None:
            confirmed = person.group.email != "unconfirmed"
            rows.emails.append(
                {"id": new_id("em"), "workspace_id": workspace_id, "contact_id": contact_id,
                 "address": person.address,
                 "status": "subscribed" if confirmed else "unconfirmed",
                 "status_changed_at": consented if confirmed else created, "created_at": created}
            )  # fmt: skip
            if confirmed:
                rows.ledger.append(
                    {"id": new_id("cl"), "workspace_id": workspace_id, "contact_id": contact_id,
                     "channel": "email", "action": "subscribe", "source": "popup",
                     "address": person.address, "redacted": False, "occurred_at": consented,
                     "created_at": consented}
                )  # fmt: skip
        if person.psid is not None:
            rows.identities.append(
                {"id": new_id("mi"), "workspace_id": workspace_id, "contact_id": contact_id,
                 "page_id": page_id, "psid": person.psid,
                 "window_opened_at": person.last_event_at,
                 "last_user_message_at": person.last_event_at,
                 "last_event_at": person.last_event_at, "takeover_at": person.takeover_at,
                 "created_at": created, "updated_at": created}
            )  # fmt: skip
    return rows


def actors(everyone: Iterable[Person], action: Action) -> list[Person]:
    return [person for person in everyone if person.action == action]
