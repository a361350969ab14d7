"""Display masking of personal data, applied on the server as the last step before data leaves it.

Rules (Personal Information Protection Law practice, see shared/domain.md §6):
ID number first 6 + last 4 (``440304********1234``), mobile 3 + 4 (``138****5678``), name surname + ``*``.
Full values only through an explicit, reasoned, audited reveal. ``None`` stays ``None``.
"""

from __future__ import annotations

# Two-character surnames (复姓) that would otherwise be cut after their first character.
_COMPOUND_SURNAMES = frozenset({
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文", "司徒", "夏侯", "令狐", "端木", "澹台",
})


def mask_name(name: str | None) -> str | None:
    """Surname + ``*``: ``张三丰`` → ``张*``, ``欧阳修`` → ``欧阳*``; Latin names keep the first letter.

    >>> mask_name("张三丰"), mask_name("欧阳修"), mask_name("Li"), mask_name("")
    ('张*', '欧阳*', 'L*', '')
    """
    if not name:
        return name
    name = name.strip()
    surname = name[:2] if name[:2] in _COMPOUND_SURNAMES and len(name) > 2 else name[:1]
    return surname + "*"


def mask_id_number(value: str | None) -> str | None:
    """First 6 + last 4 characters, the rest as ``*``; anything shorter than 11 characters is fully masked.

    >>> mask_id_number("44030419800101123X")
    '440304********123X'
    """
    if not value:
        return value
    if len(value) < 11:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_phone(value: str | None) -> str | None:
    """First 3 + last 4 digits: ``13812345678`` → ``138****5678``; short values are fully masked.

    >>> mask_phone("13812345678")
    '138****5678'
    """
    if not value:
        return value
    if len(value) < 8:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


MASKS = {"head_name": mask_name, "head_id_number": mask_id_number, "head_phone": mask_phone,
         "head_of_building_phone": mask_phone}


def mask_record(record: dict) -> dict:
    """A copy of ``record`` with every personal field it has masked (see :data:`MASKS`)."""
    return {key: MASKS[key](value) if key in MASKS else value for key, value in record.items()}
