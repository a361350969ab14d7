"""Codes of the grid hierarchy and of people, with their check rules.

* division: 12 digits = county (6, GB/T 2260) + subdistrict (3; 001–099 are 街道) + community (3);
* grid (Shenzhen practice): community code (12) + 2-digit number, numbered west→east then north→south;
* building (Shenzhen house code): grid code (14) + 5-digit building number = 19 digits;
* citizen ID: 17 digits + ISO 7064 MOD 11-2 check character (0–9 or X).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from operator import mul

_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_ID_CHECK = "10X98765432"
_ID_SHAPE = re.compile(r"\d{17}[\dX]")


def division_level(code: str) -> str:
    """'district', 'subdistrict' or 'community' for a 12-digit division code; ValueError otherwise.

    >>> division_level("440304000000"), division_level("440304002000"), division_level("440304002003")
    ('district', 'subdistrict', 'community')
    """
    if not re.fullmatch(r"\d{12}", code or ""):
        raise ValueError(f"division code must be 12 digits, got {code!r}")
    if code[6:] == "000000":
        return "district"
    if code[9:] == "000":
        return "subdistrict"
    return "community"


DIVISION_CODE_PATTERN = r"^[0-9]{12}$"
SUBDISTRICT_CODE_PATTERN = r"^[0-9]{6}(?!000)[0-9]{3}000$"
"""A subdistrict's code: county (6) + its number (001–999, never 000) + 000."""
COMMUNITY_CODE_PATTERN = r"^[0-9]{9}(?!000)[0-9]{3}$"
"""A community's code: its subdistrict's first 9 digits + its number (001–999)."""


def division_code_problem(code: str, level: str | None = None) -> str | None:
    """Why ``code`` is not the 12-digit code of a division of ``level`` (any level when None), or None.

    >>> division_code_problem("440304096001", "community") is None
    True
    >>> division_code_problem("440304096000", "community").split(" (")[0]
    "code 440304096000 ends in 000: it is a subdistrict's code, not a community's"
    """
    if not re.fullmatch(r"\d{12}", code or ""):
        return (f"code {code!r} is not 12 digits (6 county + 3 subdistrict + 3 community, e.g. 440304096001)"
                if len(code or "") <= 40 else f"code of {len(code)} characters is not 12 digits")
    found = division_level(code)
    if level is None or level == found:
        return None
    why = {"district": "ends in 000000: it is a district's code",
           "subdistrict": "ends in 000: it is a subdistrict's code",
           "community": "does not end in 000: it is a community's code"}[found]
    rule = {"subdistrict": "a subdistrict's code is county (6) + its number (001–999) + 000",
            "community": "a community's last 3 digits are its number, 001–999",
            "district": "a district's code ends in 000000"}.get(level, f"{level!r} is no division level")
    return f"code {code} {why}, not a {level}'s ({rule})"


def scope_prefix(code: str) -> str:
    """The significant prefix of a division code: everything inside the division starts with it.

    >>> scope_prefix("440304000000"), scope_prefix("440304002000"), scope_prefix("440304002003")
    ('440304', '440304002', '440304002003')
    """
    return {"district": code[:6], "subdistrict": code[:9], "community": code}[division_level(code)]


def grid_code(community_code: str, number: int) -> str:
    """Grid code = community code + 2-digit number (1–99)."""
    if division_level(community_code) != "community":
        raise ValueError(f"{community_code} is not a community code")
    if not 1 <= number <= 99:
        raise ValueError(f"grid number must be 1–99, got {number}")
    return f"{community_code}{number:02d}"


def building_code(grid: str, number: int) -> str:
    """Building code = grid code (14 digits) + 5-digit number (1–99999)."""
    if not re.fullmatch(r"\d{14}", grid) or not 1 <= number <= 99_999:
        raise ValueError(f"bad grid code {grid!r} or building number {number}")
    return f"{grid}{number:05d}"


def id_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits of a citizen ID."""
    if len(first17) != 17:
        raise ValueError(f"an ID number's check character follows 17 digits, got {len(first17)} characters")
    return _ID_CHECK[sum(map(mul, map(int, first17), _ID_WEIGHTS)) % 11]


def is_valid_id_number(value: str) -> bool:
    """True if ``value`` is 18 characters with a correct check character (the birth date is not checked).

    >>> is_valid_id_number("11010519491231002X"), is_valid_id_number("110105194912310021")
    (True, False)
    """
    return bool(_ID_SHAPE.fullmatch(value or "")) and id_check_char(value[:17]) == value[17]


def reading_order(points: Sequence[tuple[float, float]], row_tolerance: float) -> list[int]:
    """Indexes of ``points`` (x, y in metres, y north) numbered west→east within rows, rows north→south.

    Points whose y lies within ``row_tolerance`` metres of a row's first (northernmost) point join that row,
    so grids of slightly uneven heights still read as one row. Returns the indexes in numbering order.

    >>> reading_order([(0, 0), (10, 0.5), (0, 100), (10, 99)], row_tolerance=5)
    [2, 3, 0, 1]
    """
    remaining = sorted(range(len(points)), key=lambda i: -points[i][1])
    order: list[int] = []
    while remaining:
        top = points[remaining[0]][1]
        row = [i for i in remaining if top - points[i][1] <= row_tolerance]
        order.extend(sorted(row, key=lambda i: points[i][0]))
        remaining = [i for i in remaining if i not in set(row)]
    return order


# Unified social credit code (统一社会信用代码, GB 32100-2015): 18 characters of 0-9 and the capitals without I, O,
# S, V, Z: registration authority (1), organisation type (1), administrative division (6 digits), organisation
# code (9, its own check character last) and a check character over the first 17 (weights 3^i mod 31).
CREDIT_CODE_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
CREDIT_CODE_PATTERN = r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$"


def credit_check_char(first17: str) -> str:
    """The GB 32100 check character of the first 17 characters of a unified social credit code.

    >>> credit_check_char("91350100M000100Y4")
    '3'
    """
    total = sum(CREDIT_CODE_CHARS.index(c) * w for c, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    return CREDIT_CODE_CHARS[(31 - total % 31) % 31]


def credit_code_problem(value: str | None) -> str | None:
    """Why ``value`` is not a unified social credit code (18 characters, positions 3–8 digits, the GB 32100
    alphabet, the right check character), or None when it is one. Lower case is not accepted: normalise first.

    >>> credit_code_problem("91350100M000100Y43"), credit_code_problem("91350100M000100Y44")
    (None, 'bad check character 4 (expected 3; GB 32100)')
    """
    if not value or len(value) != 18:
        return f"a unified social credit code has 18 characters ({len(value or '')} given)"
    if not re.fullmatch(CREDIT_CODE_PATTERN, value):
        return ("not a unified social credit code: digits and capitals without I, O, S, V, Z; characters 3–8 the "
                "division code")
    expected = credit_check_char(value[:17])
    if value[17] != expected:
        return f"bad check character {value[17]} (expected {expected}; GB 32100)"
    return None
