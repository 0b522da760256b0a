"""Import rows are checked like `POST /v1/contacts` bodies: same acceptance, field-named errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.api.contacts import ContactCreate
from orchestrator.contacts import Consent, normalize_or_fail
from orchestrator.errors import ValidationFailed
from orchestrator.imports.validation import ImportRow, RowError, validate

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)

# JSON-shaped rows the API and the import must judge alike (the API body needs the same keys).
CASES: list[dict[str, Any]] = [
    {"email": "  Lan.Nguyen@Example.COM "},
    {
        "email": "lan@example.com",
        "name": "Nguyễn Thị Lan",
        "locale": "vi",
        "timezone": "Asia/Ho_Chi_Minh",
    },
    {"email": "lan@example.com", "name": ""},
    {"email": "lan@example.com", "name": "x" * 300},
    {"email": "lan@example.com", "name": "x" * 301},
    {"email": "not-an-address"},
    {"email": "a@b"},
    {"email": "lan@example.com", "locale": "en_US"},
    {"email": "lan@example.com", "locale": "english!"},
    {"email": "lan@example.com", "locale": ""},
    {"email": "lan@example.com", "timezone": "Mars/Olympus"},
    {"email": "lan@example.com", "timezone": "UTC"},
    {"email": "lan@example.com", "tags": ["vip", " áo dài "]},
    {"email": "lan@example.com", "tags": [""]},
    {"email": "lan@example.com", "tags": ["x" * 101]},
    {"email": "lan@example.com", "tags": [f"t{i}" for i in range(101)]},
    {"email": "lan@example.com", "attributes": {"thành phố": "Huế", "n": 3, "deep": {"a": [1]}}},
    {"email": "lan@example.com", "attributes": {"": 1}},
    {"email": "lan@example.com", "attributes": {"k" * 65: 1}},
    {"email": "lan@example.com", "attributes": {f"k{i}": i for i in range(101)}},
    {
        "email": "lan@example.com",
        "consent_source": "popup",
        "consent_at": "2026-11-19T10:00:00+07:00",
    },
    {"email": "lan@example.com", "consent_source": "hotline", "consent_at": "2026-11-20T09:04:00Z"},
    {"email": "lan@example.com", "consent_source": "hotline", "consent_at": "2026-11-20T09:06:00Z"},
    {"email": "lan@example.com", "consent_source": "hotline"},
    {"email": "lan@example.com", "consent_at": "2026-11-19T10:00:00+07:00"},
    {"email": "lan@example.com", "consent_source": "fax", "consent_at": "2026-11-19T10:00:00Z"},
    {"email": "lan@example.com", "consent_source": "api", "consent_at": "2026-11-19T10:00:00"},
    {"email": "lan@example.com", "consent_source": "api", "consent_at": "yesterday"},
    {"email": "lan@example.com", "phone": "0900"},
    {"name": "Không có email"},
    {"email": 42},
]


def api_accepts(case: dict[str, Any]) -> bool:
    try:
        body = ContactCreate.model_validate(case)
    except ValidationError:
        return False
    # The service checks the rest (contacts.upsert_contact): the consent time, then the address.
    if body.consent_at is not None and body.consent_at > NOW + timedelta(minutes=5):
        return False
    try:
        normalize_or_fail(body.email or "")
    except ValidationFailed:
        return False
    return True


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_import_accepts_exactly_what_the_api_accepts(case: dict[str, Any]) -> None:
    result = validate(case, line=7, now=NOW)
    assert isinstance(result, ImportRow) == api_accepts(case), result
    if not isinstance(result, ImportRow):
        assert result
        assert all(error.line == 7 for error in result)


def test_a_valid_row_is_normalised_like_the_api() -> None:
    row = validate(
        {
            "email": "  Lan.Nguyen@Example.COM ",
            "name": " Nguyễn Thị Lan ",
            "tags": " vip ; áo dài;;",
            "attr.thành phố": "Huế",
            "consent_source": "popup",
            "consent_at": "2026-11-19T10:00:00+07:00",
        },
        line=2,
        now=NOW,
    )
    assert row == ImportRow(
        line=2,
        address="lan.nguyen@example.com",
        name="Nguyễn Thị Lan",
        locale=None,
        timezone=None,
        tags=("vip", "áo dài"),
        attributes={"thành phố": "Huế"},
        consent=Consent(source="popup", at=datetime(2026, 11, 19, 3, 0, tzinfo=UTC)),
    )


def test_errors_name_each_field_once() -> None:
    errors = validate(
        {
            "email": "nope",
            "locale": "english!",
            "timezone": "Mars/Olympus",
            "consent_source": "hotline",
            "phone": "0900",
        },
        line=9,
        now=NOW,
    )
    assert isinstance(errors, list)
    assert {(e.field, e.line) for e in errors} == {
        ("email", 9),
        ("locale", 9),
        ("timezone", 9),
        ("consent_at", 9),
        ("phone", 9),
    }
    assert RowError(9, "phone", "unknown field") in errors
    assert (
        RowError(
            9, "consent_at", "consent_source and consent_at go together; consent_at is missing"
        )
        in errors
    )


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({}, "email", "required"),
        ({"email": "a@example.com", "name": "a\x00b"}, "name", "contains a NUL character"),
        ({"email": "a@example.com", "name": "\udcff"}, "name", "not valid UTF-8"),
        (
            {"email": "a@example.com", "attributes": {"k": ["\x00"]}},
            "attributes",
            "contains a NUL character",
        ),
        ({"email": "a@example.com", "attributes": []}, "attributes", "must be an object"),
        (
            {"email": "a@example.com", "tags": 5},
            "tags",
            "must be a list of strings or a ';'-separated string",
        ),
        ({"email": "a@example.com", "tags": ["a", 5]}, "tags", "tags[1] must be a string"),
        (
            {
                "email": "a@example.com",
                "consent_source": "api",
                "consent_at": "2026-11-20T09:06:00Z",
            },
            "consent_at",
            "may not be in the future",
        ),
    ],
)
def test_specific_messages(values: dict[str, Any], field: str, message: str) -> None:
    assert validate(values, line=3, now=NOW) == [RowError(3, field, message)]


def test_null_means_not_given_and_attr_keys_join_attributes() -> None:
    row = validate(
        {
            "email": "a@example.com",
            "name": None,
            "attributes": {"a": 1},
            "attr.b": "2",
            "tags": None,
        },
        line=1,
        now=NOW,
    )
    assert isinstance(row, ImportRow)
    assert (row.name, row.tags, row.attributes) == (None, (), {"a": 1, "b": "2"})
