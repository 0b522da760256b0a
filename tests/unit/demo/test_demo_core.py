"""The demo's pure parts: who its contacts are, and the sums its funnel checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.demo import funnel, population

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@given(st.integers(min_value=0, max_value=20_000))
def test_group_sizes_add_up_and_stay_within_one_of_their_share(contacts: int) -> None:
    sizes = population.group_sizes(contacts)
    assert sum(sizes.values()) == contacts
    for group in population.GROUPS:
        assert abs(sizes[group.key] - contacts * group.per_mille / 1000) < 1


def test_a_thousand_contacts_are_the_groups_as_written() -> None:
    assert population.group_sizes(1000) == {g.key: g.per_mille for g in population.GROUPS}


def test_people_place_the_past_so_step_two_is_due_when_asked() -> None:
    due_in = timedelta(seconds=20)
    everyone = population.people(1000, now=NOW, step2_due_in=due_in)
    assert len(everyone) == 1000
    assert len({p.index for p in everyone}) == 1000
    open_windows = [p for p in everyone if p.group.messenger in ("open", "taken_over")]
    assert {p.last_event_at for p in open_windows} == {
        NOW - timedelta(hours=22, minutes=59, seconds=40)
    }
    # The window-relative step: last event + 24 h - its 1 h margin.
    assert {p.last_event_at + timedelta(hours=23) for p in open_windows if p.last_event_at} == {
        NOW + due_in
    }
    closed = [p for p in everyone if p.group.messenger == "closed"]
    assert all(p.last_event_at == NOW - timedelta(days=3) for p in closed)
    assert all((p.psid is None) == (p.group.messenger is None) for p in everyone)
    assert all((p.address is None) == (p.group.email is None) for p in everyone)
    assert {p.takeover_at for p in everyone if p.group.messenger == "taken_over"} == {
        NOW - timedelta(hours=1)
    }
    acts = {a: len(population.actors(everyone, a)) for a in ("click", "reply", "unsubscribe")}
    assert acts == {"click": 80 + 60, "reply": 20 + 19, "unsubscribe": 10 + 10}
    # Only people who got an email can click it or unsubscribe from it.
    assert all(p.address for p in everyone if p.action in ("click", "unsubscribe"))
    assert all(p.psid for p in everyone if p.action == "reply")


def test_seed_rows_match_the_people() -> None:
    everyone = population.people(100, now=NOW, step2_due_in=timedelta(seconds=8))
    counter = iter(range(10_000))
    rows = population.seed_rows(
        everyone, workspace_id="ws_1", page_id="104", now=NOW,
        new_id=lambda prefix: f"{prefix}_{next(counter)}",
    )  # fmt: skip
    assert len(rows.contacts) == 100
    assert len(rows.emails) == sum(1 for p in everyone if p.address)
    assert len(rows.identities) == sum(1 for p in everyone if p.psid)
    statuses = {row["status"] for row in rows.emails}
    assert statuses == {"subscribed", "unconfirmed"}  # unsubscribes go through the ledger
    # Every subscribed address has its consent in the ledger; unconfirmed ones have none.
    subscribed = {row["contact_id"] for row in rows.emails if row["status"] == "subscribed"}
    assert {row["contact_id"] for row in rows.ledger} == subscribed


@pytest.mark.parametrize(("contacts", "seconds"), [(1, 8), (200, 8), (1000, 20), (5000, 30)])
def test_step_two_is_due_about_when_step_one_ends(contacts: int, seconds: int) -> None:
    assert population.step2_due_in_for(contacts) == timedelta(seconds=seconds)


def stats(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "audience": 10,
        "by_state": {"pending": 0, "claimed": 0, "sent": 12, "held": 5, "deferred": 0,
                     "skipped": 3, "failed": 0, "cancelled": 0},
        "sent_by_route": {"messenger.window": 8, "email.window_closed": 4},
        "skipped_by_reason": {"skipped.unconfirmed": 3},
        "failed_by_reason": {},
        "funnel": {"fallback_emails": 4, "clicked": 2, "reopened": 2,
                   "completed_on_messenger": 2, "unsubscribed": 0},
    }  # fmt: skip
    base.update(changes)
    return base


def test_a_settled_campaign_has_no_problems_and_its_lines_and_total_agree() -> None:
    good = stats()
    assert funnel.problems(good, emails_saved=4, contacts=10, steps=2) == []
    lines = {line.en: line.count for line in funnel.lines(good, emails_saved=4)}
    assert lines["Sent on Messenger"] == 8
    assert lines["Fell back to email (m.me buttons)"] == 4
    assert lines["the window had closed"] == 4
    assert lines["email not confirmed"] == 3
    assert "Not yet due" not in lines
    assert funnel.total(good) == (
        "Tổng lượt gửi / Total deliveries: 20 = 12 đã gửi / sent + 5 chờ / held "
        "+ 3 bỏ qua / skipped + 0 thất bại / failed"
    )


def test_problems_name_every_sum_that_does_not_hold() -> None:
    off = stats(
        by_state={"pending": 1, "claimed": 0, "sent": 12, "held": 5, "deferred": 0,
                  "skipped": 3, "failed": 0, "cancelled": 0},
        sent_by_route={"messenger.window": 8, "email.window_closed": 3},
    )  # fmt: skip
    found = funnel.problems(off, emails_saved=5, contacts=10, steps=2)
    assert found == [
        "deliveries (sum of by_state): 21, expected 20",
        "sent by route: 11, expected 12",
        "fallback emails vs email routes: 3, expected 4",
        ".eml files vs fallback emails: 5, expected 4",
        "deliveries still waiting: 1, expected 0",
    ]
    lines = {line.en: line.count for line in funnel.lines(off, emails_saved=5)}
    assert lines["Not yet due"] == 1
