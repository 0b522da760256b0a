"""`outreach demo`: the product end to end on one machine, with nothing else installed.

SQLite, a local SMTP server that keeps every message as an .eml file, and the Graph API emulator
of `channels/sandbox`; a demo app and Page registered through the API; contacts in mixed states
whose last interactions are placed in the past; a two-step promotional campaign; emulated people
who click the fallback emails' buttons, reply and unsubscribe; and the funnel, printed. Then the
server keeps running (unless `--no-serve`) with the URLs to look at.
"""

from orchestrator.demo.runner import Options, run

__all__ = ["Options", "run"]
