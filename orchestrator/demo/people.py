"""Emulated people acting on the campaign, as a person would, from the outside.

A clicker opens their fallback email (the .eml the SMTP server kept), follows a button through
`/r/<token>` to the m.me redirect, opens that link in Messenger (the Graph API emulator posts the
signed referral, or the Get Started postback for a new thread) and writes a message. A replier
writes on Messenger without clicking. An unsubscriber uses the email's one-click List-Unsubscribe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, urlparse

import httpx

from channels.sandbox import GraphEmulator
from orchestrator.demo import mailbox
from orchestrator.demo.population import Person

SUPPORT = "Nhận hỗ trợ"
SUBSCRIBE = "Đăng ký nhận thông báo"
AFTER_CLICK = "Mình muốn xem mẫu áo dài đỏ"
REPLY = "Còn mã giảm giá không shop?"


class ActionFailed(RuntimeError):
    """One person could not do what the demo planned; the message says who and why."""


@dataclass(frozen=True)
class World:
    emulator: GraphEmulator
    api: httpx.AsyncClient  # keyless requests to the local API, as a browser would make them
    drop: mailbox.MailDrop
    page_id: str
    public_url: str


def _local(url: str, public_url: str) -> str:
    """A link from an email, as a path on the local server (the emails carry the public URL)."""
    base = public_url.rstrip("/")
    if not url.startswith(base + "/"):
        raise ActionFailed(f"{url!r} is not under {base}")
    return url.removeprefix(base)


def _latest_email(world: World, person: Person) -> EmailMessage:
    paths = world.drop.by_recipient.get((person.address or "").lower())
    if not paths:
        raise ActionFailed(f"no email reached {person.address}")
    return mailbox.read(paths[-1])


async def click(world: World, person: Person) -> None:
    message = _latest_email(world, person)
    buttons = mailbox.button_links(message, public_url=world.public_url)
    label = SUPPORT if person.index % 2 == 0 else SUBSCRIBE
    if label not in buttons:
        raise ActionFailed(f"the email to {person.address} has no {label!r} button: {buttons}")
    followed = await world.api.get(_local(buttons[label], world.public_url))
    location = urlparse(followed.headers.get("location", ""))
    if followed.status_code != 302 or location.netloc != "m.me":
        raise ActionFailed(f"/r/ answered {followed.status_code} to {location.geturl()!r}")
    refs = parse_qs(location.query).get("ref")
    if not refs:
        raise ActionFailed(f"the m.me link {location.geturl()!r} carries no ref")
    psid = person.psid or person.new_psid
    event = await world.emulator.person_clicks_mme_link(world.page_id, psid, refs[0])
    if event is None:
        raise ActionFailed("the Page has no Get Started button: a new thread cannot start")
    await world.emulator.person_writes(world.page_id, psid, AFTER_CLICK)


async def reply(world: World, person: Person) -> None:
    if person.psid is None:
        raise ActionFailed(f"person {person.index} has no Messenger thread to write in")
    await world.emulator.person_writes(world.page_id, person.psid, REPLY)


async def unsubscribe(world: World, person: Person) -> None:
    url = mailbox.unsubscribe_url(_latest_email(world, person))
    if url is None:
        raise ActionFailed(f"the email to {person.address} has no one-click unsubscribe URL")
    # RFC 8058 section 3.2: what a mail client POSTs for a one-click unsubscribe.
    done = await world.api.post(
        _local(url, world.public_url),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    if done.status_code != 200:
        raise ActionFailed(f"one-click unsubscribe answered {done.status_code}")


async def act_all(
    world: World,
    everyone: Sequence[Person],
    *,
    on_done: Callable[[], None],
    concurrency: int = 8,
) -> list[str]:
    """Every planned action, a few at a time; returns what went wrong (nothing, normally)."""
    gate = asyncio.Semaphore(concurrency)
    problems: list[str] = []
    doers = {"click": click, "reply": reply, "unsubscribe": unsubscribe}

    async def one(person: Person) -> None:
        if person.action is None:
            return
        async with gate:
            try:
                await doers[person.action](world, person)
            except (ActionFailed, httpx.HTTPError) as exc:
                problems.append(f"{person.action} by contact #{person.index}: {exc}")
            finally:
                on_done()

    await asyncio.gather(*(one(person) for person in everyone))
    return problems
