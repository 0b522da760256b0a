"""Faults the emulator can be told to inject, and which request they hit.

Pure bookkeeping: `FaultBook.take(...)` is given the request's endpoint, Page, PSID and `now`,
and returns the faults that fire (consuming one use of each counted fault).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Endpoint = Literal["messages", "messenger_profile", "subscribed_apps", "any"]
FaultKind = Literal["error", "http_status", "delay"]


@dataclass
class Fault:
    """One injected fault.

    kind "error": answer a Graph error object (`code`, `subcode`, `message`, `http_status`).
    kind "http_status": answer `http_status` with `body` bytes (e.g. a bare 502).
    kind "delay": sleep `delay_seconds` before answering, then go on as usual.
    `remaining` counts uses left (None: unlimited); `until` ends it at that time (None: never).
    """

    fault_id: int
    kind: FaultKind
    endpoint: Endpoint = "messages"
    page_id: str | None = None
    psid: str | None = None
    code: int | None = None
    subcode: int | None = None
    message: str | None = None
    http_status: int = 400
    body: bytes | None = None
    content_type: str = "application/json"
    is_transient: bool | None = None
    delay_seconds: float = 0.0
    remaining: int | None = None
    until: datetime | None = None
    fired: int = 0

    def active(self, now: datetime) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        return self.until is None or now < self.until

    def matches(self, endpoint: str, page_id: str | None, psid: str | None) -> bool:
        if self.endpoint not in ("any", endpoint):
            return False
        if self.page_id is not None and self.page_id != page_id:
            return False
        return self.psid is None or self.psid == psid


class FaultBook:
    """Faults in the order they were added; the first matching error fault wins."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, fault: Fault) -> Fault:
        self._faults.append(fault)
        return fault

    def remove(self, fault_id: int) -> None:
        self._faults = [fault for fault in self._faults if fault.fault_id != fault_id]

    def clear(self) -> None:
        self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        return list(self._faults)

    def take_delays(
        self, endpoint: str, page_id: str | None, psid: str | None, now: datetime
    ) -> list[Fault]:
        """Every active delay fault that matches, each consuming one use."""
        hits = [
            fault
            for fault in self._faults
            if fault.kind == "delay"
            and fault.active(now)
            and fault.matches(endpoint, page_id, psid)
        ]
        for fault in hits:
            _consume(fault)
        return hits

    def take_failure(
        self, endpoint: str, page_id: str | None, psid: str | None, now: datetime
    ) -> Fault | None:
        """The first active error or http_status fault that matches, consuming one use."""
        for fault in self._faults:
            if fault.kind == "delay" or not fault.active(now):
                continue
            if fault.matches(endpoint, page_id, psid):
                _consume(fault)
                return fault
        return None


def _consume(fault: Fault) -> None:
    fault.fired += 1
    if fault.remaining is not None:
        fault.remaining -= 1
