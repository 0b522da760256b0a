"""The campaign pages (`/login`, `/campaigns`, `/campaigns/{id}`): what they show, as HTML.

Pure apart from reading the templates once: values from the campaign queries and the workspace's
time zone in, HTML out. Labels are Vietnamese first with the English beneath (DESIGN section 2),
and the reason codes of DESIGN section 7 stay visible beside their wording, since they are what
the API's filters and stats use.

The pages run under a Content-Security-Policy that allows no script and no outside request:
the one `<style>` element is allowed by its SHA-256 (`STYLE_SOURCE`), the chart is inline SVG,
and the only image is the empty `data:` favicon that stops the browser from asking for one.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from markupsafe import Markup

from orchestrator.delivery_states import State
from orchestrator.policy import Reason
from orchestrator.rendering.layouts import layout_environment, render_layout

if TYPE_CHECKING:
    from orchestrator.campaigns.queries import CampaignStats


@dataclass(frozen=True, slots=True)
class Label:
    vi: str
    en: str


# -- wording ---------------------------------------------------------------------------------------

STATE_LABELS: Final[Mapping[str, Label]] = {
    State.PENDING: Label("Đang chờ", "Pending"),
    State.CLAIMED: Label("Đang xử lý", "Being sent"),
    State.SENT: Label("Đã gửi", "Sent"),
    State.HELD: Label("Tạm giữ", "Held"),
    State.DEFERRED: Label("Hoãn lại", "Deferred"),
    State.SKIPPED: Label("Bỏ qua", "Skipped"),
    State.FAILED: Label("Lỗi", "Failed"),
    State.CANCELLED: Label("Đã hủy", "Cancelled"),
}
REASON_LABELS: Final[Mapping[str, Label]] = {
    Reason.MESSENGER_WINDOW: Label("Trong cửa sổ 24 giờ", "Inside the 24-hour window"),
    Reason.MESSENGER_HUMAN_AGENT: Label("Nhân viên trả lời", "Human agent"),
    Reason.MESSENGER_ONE_TIME_TOKEN: Label("Thông báo một lần", "One-time notification"),
    Reason.MESSENGER_TAG: Label("Thẻ tin nhắn", "Message tag"),
    Reason.EMAIL_WINDOW_CLOSED: Label("Cửa sổ đã đóng, gửi email", "Window closed, by email"),
    Reason.EMAIL_NO_MESSENGER: Label("Chưa có Messenger, gửi email", "No Messenger, by email"),
    Reason.EMAIL_RECIPIENT_UNAVAILABLE: Label(
        "Messenger không nhận, gửi email", "Messenger unavailable, by email"
    ),
    Reason.EMAIL_HOLD_EXPIRED: Label("Hết thời gian chờ, gửi email", "Wait expired, by email"),
    Reason.HELD_UNTIL_WINDOW: Label("Chờ cửa sổ mở lại", "Waiting for the window"),
    Reason.DEFERRED_SEND_WINDOW: Label("Chờ khung giờ gửi", "Waiting for the send window"),
    Reason.SKIPPED_UNSUBSCRIBED: Label("Đã hủy đăng ký", "Unsubscribed"),
    Reason.SKIPPED_UNCONFIRMED: Label("Email chưa xác nhận", "Email not confirmed"),
    Reason.SKIPPED_BOUNCED: Label("Email bị trả lại", "Email bounced"),
    Reason.SKIPPED_COMPLAINED: Label("Đã báo spam", "Marked as spam"),
    Reason.SKIPPED_MESSENGER_STOPPED: Label("Đã dừng nhận trên Messenger", "Stopped on Messenger"),
    Reason.SKIPPED_HUMAN_TAKEOVER: Label("Nhân viên đang trò chuyện", "A person took over"),
    Reason.SKIPPED_FREQUENCY_CAP: Label("Vượt giới hạn tần suất", "Frequency cap reached"),
    Reason.SKIPPED_NO_REACHABLE_CHANNEL: Label("Không có kênh liên hệ", "No reachable channel"),
    Reason.SKIPPED_CANCELLED: Label("Chiến dịch đã hủy", "Campaign cancelled"),
    Reason.FAILED_RETRIES_EXHAUSTED: Label("Hết lượt thử lại", "Retries exhausted"),
    Reason.FAILED_PAGE_PAUSED: Label("Trang đang tạm dừng", "Page paused"),
    Reason.FAILED_RENDER: Label("Lỗi nội dung mẫu", "Template failed to render"),
    Reason.FAILED_CHANNEL_MISCONFIGURED: Label("Kênh cấu hình sai", "Channel misconfigured"),
}
UNKNOWN: Final = Label("Không rõ", "Unknown")
STATUS_LABELS: Final[Mapping[str, Label]] = {
    "draft": Label("Nháp", "Draft"),
    "scheduled": Label("Đã lên lịch", "Scheduled"),
    "running": Label("Đang chạy", "Running"),
    "paused": Label("Tạm dừng", "Paused"),
    "completed": Label("Hoàn tất", "Completed"),
    "cancelled": Label("Đã hủy", "Cancelled"),
}
CHANNELS: Final[Mapping[str, str]] = {"messenger": "Messenger", "email": "Email"}

FunnelStage = Literal[
    "audience", "sent_messenger", "fallback_email", "clicked", "reopened", "completed"
]
FUNNEL_LABELS: Final[Mapping[FunnelStage, Label]] = {
    "audience": Label("Đối tượng", "Audience"),
    "sent_messenger": Label("Đã gửi qua Messenger", "Sent on Messenger"),
    "fallback_email": Label("Chuyển sang email", "Fell back to email"),
    "clicked": Label("Đã bấm nút trong email", "Clicked in the email"),
    "reopened": Label("Quay lại Messenger", "Reopened on Messenger"),
    "completed": Label("Hoàn tất trên Messenger", "Completed on Messenger"),
}
# Messenger blue for what happened on Messenger, amber for email, green for the way back.
_FUNNEL_COLOURS: Final[Mapping[FunnelStage, str]] = {
    "audience": "#65676b",
    "sent_messenger": "#0866ff",
    "fallback_email": "#b26b00",
    "clicked": "#b26b00",
    "reopened": "#1a7f37",
    "completed": "#1a7f37",
}
_SKIPPED_COLOUR: Final = "#65676b"
_FAILED_COLOUR: Final = "#c62828"


# -- the style sheet and the policy that allows it ---------------------------------------------------


@cache
def style_sheet() -> str:
    return layout_environment("pages").get_template("console.css").render()


@cache
def style_source() -> str:
    """The CSP source that allows exactly `style_sheet()` in a `<style>` element."""
    digest = hashlib.sha256(style_sheet().encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


def content_security_policy() -> str:
    return "; ".join(
        (
            "default-src 'none'",
            f"style-src {style_source()}",
            "img-src data:",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        )
    )


# -- view models -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Moment:
    iso: str
    text: str


def moment(value: datetime | None, zone: ZoneInfo) -> Moment | None:
    """A stored time shown in the workspace's zone, minutes precision; `iso` keeps the instant."""
    if value is None:
        return None
    local = value.astimezone(zone)
    return Moment(iso=value.isoformat(), text=local.strftime("%Y-%m-%d %H:%M"))


