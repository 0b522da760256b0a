"""The audience filters as query parameters, shared by `GET /v1/contacts` and the export."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, Query

from orchestrator.audience import AudienceFilter

EmailStatusParam = Literal["unconfirmed", "subscribed", "unsubscribed", "bounced", "complained"]


def split_values(values: list[str]) -> list[str]:
    """Repeated parameters or comma-separated values, both accepted."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def audience_query(
    tags_any: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    tags_all: Annotated[list[str], Query()] = [],  # noqa: B006
    tags_none: Annotated[list[str], Query()] = [],  # noqa: B006
    email_status: Annotated[list[EmailStatusParam], Query()] = [],  # noqa: B006
    messenger: Literal["any", "required", "none"] = "any",
    page_id: Annotated[str | None, Query(max_length=64)] = None,
) -> AudienceFilter:
    return AudienceFilter(
        tags_any=split_values(tags_any),
        tags_all=split_values(tags_all),
        tags_none=split_values(tags_none),
        email_status=list(email_status),
        messenger=messenger,
        page_id=page_id,
    )


AudienceQueryDep = Annotated[AudienceFilter, Depends(audience_query)]
