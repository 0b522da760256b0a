"""`python -m channels.sandbox --host 127.0.0.1 --port 8765 [--page-id ... --webhook-url ...]`.

Runs the Graph API emulator on its own, with the real clock; drive it over `/_emulator/`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn

from channels.sandbox.emulator import GraphEmulator


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m channels.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--page-id", help="register one Page at start")
    parser.add_argument("--page-username", default="sandbox.page")
    parser.add_argument("--page-token", default="sandbox-page-token")
    parser.add_argument("--app-id", default="1000000000000001")
    parser.add_argument("--app-secret", default="sandbox-app-secret")
    parser.add_argument("--webhook-url", help="where the Page's webhook events are posted")
    parser.add_argument(
        "--get-started", metavar="PAYLOAD", help="the Page has a Get Started button"
    )
    return parser.parse_args(argv)


def build(args: argparse.Namespace) -> GraphEmulator:
    emulator = GraphEmulator()
    if args.page_id:
        emulator.register_page(
            args.page_id,
            username=args.page_username,
            access_token=args.page_token,
            app_id=args.app_id,
            app_secret=args.app_secret,
            webhook_url=args.webhook_url,
            get_started_payload=args.get_started,
        )
    return emulator


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    uvicorn.run(build(args).app, host=args.host, port=args.port, lifespan="off", ws="none")


if __name__ == "__main__":
    main()