@dataclass(frozen=True, slots=True)
class Bar:
    key: str
    label: Label
    count: int
    width: str
    """The bar's length in percent of the longest bar, as the SVG's `width` attribute."""
    colour: str
    code: str | None = None


def _widths(counts: Sequence[int]) -> list[str]:
    longest = max([*counts, 1])
    # A non-zero count never draws as nothing: at least 1% of the track.
    return [
        "0" if count <= 0 else f"{max(count * 100 / longest, 1.0):.2f}".rstrip("0").rstrip(".")
        for count in counts
    ]


def funnel_counts(stats: CampaignStats) -> dict[FunnelStage, int]:
    """The funnel of DESIGN section 7 with Messenger's sends in front of the email fallback."""
    funnel = stats.funnel
    on_messenger = sum(
        count for route, count in stats.sent_by_route.items() if route.startswith("messenger.")
    )
    return {
        "audience": stats.audience,
        "sent_messenger": on_messenger,
        "fallback_email": funnel.fallback_emails,
        "clicked": funnel.clicked,
        "reopened": funnel.reopened,
        "completed": funnel.completed_on_messenger,
    }


def funnel_bars(stats: CampaignStats) -> list[Bar]:
    counts = funnel_counts(stats)
    stages = list(counts)
    return [
        Bar(stage, FUNNEL_LABELS[stage], counts[stage], width, _FUNNEL_COLOURS[stage])
        for stage, width in zip(stages, _widths([counts[s] for s in stages]), strict=True)
    ]


def reason_label(reason: str | None) -> Label:
    return REASON_LABELS.get(reason or "", UNKNOWN)


