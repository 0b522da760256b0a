"""Switches for every behaviour the reference could not pin down (its UNCONFIRMED items).

Defaults follow the reading the reference leans to; tests flip them to check that our adapter copes
with each documented alternative.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SendResponseShape = Literal["recipient_id", "recipient_object"]
StopSpelling = Literal["STOP NOTIFICATIONS", "STOP_NOTIFICATIONS"]


@dataclass
class Variants:
    # reference §2, [S16][S22]: most samples answer {"recipient_id", "message_id"}; the opt-in
    # template samples answer {"recipient": {"id", "message_id"}}.
    send_response_shape: SendResponseShape = "recipient_id"
    # reference §2 table and §10 item 5: subcode 1893061 on retired tags was observed once [T1].
    retired_tag_subcode: int | None = 1893061
    # reference §3.1, §6 and §10 item 2: the error for a used or expired OTN token is not documented.
    # The emulator's choice: a bare 100, like an invalid notification_messages_token (§3.2, [S5]).
    otn_token_error: tuple[int, int | None] = (100, None)
    # reference §3.2 and §10 item 4: wire spelling of notification_messages_status.
    stop_spelling: StopSpelling = "STOP NOTIFICATIONS"
    # reference §3.2 sample [S13] shows "timestamp": "..." (a string) on messaging_optins.
    optin_timestamp_as_string: bool = False
    # reference §4.5, [S14]: "mids may be missing".
    delivery_includes_mids: bool = True
    # reference §4.5 delivery sample has no top-level timestamp; some clients see one.
    delivery_includes_timestamp: bool = False
    # reference §1 and §10 item 1: first message after a Click-to-Messenger ad "may" open 7 days.
    ctm_seven_day_window: bool = True
    # reference §8: Send-a-Message lists comments as window-opening [S2]; Private Replies says
    # only a reply to the private message opens it [S17]. Default is the conservative reading.
    comment_opens_window: bool = False
    # reference §10 item 10: quick-reply payload limit, historically 1000 (None = unchecked).
    quick_reply_payload_max: int | None = 1000
    # Meta's echo samples carry app_id as a JSON number [S15]; some clients see a string.
    echo_app_id_as_int: bool = True
    # Meta's PHP encoder sometimes writes "/" as "\\/"; not in the reference, off by default.
    escape_slashes: bool = False
