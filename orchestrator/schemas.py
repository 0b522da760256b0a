"""Shared request/response conventions (DESIGN section 9)."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class InputModel(BaseModel):
    """Base of every `/v1` request body: unknown fields are refused, strings are stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OutputModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ListPage(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = None
