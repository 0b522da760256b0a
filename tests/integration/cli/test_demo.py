"""`outreach demo` as a person runs it: its own process, its own SQLite file, SMTP server and
Graph API emulator, real time (the demo places its contacts' last interactions in the past).

With 200 contacts the demo's groups (orchestrator/demo/population.py) are 60 Messenger-only
and 20 Messenger + email contacts whose window is open, 40 Messenger + email contacts whose
window closed three days ago (16 click a button of their fallback email, 4 write on Messenger
without clicking, 2 unsubscribe), 40 email-only contacts (12 click, 2 unsubscribe), 12
Messenger-only contacts whose window closed (3 write), 10 unsubscribed and 10 unconfirmed
addresses, and 8 contacts a person on the Page inbox took over an hour ago. EXPECTED is what
DESIGN sections 5-7 make of them, worked out by hand below.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

from tests.integration.cli.test_cli import OUTREACH, _env, free_port

CONTACTS = 200
# Step 1: open windows (80) on Messenger; closed (40) and email-only (40) by email; the others
# skipped. Step 2 (1 h before the window closes): the 80 open windows on Messenger, as are the
# 28 clickers and 7 repliers once their window reopens (their held step is released); the 8
# taken over skipped again; everyone else held until they come back (77).
EXPECTED_STATS: dict[str, Any] = {
    "audience": 200,
    "by_state": {
        "pending": 0, "claimed": 0, "sent": 275, "held": 77, "deferred": 0, "skipped": 48,
        "failed": 0, "cancelled": 0,
    },
    "sent_by_route": {"messenger.window": 195, "email.window_closed": 40, "email.no_messenger": 40},
    "skipped_by_reason": {
        "skipped.no_reachable_channel": 12, "skipped.unsubscribed": 10,
        "skipped.unconfirmed": 10, "skipped.human_takeover": 16,
    },
    "failed_by_reason": {},
    # Completed on Messenger: the 28 clickers and the 4 closed-window contacts who wrote back
    # (the 3 Messenger-only writers never had an email).
    "funnel": {
        "fallback_emails": 80, "clicked": 28, "reopened": 28, "completed_on_messenger": 32,
        "unsubscribed": 4,
    },
}  # fmt: skip


def demo(tmp_path: Path, port: int, *extra: str) -> list[str]:
    return [
        *OUTREACH,
        "demo",
        "--contacts",
        str(CONTACTS),
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path / "demo"),
        *extra,
    ]


def environment(tmp_path: Path) -> dict[str, str]:
    # The demo picks its own database; an OUTREACH_DATABASE_URL of the caller must not matter.
    return _env(f"sqlite:///{tmp_path / 'not-this-one.db'}")


def parsed(path: Path) -> EmailMessage:
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_demo_runs_the_campaign_and_prints_a_funnel_that_adds_up(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    done = subprocess.run(
        demo(tmp_path, port, "--no-serve"),
        env=environment(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=55,
        check=False,
    )
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert elapsed < 60
    assert "Traceback" not in output
    assert not (tmp_path / "not-this-one.db").exists()

    summary = json.loads((tmp_path / "demo" / "summary.json").read_text(encoding="utf-8"))
    assert summary["problems"] == []
    assert summary["stats"] == EXPECTED_STATS
    stats = summary["stats"]
    assert sum(stats["by_state"].values()) == 2 * CONTACTS

    # The printed funnel says the same, line by line.
    rows = {
        "Sent on Messenger": 195,
        "Fell back to email (m.me buttons)": 80,
        "emails saved (.eml)": 80,
        "Buttons clicked": 28,
        "Windows reopened": 28,
        "Completed on Messenger": 32,
        "Unsubscribed (one click)": 4,
        "Held for the window (≤ 3 days)": 77,
        "Skipped": 48,
        "a person took over": 16,
        "window closed, no email": 12,
        "Failed": 0,
    }
    for label, count in rows.items():
        assert re.search(rf"{re.escape(label)}\s+{count}\s*$", done.stdout, re.M), label
    assert "Total deliveries: 400 = 275 đã gửi / sent + 77 chờ / held + 48 bỏ qua" in done.stdout
    assert "The numbers add up" in done.stdout

    # Every fallback email was kept, and one is also saved as HTML with working local links.
    mail = tmp_path / "demo" / "mail"
    emails = sorted(mail.glob("*.eml"))
    assert len(emails) == 80
    subjects = {str(parsed(path)["Subject"]) for path in emails}
    assert all(subject.startswith("Ưu đãi tháng 12 cho ") for subject in subjects)
    first = parsed(Path(summary["email_eml"]))
    assert str(first["List-Unsubscribe"]).startswith(f"<https://127.0.0.1:{port}/u/")
    html = Path(summary["email_html"]).read_text(encoding="utf-8")
    assert "Nhận hỗ trợ" in html
    assert "Đăng ký nhận thông báo" in html
    assert f'href="http://127.0.0.1:{port}/r/' in html
    assert "https://127.0.0.1" not in html


def test_demo_keeps_serving_until_interrupted(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        demo(tmp_path, port),
        env=environment(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        printed = []
        deadline = time.monotonic() + 50
        for line in proc.stdout:
            printed.append(line)
            if "Ctrl-C" in line or time.monotonic() > deadline:
                break
        output = "".join(printed)
        assert "Ctrl-C" in output, output
        base = f"http://127.0.0.1:{port}"
        key = re.search(r"API key \(log in\)\s+(ok_\S+)", output)
        campaign = re.search(rf"Campaign page\s+{re.escape(base)}/campaigns/(\S+)", output)
        assert key is not None and campaign is not None, output
        assert httpx.get(f"{base}/docs", timeout=10).status_code == 200
        stats = httpx.get(
            f"{base}/v1/campaigns/{campaign[1]}/stats",
            headers={"Authorization": f"Bearer {key[1]}"},
            timeout=10,
        )
        assert stats.status_code == 200
        assert stats.json()["funnel"] == EXPECTED_STATS["funnel"]
        # The HTML copy's unsubscribe link answers from this machine.
        shown = re.search(r"A fallback email\s+(\S+\.html)", output)
        assert shown is not None, output
        html = (tmp_path / shown[1]).read_text(encoding="utf-8")
        unsubscribe = re.search(rf'href="({re.escape(base)}/u/[^"]+)"', html)
        assert unsubscribe is not None
        page = httpx.get(unsubscribe[1], timeout=10)
        assert page.status_code == 200
        assert "<form" in page.text

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
