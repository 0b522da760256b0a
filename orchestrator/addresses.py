"""Email address validation and normalisation, with `email-validator` (a maintained library).

The normalised form is the identity key: the domain is IDNA-normalised and lowercased by the
library; we also lowercase the local part, because every mailbox provider our users reach treats it
case-insensitively and two rows for `Lan@x.vn` and `lan@x.vn` would split one person in two.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


class AddressInvalid(ValueError):
    pass


def normalize_address(value: str) -> str:
    candidate = value.strip()
    if not candidate or len(candidate) > 320:
        raise AddressInvalid("not a valid email address")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AddressInvalid(str(exc)) from exc
    return result.normalized.lower()
