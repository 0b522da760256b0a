"""Emulators of outside services for tests and the demo (the Graph API, built from Meta's documented contract)."""
