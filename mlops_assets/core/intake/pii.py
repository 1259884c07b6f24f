"""Detecting personal data in contributed columns, by column name and by value.

A column found to hold personal data is never carried forward: not into the clean rows, not
into the quarantine. Detection runs as SQL over the file, so it costs one scan at any size.
"""

import re

# Regular expressions (RE2 syntax, as DuckDB runs them). Phone and card numbers must be the
# whole value (a long number inside free text is too often something else); the others may
# appear anywhere in it.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])"
VALUE_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    "phone": r"\+?[0-9][0-9 ().-]{6,}[0-9]",
    "national_id": r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b",
    "credit_card": r"[0-9](?:[ -]?[0-9]){12,18}",
    "ip_address": rf"\b{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}\b",
    "street_address": (
        r"(?i)\b[0-9]{1,6}[a-z]? +(?:[a-z]+ +){0,4}"
        r"(?:street|st|avenue|ave|road|rd|lane|ln|boulevard|blvd|drive|dr|way|court|ct|place|pl)\b"
    ),
    "person_name": r"\b(?:Mr|Mrs|Ms|Dr)\.? +[A-Z][a-z]+(?: +[A-Z][a-z]+)*",
}
WHOLE_VALUE_KINDS = frozenset({"phone", "credit_card"})
# Values that look like digits and separators but are not personal data: dates, times and
# timestamps (ISO, day-first, compact), a pair of decimal coordinates, a year-serial code.
NOT_PERSONAL = (
    r"([0-9]{4}[-./][0-9]{1,2}[-./][0-9]{1,2}|[0-9]{1,2}[-./][0-9]{1,2}[-./][0-9]{2,4})"
    r"([ T][0-9]{1,2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)? *(Z|[+-][0-9]{2}:?[0-9]{2})?)?"
    r"|[0-9]{1,2}:[0-9]{2}(:[0-9]{2}([.,][0-9]+)?)?"
    r"|[0-9]{8}T?[0-9]{6}"
    r"|[-+]?[0-9]{1,3}[.][0-9]+[ ,;/]+[-+]?[0-9]{1,3}[.][0-9]+"
    r"|(19|20)[0-9]{2}-[0-9]{1,6}"
)
# Kinds a date or a coordinate could be mistaken for.
_DIGIT_KINDS = frozenset({"phone", "credit_card", "national_id"})
# A measurement such as "5.1": never personal data, so no pattern is tried on it.
PLAIN_NUMBER = r"-?[0-9]{1,6}([.][0-9]{1,6})?"

# Column names (normalised) that announce personal data whatever the values look like.
NAME_PATTERNS: dict[str, str] = {
    "person_name": r"(^|_)(name|first_?name|last_?name|surname|full_?name|given_?name)($|_)",
    "email": r"(^|_)e_?mail($|_)",
    "phone": r"(^|_)(phone|mobile|tel|telephone)($|_)",
    "street_address": r"(^|_)(address|street|addr)($|_)",
    "national_id": r"(^|_)(ssn|national_?id|passport|tax_?id|id_?number)($|_)",
    "ip_address": r"(^|_)ip(_?address)?($|_)",
    "credit_card": r"(^|_)(credit_?card|card_?number|iban)($|_)",
}


def luhn_valid(text: str) -> bool:
    """True when the digits of ``text`` pass the Luhn check (credit card numbers do)."""
    digits = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def kinds_by_column_name(normalised_name: str) -> list[str]:
    return [kind for kind, pattern in NAME_PATTERNS.items() if re.search(pattern, normalised_name)]


def value_match_sql(column_sql: str, kind: str) -> str:
    """SQL condition: the value of ``column_sql`` looks like ``kind`` (whole-value match).

    Credit cards are only candidates here; :func:`luhn_valid` confirms them in Python.
    """
    value = f"trim({column_sql})"
    pattern = VALUE_PATTERNS[kind].replace("'", "''")
    function = "regexp_full_match" if kind in WHOLE_VALUE_KINDS else "regexp_matches"
    match = f"{function}({value}, '{pattern}')"
    if kind in _DIGIT_KINDS:
        match += f" AND NOT regexp_full_match({value}, '{NOT_PERSONAL}')"
    if kind == "phone":
        # A decimal is a measurement, not a phone number, unless it starts with "+".
        match += f" AND (TRY_CAST({value} AS DOUBLE) IS NULL OR starts_with({value}, '+'))"
        # ... and a card number is a card, not a phone.
        match += f" AND NOT regexp_full_match({value}, '{VALUE_PATTERNS['credit_card']}')"
    return f"({match})"


def masked_sql(text_sql: str, delimiter: str) -> str:
    """SQL: ``text_sql`` (a record's raw text) with every field that looks like personal data
    replaced by ``[personal data removed]``."""
    found = " OR ".join(value_match_sql("x", kind) for kind in VALUE_PATTERNS)
    separator = delimiter.replace("'", "''")
    return (
        f"array_to_string(list_transform(string_split({text_sql}, '{separator}'), "
        f"lambda x: CASE WHEN {found} THEN '[personal data removed]' ELSE x END), "
        f"'{separator}')"
    )
