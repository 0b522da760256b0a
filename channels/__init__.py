"""Adapters to the outside world. Nothing here imports `orchestrator` (DESIGN section 3)."""