def problem_bars(stats: CampaignStats) -> list[Bar]:
    """Skipped then failed deliveries, each kind by reason, largest first."""
    entries = [
        (reason, count, _SKIPPED_COLOUR)
        for reason, count in sorted(stats.skipped_by_reason.items(), key=lambda i: (-i[1], i[0]))
    ] + [
        (reason, count, _FAILED_COLOUR)
        for reason, count in sorted(stats.failed_by_reason.items(), key=lambda i: (-i[1], i[0]))
    ]
    widths = _widths([count for _, count, _ in entries])
    return [
        Bar(reason, reason_label(reason), count, width, colour, code=reason)
        for (reason, count, colour), width in zip(entries, widths, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class Number:
    key: str
    label: Label
    count: int


def numbers(stats: CampaignStats) -> list[Number]:
    total = sum(stats.by_state.values())
    shown = [Number("audience", FUNNEL_LABELS["audience"], stats.audience)]
    shown.append(Number("deliveries", Label("Lượt gửi", "Deliveries"), total))
    shown.extend(
        Number(state, STATE_LABELS[state], stats.by_state.get(state, 0)) for state in State
    )
    shown.append(
        Number("unsubscribed", Label("Hủy đăng ký", "Unsubscribed"), stats.funnel.unsubscribed)
    )
    return shown


@dataclass(frozen=True, slots=True)
class RouteCount:
    key: str
    label: Label
    code: str
    count: int


def route_counts(stats: CampaignStats) -> list[RouteCount]:
    return [
        RouteCount(route, reason_label(route), route, count)
        for route, count in sorted(stats.sent_by_route.items(), key=lambda i: (-i[1], i[0]))
    ]


def pause_label(paused_reason: str | None) -> Label | None:
    if paused_reason is None:
        return None
    if paused_reason == "operator":
        return Label("Người vận hành đã tạm dừng chiến dịch.", "Paused by an operator.")
    detail = paused_reason.removeprefix("page_paused: ")
    return Label(f"Trang đang tạm dừng: {detail}", f"The Page is paused: {detail}")


def status_label(status: str) -> Label:
    return STATUS_LABELS.get(status, Label(status, status))


@dataclass(frozen=True, slots=True)
class CampaignHeader:
    id: str
    url: str
    name: str
    status: str
    status_label: Label
    paused_reason: str | None
    pause: Label | None
    page_id: str
    purpose: str
    topic: str | None
    created: Moment | None
    launched: Moment | None


def campaign_url(campaign_id: str, **query: str | None) -> str:
    present = {name: value for name, value in query.items() if value}
    return f"/campaigns/{campaign_id}" + (f"?{urlencode(present)}" if present else "")


def campaign_header(view: Mapping[str, Any], zone: ZoneInfo) -> CampaignHeader:
    """`view` is a campaign in the API's shape (`queries.campaign_view`)."""
    return CampaignHeader(
        id=view["id"],
        url=campaign_url(view["id"]),
        name=view["name"],
        status=view["status"],
        status_label=status_label(view["status"]),
        paused_reason=view["paused_reason"],
        pause=pause_label(view["paused_reason"]),
        page_id=view["page_id"],
        purpose=view["purpose"],
        topic=view["topic"],
        created=moment(view["created_at"], zone),
        launched=moment(view["launched_at"], zone),
    )


@dataclass(frozen=True, slots=True)
class CampaignItem:
    id: str
    url: str
    name: str
    status: str
    status_label: Label
    created: Moment | None


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: str
    contact_id: str
    step: int
    """1-based, as DESIGN section 7 counts steps."""
    state: str
    state_label: Label
    channel_text: str
    reason: str | None
    reason_label: Label
    due: Moment | None
    sent: Moment | None


def delivery_rows(rows: Iterable[Mapping[str, Any]], zone: ZoneInfo) -> list[DeliveryRow]:
    """`rows` in the shape of `queries.list_deliveries`."""
    return [
        DeliveryRow(
            id=row["id"],
            contact_id=row["contact_id"],
            step=int(row["step_index"]) + 1,
            state=row["state"],
            state_label=STATE_LABELS.get(row["state"], Label(row["state"], row["state"])),
            channel_text=CHANNELS.get(row["channel"] or "", "–"),
            reason=row["reason"],
            reason_label=reason_label(row["reason"]),
            due=moment(row["due_at"], zone),
            sent=moment(row["sent_at"], zone),
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class Option:
    value: str
    text: str


@dataclass(frozen=True, slots=True)
class FilterSelect:
    name: str
    label: Label
    options: tuple[Option, ...]
    selected: str | None


@dataclass(frozen=True, slots=True)
class DeliveryFilters:
    state: str | None = None
    reason: str | None = None
    channel: str | None = None

    @property
    def any(self) -> bool:
        return any((self.state, self.reason, self.channel))


FILTER_VALUES: Final[Mapping[str, frozenset[str]]] = {
    "state": frozenset(State),
    "reason": frozenset(Reason),
    "channel": frozenset(CHANNELS),
}


def filter_selects(filters: DeliveryFilters) -> list[FilterSelect]:
    return [
        FilterSelect(
            "state",
            Label("Trạng thái", "State"),
            tuple(Option(s.value, f"{STATE_LABELS[s].vi} · {STATE_LABELS[s].en}") for s in State),
            filters.state,
        ),
        FilterSelect(
            "reason",
            Label("Lý do", "Reason"),
            tuple(Option(r.value, r.value) for r in Reason),
            filters.reason,
        ),
        FilterSelect(
            "channel",
            Label("Kênh", "Channel"),
            tuple(Option(value, text) for value, text in CHANNELS.items()),
            filters.channel,
        ),
    ]


# -- pages -----------------------------------------------------------------------------------------


def _render(name: str, **variables: object) -> str:
    return render_layout("pages", name, css=Markup(style_sheet()), **variables)  # noqa: S704 (our own file)


def render_login_page(*, failed: bool = False) -> str:
    return _render("login.html", workspace_name=None, failed=failed)


def render_campaign_list_page(
    *,
    workspace_name: str,
    campaigns: Sequence[Mapping[str, Any]],
    zone: ZoneInfo,
    next_cursor: str | None,
    first_page: bool,
) -> str:
    items = [
        CampaignItem(
            id=view["id"],
            url=campaign_url(view["id"]),
            name=view["name"],
            status=view["status"],
            status_label=status_label(view["status"]),
            created=moment(view["created_at"], zone),
        )
        for view in campaigns
    ]
    return _render(
        "campaigns.html",
        workspace_name=workspace_name,
        campaigns=items,
        next_url=f"/campaigns?{urlencode({'cursor': next_cursor})}" if next_cursor else None,
        first_url=None if first_page else "/campaigns",
    )


def render_campaign_page(
    *,
    workspace_name: str,
    campaign: Mapping[str, Any],
    stats: CampaignStats,
    deliveries: Sequence[Mapping[str, Any]],
    filters: DeliveryFilters,
    next_cursor: str | None,
    first_page: bool,
    zone: ZoneInfo,
) -> str:
    header = campaign_header(campaign, zone)
    query = {"state": filters.state, "reason": filters.reason, "channel": filters.channel}
    return _render(
        "campaign.html",
        workspace_name=workspace_name,
        campaign=header,
        timezone=zone.key,
        funnel=funnel_bars(stats),
        problems=problem_bars(stats),
        numbers=numbers(stats),
        routes=route_counts(stats),
        filters=filter_selects(filters),
        filtered=filters.any,
        rows=delivery_rows(deliveries, zone),
        next_url=campaign_url(header.id, **query, cursor=next_cursor) if next_cursor else None,
        first_url=None if first_page else campaign_url(header.id, **query),
    )


@dataclass(frozen=True, slots=True)
class ConsoleError:
    title: Label
    message: Label


NOT_FOUND: Final = ConsoleError(
    Label("Không tìm thấy chiến dịch", "Campaign not found"),
    Label(
        "Chiến dịch này không tồn tại trong không gian làm việc của bạn.",
        "There is no such campaign in your workspace.",
    ),
)
BAD_FILTER: Final = ConsoleError(
    Label("Bộ lọc không hợp lệ", "Invalid filter"),
    Label(
        "Một giá trị lọc hoặc liên kết trang không đúng. Hãy chọn lại bộ lọc.",
        "A filter value or page link is not valid. Please choose the filters again.",
    ),
)
FORBIDDEN_ORIGIN: Final = ConsoleError(
    Label("Yêu cầu bị từ chối", "Request refused"),
    Label(
        "Biểu mẫu này chỉ được gửi từ chính trang của chúng tôi.",
        "This form can only be sent from our own pages.",
    ),
)


def render_console_error_page(error: ConsoleError, *, workspace_name: str | None = None) -> str:
    return _render("console_error.html", workspace_name=workspace_name, error=error)
