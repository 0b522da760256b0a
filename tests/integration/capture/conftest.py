"""The API client of the capture tests applies the capture inbox after every accepted capture,
as the `capture.apply` job does a moment later in a running server, so a test sees a capture's
effects as soon as it has its answer (test_capture_inbox.py tests the inbox itself)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from orchestrator.resources import Resources
from tests.integration.capture.visitor import ApplyingTransport


@pytest.fixture
async def client(app: FastAPI, resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    transport = ApplyingTransport(app, resources)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
