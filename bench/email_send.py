"""Benchmark: personalised emails through SmtpSender to a local SMTP sink. Not a test.

    .venv/bin/python bench/email_send.py [--messages 20000] [--connections 8] [--html-kb 20]
                                         [--sink smtp-sink|aiosmtpd] [--stdlib-messages 2000]

The sink is Postfix's `smtp-sink` (Debian package `postfix`, /usr/sbin/smtp-sink; it discards what
it receives) or, with `--sink aiosmtpd`, an aiosmtpd process (tops out near 2,900 small messages/s,
so it caps the figures). Each run is a child process, so its peak RSS is its own:

  1. baseline: aiosmtplib `sendmail` of pre-built bytes over `--connections` reused connections;
  2. channels.email: per message, an `OutboundEmail` personalised for one contact (name, the two
     m.me button links, the unsubscribe link inside ~20 KB of Vietnamese HTML and its text part),
     `build_message_fast`, then `SmtpSender.send` over a pool of `--connections`;
  3. the same with the stdlib builder (`build_message`), fewer messages, for comparison.

Template rendering (Jinja2, in `orchestrator`) is not measured: personalisation here is string
replacement. Targets: run 2 >= 500 messages/s and >= 0.3 x run 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SMTP_SINK = "/usr/sbin/smtp-sink"
BOUNCE = "bounces@shop.example.vn"
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)

BLOCK = """<tr><td style="padding:12px 24px;font-family:Arial,sans-serif;color:#333">
<h2 style="margin:0 0 8px">Ưu đãi tháng 12 dành riêng cho {{name}}</h2>
<p>Chào {{name}}, cảm ơn bạn đã đồng hành cùng Cửa hàng Hoa Sen trong suốt năm qua. Nhân dịp
cuối năm, chúng tôi gửi tặng bạn mã giảm giá 30% cho tất cả sản phẩm chăm sóc da và quà tặng.</p>
<p>Nếu bạn cần hỗ trợ, hãy nhắn tin cho chúng tôi qua Messenger: nhân viên sẽ trả lời ngay.</p>
</td></tr>
"""
BUTTONS = """<tr><td align="center" style="padding:16px">
<a href="{{support}}" style="background:#0866ff;color:#fff;padding:12px 20px;border-radius:6px;
text-decoration:none">Nhận hỗ trợ</a>&nbsp;
<a href="{{subscribe}}" style="background:#0866ff;color:#fff;padding:12px 20px;border-radius:6px;
text-decoration:none">Đăng ký nhận thông báo</a></td></tr>
"""
TEXT = """Chào {{name}},

Ưu đãi tháng 12: giảm 30% cho tất cả sản phẩm chăm sóc da và quà tặng.
Nhận hỗ trợ qua Messenger: {{support}}
Đăng ký nhận thông báo: {{subscribe}}

