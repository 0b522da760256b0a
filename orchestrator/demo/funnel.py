"""The campaign's funnel for a person to read: `GET /v1/campaigns/{id}/stats` and the count of
.eml files the SMTP server kept, as labelled lines (Vietnamese and English), with the sums that
must hold between them. Pure; the shell prints `table(lines)`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.table import Table

# Every reason of DESIGN section 5 a campaign delivery can end with, said for a person.
REASONS: dict[str, tuple[str, str]] = {
    "messenger.window": ("trong cửa sổ 24 giờ", "inside the 24 h window"),
    "messenger.human_agent": ("nhân viên trả lời", "HUMAN_AGENT reply"),
    "messenger.one_time_token": ("thông báo một lần", "one-time token"),
    "messenger.tag": ("thẻ tin nhắn 2020", "2020 message tag"),
    "email.window_closed": ("cửa sổ đã đóng", "the window had closed"),
    "email.no_messenger": ("chưa có Messenger", "no Messenger yet"),
    "email.recipient_unavailable": ("người nhận không khả dụng", "person unavailable"),
    "email.hold_expired": ("hết thời gian chờ", "hold expired"),
    "skipped.unsubscribed": ("email đã hủy đăng ký", "email unsubscribed"),
    "skipped.unconfirmed": ("email chưa xác nhận", "email not confirmed"),
    "skipped.bounced": ("email bị trả về", "email bounced"),
    "skipped.complained": ("bị báo spam", "spam complaint"),
    "skipped.messenger_stopped": ("đã tắt tin Messenger", "stopped Messenger"),
    "skipped.human_takeover": ("nhân viên đang trả lời", "a person took over"),
    "skipped.frequency_cap": ("vượt giới hạn tần suất", "frequency cap"),
    "skipped.no_reachable_channel": ("cửa sổ đóng, không email", "window closed, no email"),
    "skipped.cancelled": ("chiến dịch đã hủy", "campaign cancelled"),
    "failed.retries_exhausted": ("hết lượt thử lại", "retries exhausted"),
    "failed.page_paused": ("Page bị tạm dừng", "Page paused"),
    "failed.render": ("lỗi mẫu tin nhắn", "template error"),
    "failed.channel_misconfigured": ("kênh cấu hình sai", "channel misconfigured"),
}
WAITING_STATES = ("pending", "claimed", "deferred")


@dataclass(frozen=True)
class Line:
    vi: str
    en: str
    count: int
    detail: bool = False  # a breakdown of the line above it


def _reason(reason: str) -> tuple[str, str]:
    return REASONS.get(reason, (reason, reason))


def _breakdown(counts: Mapping[str, int], prefix: str = "") -> list[Line]:
    return [
        Line(*_reason(reason), count, detail=True)
        for reason, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        if reason.startswith(prefix) and count
    ]


def lines(stats: Mapping[str, Any], *, emails_saved: int) -> list[Line]:
    by_state: Mapping[str, int] = stats["by_state"]
    sent: Mapping[str, int] = stats["sent_by_route"]
    funnel: Mapping[str, int] = stats["funnel"]
    messenger = sum(n for route, n in sent.items() if route.startswith("messenger."))
    waiting = sum(by_state.get(state, 0) for state in WAITING_STATES)
    out = [
        Line("Liên hệ", "Contacts", stats["audience"]),
        Line("Gửi trên Messenger", "Sent on Messenger", messenger),
        *_breakdown(sent, "messenger."),
        Line("Chuyển sang email (nút m.me)", "Fell back to email (m.me buttons)",
             funnel["fallback_emails"]),
        *_breakdown(sent, "email."),
        Line("email đã lưu (.eml)", "emails saved (.eml)", emails_saved, detail=True),
        Line("Bấm nút trong email", "Buttons clicked", funnel["clicked"]),
        Line("Mở lại cửa sổ 24 giờ", "Windows reopened", funnel["reopened"]),
        Line("Hoàn tất trên Messenger", "Completed on Messenger", funnel["completed_on_messenger"]),
        Line("Hủy đăng ký email", "Unsubscribed (one click)", funnel["unsubscribed"]),
        Line("Chờ người quay lại (≤ 3 ngày)", "Held for the window (≤ 3 days)",
             by_state.get("held", 0)),
        Line("Bỏ qua", "Skipped", by_state.get("skipped", 0)),
        *_breakdown(stats["skipped_by_reason"]),
        Line("Thất bại", "Failed", by_state.get("failed", 0)),
        *_breakdown(stats["failed_by_reason"]),
    ]  # fmt: skip
    if waiting:
        out.append(Line("Chưa đến hạn", "Not yet due", waiting))
    return out


def total(stats: Mapping[str, Any]) -> str:
    """Every delivery is in one state: the sum a reader can check against the lines above."""
    by_state: Mapping[str, int] = stats["by_state"]
    parts = [
        (by_state.get("sent", 0), "đã gửi / sent"),
        (by_state.get("held", 0), "chờ / held"),
        (by_state.get("skipped", 0), "bỏ qua / skipped"),
        (by_state.get("failed", 0), "thất bại / failed"),
    ]
    waiting = sum(by_state.get(state, 0) for state in WAITING_STATES)
    if waiting:
        parts.append((waiting, "chưa đến hạn / not yet due"))
    cancelled = by_state.get("cancelled", 0)
    if cancelled:
        parts.append((cancelled, "đã hủy / cancelled"))
    terms = " + ".join(f"{count:,} {label}" for count, label in parts)
    return f"Tổng lượt gửi / Total deliveries: {sum(by_state.values()):,} = {terms}"


def problems(
    stats: Mapping[str, Any], *, emails_saved: int, contacts: int, steps: int
) -> list[str]:
    """The sums that hold whenever the campaign has settled; empty when all is well."""
    by_state: Mapping[str, int] = stats["by_state"]
    sent: Mapping[str, int] = stats["sent_by_route"]
    funnel: Mapping[str, int] = stats["funnel"]
    found = []
    checks = (
        ("audience", stats["audience"], contacts),
        ("deliveries (sum of by_state)", sum(by_state.values()), contacts * steps),
        ("sent by route", sum(sent.values()), by_state.get("sent", 0)),
        ("skipped by reason", sum(stats["skipped_by_reason"].values()), by_state.get("skipped", 0)),
        ("failed by reason", sum(stats["failed_by_reason"].values()), by_state.get("failed", 0)),
        ("fallback emails vs email routes",
         sum(n for route, n in sent.items() if route.startswith("email.")),
         funnel["fallback_emails"]),
        (".eml files vs fallback emails", emails_saved, funnel["fallback_emails"]),
        ("deliveries still waiting", sum(by_state.get(s, 0) for s in WAITING_STATES), 0),
        ("failed deliveries", by_state.get("failed", 0), 0),
    )  # fmt: skip
    for name, actual, expected in checks:
        if actual != expected:
            found.append(f"{name}: {actual:,}, expected {expected:,}")
    if funnel["clicked"] > funnel["fallback_emails"]:
        found.append("more clicks than fallback emails")
    return found


def table(rows: list[Line], *, title: str) -> Table:
    out = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    out.add_column("Tiếng Việt")
    out.add_column("English")
    out.add_column("Số / #", justify="right")
    for row in rows:
        if row.detail:
            out.add_row(f"  · {row.vi}", f"  · {row.en}", f"{row.count:,}", style="dim")
        else:
            out.add_row(row.vi, row.en, f"{row.count:,}")
    return out
