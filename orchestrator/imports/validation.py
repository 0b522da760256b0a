"""Checking one imported record the way `POST /v1/contacts` checks a body (pure; `now` is given).

The rules are those of `orchestrator.api.contacts`: strings are stripped, the email is normalised
by `addresses.normalize_address`, `consent_source` is one of `consent.SOURCES` and goes with
`consent_at` (ISO 8601 with an offset, at most five minutes ahead of `now`), locales and IANA zones
are checked alike, tags are 1-100 characters (at most 100), attributes at most 100 with names of
1-64 characters. Two differences, both stricter: `consent_at` must be ISO 8601 text (the API also
takes Unix times), and text may not hold NUL characters or invalid UTF-8 (PostgreSQL refuses them,
and one such value would otherwise fail a whole batch).

A CSV row arrives as column -> text with empty cells left out; `tags` is `;`-separated. A JSON
Lines row arrives as the object; `tags` may be a list, `attributes` an object, and `attr.<name>`
keys are attributes too. A null is a field not given, as in the API.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.addresses import AddressInvalid, normalize_address
from orchestrator.consent import SOURCES
from orchestrator.contacts import Consent
from orchestrator.imports.parsing import ATTRIBUTE_PREFIX

CONSENT_SKEW: Final = timedelta(minutes=5)
MAX_TAGS: Final = 100
MAX_ATTRIBUTES: Final = 100
_TEXT_LIMITS: Final = {
    "email": 320, "name": 300, "locale": 35, "timezone": 64, "consent_source": 200,
    "consent_at": 200,
}  # fmt: skip
_LOCALE: Final = re.compile(r"^[A-Za-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")
_SOURCES: Final = frozenset(SOURCES)
UNREADABLE_FIELD: Final = "row"


@dataclass(frozen=True)
class ImportRow:
    line: int
    address: str
    name: str | None
    locale: str | None
    timezone: str | None
    tags: tuple[str, ...]
    attributes: dict[str, Any]
    consent: Consent | None


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str


def unreadable(line: int, problem: str) -> RowError:
    return RowError(line, UNREADABLE_FIELD, problem)


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "not valid UTF-8"
    return None


def _json_problem(value: object) -> str | None:
    if isinstance(value, str):
        return _text_problem(value)
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _text_problem(key) or _json_problem(item)
            if problem:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = _json_problem(item)
            if problem:
                return problem
    return None


def _zone_known(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _tags(value: object, fail: list[tuple[str, str]]) -> tuple[str, ...]:
    if isinstance(value, str):
        # A CSV cell: empty parts around separators are not tags.
        parts = [part.strip() for part in value.split(";")]
        parts = [part for part in parts if part]
    elif isinstance(value, list):
        parts = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                fail.append(("tags", f"tags[{index}] must be a string"))
                return ()
            parts.append(item.strip())
    else:
        fail.append(("tags", "must be a list of strings or a ';'-separated string"))
        return ()
    if len(parts) > MAX_TAGS:
        fail.append(("tags", f"at most {MAX_TAGS} tags"))
        return ()
    for tag in parts:
        problem = _text_problem(tag)
        if problem or not 1 <= len(tag) <= 100:
            fail.append(("tags", f"tag {tag[:40]!r}: {problem or 'tags are 1-100 characters'}"))
            return ()
    return tuple(parts)


def _consent_at(text: str, now: datetime, fail: list[tuple[str, str]]) -> datetime | None:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        fail.append(("consent_at", "not an ISO 8601 date and time"))
        return None
    if at.tzinfo is None or at.utcoffset() is None:
        fail.append(("consent_at", "needs a UTC offset, e.g. 2026-11-19T10:00:00+07:00"))
        return None
    if at > now + CONSENT_SKEW:
        fail.append(("consent_at", "may not be in the future"))
        return None
    return at.astimezone(UTC)


def validate(
    values: Mapping[str, object], *, line: int, now: datetime
) -> ImportRow | list[RowError]:
    fail: list[tuple[str, str]] = []
    text: dict[str, str] = {}
    attributes: dict[str, Any] = {}
    tags: tuple[str, ...] = ()
    for key, value in values.items():
        if key in _TEXT_LIMITS:
            if value is None:
                continue
            if not isinstance(value, str):
                fail.append((key, "must be a string"))
                continue
            stripped = value.strip()
            problem = _text_problem(stripped)
            if problem is None and len(stripped) > _TEXT_LIMITS[key]:
                problem = f"at most {_TEXT_LIMITS[key]} characters"
            if problem:
                fail.append((key, problem))
            else:
                text[key] = stripped
        elif key == "tags":
            if value is not None:
                tags = _tags(value, fail)
        elif key == "attributes":
            if value is None:
                continue
            if not isinstance(value, dict):
                fail.append(("attributes", "must be an object"))
                continue
            for name, item in value.items():
                attributes[str(name).strip()] = item
        elif key.startswith(ATTRIBUTE_PREFIX):
            attributes[key[len(ATTRIBUTE_PREFIX) :].strip()] = value
        else:
            fail.append((key[:100], "unknown field"))

    address = None
    if "email" not in text:
        if not any(field == "email" for field, _ in fail):
            fail.append(("email", "required"))
    else:
        try:
            address = normalize_address(text["email"])
        except AddressInvalid as exc:
            fail.append(("email", str(exc)))
    locale = text.get("locale")
    if locale is not None and not _LOCALE.match(locale):
        fail.append(("locale", "not a locale such as 'vi' or 'en_US'"))
    zone = text.get("timezone")
    if zone is not None and not _zone_known(zone):
        fail.append(("timezone", "unknown IANA time zone"))
    if attributes:
        if len(attributes) > MAX_ATTRIBUTES:
            fail.append(("attributes", f"at most {MAX_ATTRIBUTES} attributes"))
        elif any(not name or len(name) > 64 for name in attributes):
            fail.append(("attributes", "attribute names are 1-64 characters"))
        else:
            problem = _json_problem(attributes)
            if problem:
                fail.append(("attributes", problem))

    consent = None
    source, at_text = text.get("consent_source"), text.get("consent_at")
    if source is not None and source not in _SOURCES:
        fail.append(("consent_source", f"must be one of {', '.join(SOURCES)}"))
    elif (source is None) != (at_text is None):
        if not any(field.startswith("consent") for field, _ in fail):
            missing = "consent_at" if at_text is None else "consent_source"
            fail.append(
                (missing, f"consent_source and consent_at go together; {missing} is missing")
            )
    elif source is not None and at_text is not None:
        at = _consent_at(at_text, now, fail)
        if at is not None:
            consent = Consent(source=source, at=at)

    if fail:
        seen: set[str] = set()
        errors = []
        for field, message in fail:
            if field not in seen:  # one error per field and line (the errors table's key)
                seen.add(field)
                errors.append(RowError(line, field, message[:500]))
        return errors
    assert address is not None
    return ImportRow(
        line=line,
        address=address,
        name=text.get("name"),
        locale=locale,
        timezone=zone,
        tags=tags,
        attributes=attributes,
        consent=consent,
    )