Hủy đăng ký: {{unsubscribe}}
"""


def html_template(kilobytes: int) -> str:
    head = '<!doctype html><html lang="vi"><body><table width="100%" cellpadding="0">\n'
    tail = "</table></body></html>\n"
    body = ""
    while len((head + body + BUTTONS + tail).encode("utf-8")) < kilobytes * 1024:
        body += BLOCK
    return head + body + BUTTONS + tail


def personalise(template: str, index: int) -> str:
    return (
        template.replace("{{name}}", f"Nguyễn Thị Khách {index}")
        .replace("{{support}}", f"https://mail.example.vn/r/s{index:08d}.k1.c2lnbmF0dXJl")
        .replace("{{subscribe}}", f"https://mail.example.vn/r/n{index:08d}.k1.c2lnbmF0dXJl")
        .replace("{{unsubscribe}}", f"https://mail.example.vn/u/{index:08d}.k1.c2ln")
    )


def outbound(index: int, html: str) -> Any:
    from channels.email.mime import OutboundEmail

    return OutboundEmail(
        from_address="hello@shop.example.vn",
        from_name="Cửa hàng Hoa Sen",
        reply_to="support@shop.example.vn",
        to_address=f"khach{index}@example.org",
        to_name=f"Nguyễn Thị Khách {index}",
        subject=f"Ưu đãi tháng 12 cho Khách {index}: giảm 30%",
        text=personalise(TEXT, index),
        html=personalise(html, index),
        delivery_id=f"dlv-{index:08d}",
        message_id_domain="mail.example.vn",
        list_unsubscribe_url=f"https://mail.example.vn/u/{index:08d}.k1.c2ln",
        list_unsubscribe_mailto="mailto:unsubscribe@shop.example.vn",
        extra_headers={"Feedback-ID": "c1:ws1:outreach"},
    )


# --- child processes: one run each ---------------------------------------------------------------


async def run_baseline(port: int, messages: int, connections: int, html_kb: int) -> dict[str, Any]:
    import aiosmtplib

    from channels.email.fastmime import build_message_fast

    prebuilt = build_message_fast(outbound(0, html_template(html_kb)), now=NOW)
    counter = iter(range(messages))
    clients = [
        aiosmtplib.SMTP(
            hostname="127.0.0.1", port=port, start_tls=False, local_hostname="bench.test"
        )
        for _ in range(connections)
    ]
    for client in clients:
        await client.connect()

    async def worker(client: aiosmtplib.SMTP) -> int:
        sent = 0
        for index in counter:
            await client.sendmail(BOUNCE, [f"khach{index}@example.org"], prebuilt)
            sent += 1
        return sent

    started = time.perf_counter()
    sent = sum(await asyncio.gather(*(worker(client) for client in clients)))
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.quit()
    return {"sent": sent, "seconds": elapsed, "bytes_per_message": len(prebuilt)}


async def run_adapter(
    port: int, messages: int, connections: int, html_kb: int, builder: str
) -> dict[str, Any]:
    from channels.email.fastmime import build_message_fast
    from channels.email.mime import build_message
    from channels.email.smtp import SmtpSender

    build = build_message_fast if builder == "fast" else build_message
    html = html_template(html_kb)
    sender = SmtpSender(
        "127.0.0.1", port, tls="none", pool_size=connections, local_hostname="bench.test"
    )
    counter = iter(range(messages))
    sizes: list[int] = []

    async def worker() -> int:
        sent = 0
        for index in counter:
            email = outbound(index, html)
            raw = build(email, now=NOW)
            await sender.send(raw, sender=BOUNCE, recipients=[email.to_address])
            if index < 10:
                sizes.append(len(raw))
            sent += 1
        return sent

    await sender.verify()
    started = time.perf_counter()
    # Two workers per connection: one builds while the other waits on the relay.
    sent = sum(await asyncio.gather(*(worker() for _ in range(connections * 2))))
    elapsed = time.perf_counter() - started
    opened = sender.open_connections
    await sender.close()
    return {
        "sent": sent,
        "seconds": elapsed,
        "bytes_per_message": sum(sizes) // max(1, len(sizes)),
        "connections": opened,
    }


def child(args: argparse.Namespace) -> None:
    if args.child == "baseline":
        result = asyncio.run(run_baseline(args.port, args.messages, args.connections, args.html_kb))
    else:
        result = asyncio.run(
            run_adapter(args.port, args.messages, args.connections, args.html_kb, args.child)
        )
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


# --- the parent: sink, runs, report ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_sink(kind: str, port: int) -> subprocess.Popen[bytes]:
    if kind == "smtp-sink":
        command = [SMTP_SINK, "-u", "nobody", "-m", "512", f"127.0.0.1:{port}", "1024"]
    else:
        command = [
            sys.executable,
            "-c",
            "import asyncio, sys\n"
            "from aiosmtpd.controller import Controller\n"
            "class Sink:\n"
            "    async def handle_DATA(self, server, session, envelope):\n"
            "        return '250 2.0.0 Ok: queued as X'\n"
            "c = Controller(Sink(), hostname='127.0.0.1', port=int(sys.argv[1]))\n"
            "c.start()\n"
            "import threading; threading.Event().wait()\n",
            str(port),
        ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            if process.poll() is not None:
                problem = process.stderr.read() if process.stderr is not None else b""
                raise RuntimeError(f"the sink exited: {problem!r}") from None
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the sink did not start")


def run_child(kind: str, port: int, messages: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        str(HERE),
        "--child",
        kind,
        "--port",
        str(port),
        "--messages",
        str(messages),
        "--connections",
        str(args.connections),
        "--html-kb",
        str(args.html_kb),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    output = subprocess.run(command, check=True, capture_output=True, env=env, cwd=ROOT)
    result: dict[str, Any] = json.loads(output.stdout.decode().strip().splitlines()[-1])
    result["per_second"] = result["sent"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--stdlib-messages", type=int, default=2_000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--html-kb", type=int, default=20)
    parser.add_argument("--sink", choices=["smtp-sink", "aiosmtpd"], default=None)
    parser.add_argument("--child", choices=["baseline", "fast", "stdlib"], default=None)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.child is not None:
        child(args)
        return

    sink = args.sink or ("smtp-sink" if shutil.which(SMTP_SINK) else "aiosmtpd")
    port = free_port()
    process = start_sink(sink, port)
    try:
        print(
            f"sink={sink} messages={args.messages} connections={args.connections} "
            f"html~{args.html_kb}KB cpus={os.cpu_count()}"
        )
        baseline = run_child("baseline", port, args.messages, args)
        fast = run_child("fast", port, args.messages, args)
        runs = [("baseline: aiosmtplib, pre-built bytes", baseline), ("channels.email", fast)]
        if args.stdlib_messages > 0:
            stdlib = run_child("stdlib", port, args.stdlib_messages, args)
            runs.append(("channels.email, stdlib builder", stdlib))
    finally:
        process.terminate()
        process.wait(timeout=10)

    print(f"{'run':<40} {'sent':>7} {'msg/s':>9} {'bytes/msg':>10} {'peak RSS':>9}")
    for name, result in runs:
        print(
            f"{name:<40} {result['sent']:>7} {result['per_second']:>9.0f} "
            f"{result['bytes_per_message']:>10} {result['peak_rss_mb']:>7.1f}MB"
        )
    ratio = fast["per_second"] / baseline["per_second"]
    print(f"channels.email / baseline = {ratio:.2f}")
    verdict = "met" if fast["per_second"] >= 500 and ratio >= 0.3 else "NOT met"
    print(f"targets (>= 500 msg/s and >= 0.3 x baseline): {verdict}")


if __name__ == "__main__":
    main()
