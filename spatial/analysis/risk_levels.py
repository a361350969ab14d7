"""Risk levels on plain data: level schemes, which of overlapping zones wins, and rules that *suggest* a level.

* A :class:`Scheme` lists its levels highest first; every level carries a ``severity`` on one scale shared by all
  schemes (1 lowest … 9), so zones of different schemes compare (the shipped ``five_colour`` runs 5 red … 1 green;
  ``control`` has 封控 5, 管控 4, 防范 2).
* :func:`highest`: of the zones that apply to a place at one time, the one of highest severity wins; between equal
  severities the zone designated last (highest id) wins, so the answer is one zone, always the same one.
* :func:`suggest`: rules over an area's figures in a window (cases of some categories, positive screening results,
  persons under home isolation). A figure that is missing (None: no data for the area, e.g. nobody screened in the
  window) is *unknown*, never zero: a rule on it neither fires nor is ruled out, and a suggestion says so. A
  suggestion is only ever advice: a person confirms it by designating a zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

INDICATORS = {
    "cases": ("事件数", "cases reported"),
    "positive_screenings": ("排查阳性/需跟进户数", "households screened positive (follow-up)"),
    "home_isolation": ("居家隔离人数", "persons under home isolation"),
}
"""What a rule may count over its window, per area (Chinese, English)."""


@dataclass(frozen=True)
class Level:
    scheme: str
    level: str
    severity: int
    colour: str
    label_zh: str
    label_en: str


@dataclass(frozen=True)
class Scheme:
    name: str
    label_zh: str
    label_en: str
    levels: tuple[Level, ...]
    """Highest severity first."""

    @classmethod
    def from_row(cls, name: str, label_zh: str, label_en: str, levels: Iterable[Mapping[str, Any]]) -> Scheme:
        parsed = tuple(sorted((Level(name, str(v["level"]), int(v["severity"]), str(v.get("colour", "#888888")),
                                     str(v.get("label_zh", v["level"])), str(v.get("label_en", v["level"])))
                               for v in levels), key=lambda lv: -lv.severity))
        return cls(name, label_zh, label_en, parsed)

    def level(self, key: str) -> Level:
        """The level named ``key``; KeyError if the scheme has none."""
        for lv in self.levels:
            if lv.level == key:
                return lv
        raise KeyError(key)

    def at_severity(self, severity: int) -> Level | None:
        """The scheme's lowest level at least as severe as ``severity`` (None if none is): how a rule's level is
        named in another scheme."""
        fitting = [lv for lv in self.levels if lv.severity >= severity]
        return fitting[-1] if fitting else None


@dataclass(frozen=True)
class ZoneLevel:
    """One zone applying to a place at a time: its id, version, scheme, level and severity."""

    zone_id: int
    version: int
    scheme: str
    level: str
    severity: int
    name: str = ""
    target_kind: str = ""
    unit: str | None = None


def highest(zones: Iterable[ZoneLevel]) -> ZoneLevel | None:
    """The winning zone: highest severity, then highest zone id (the later designation); None when no zone
    applies."""
    best = None
    for z in zones:
        if best is None or (z.severity, z.zone_id) > (best.severity, best.zone_id):
            best = z
    return best


# -- suggestions ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """Suggest ``level`` (of the scheme in use) when ``indicator`` reaches ``at_least`` in the area over the
    window; ``categories`` limits the ``cases`` indicator to case categories (a code and its sub-codes)."""

    indicator: str
    at_least: int
    level: str
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.indicator not in INDICATORS:
            raise ValueError(f"unknown indicator {self.indicator!r}; indicators are {', '.join(INDICATORS)}")
        if self.at_least < 1:
            raise ValueError("a rule's threshold (at_least) is at least 1")


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("home_isolation", 20, "red"), Rule("home_isolation", 5, "orange"), Rule("home_isolation", 1, "yellow"),
    Rule("positive_screenings", 10, "red"), Rule("positive_screenings", 3, "orange"),
    Rule("cases", 10, "yellow", ("epidemic",)),
)
"""The default rules, in the five-colour scheme (thresholds per area over the window; configurable per request)."""


@dataclass(frozen=True)
class Reason:
    """Why (or why not): the rule, the figure it saw (None: unknown) and whether it fired."""

    indicator: str
    value: int | None
    at_least: int
    level: str
    fired: bool
    categories: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"indicator": self.indicator, "value": self.value, "at_least": self.at_least, "level": self.level,
                "fired": self.fired, "unknown": self.value is None, "categories": list(self.categories)}


@dataclass(frozen=True)
class Suggestion:
    """An area's suggestion: ``status`` 'suggest' (a rule fired: ``level``), 'unknown' (none fired and some rule
    lacks data) or 'none' (every rule saw data and none fired); ``incomplete``: a rule lacking data could have
    suggested a higher level than the one suggested; ``reasons`` every rule's outcome."""

    area: str
    status: str
    level: Level | None
    reasons: tuple[Reason, ...] = field(default_factory=tuple)
    figures: Mapping[str, int | None] = field(default_factory=dict)
    incomplete: bool = False


def rule_key(rule: Rule) -> str:
    """The figure a rule reads: the indicator, with the case categories it is limited to."""
    return rule.indicator + (":" + ",".join(rule.categories) if rule.categories else "")


def suggest(area: str, figures: Mapping[str, int | None], rules: Sequence[Rule], scheme: Scheme,
            rule_scheme: Scheme | None = None) -> Suggestion:
    """The level the rules suggest for one area from its ``figures`` (:func:`rule_key` → count over the window, or
    None when unknown). Rules name levels of ``rule_scheme`` (default ``scheme``); the suggestion is in ``scheme``
    (the level of the same or next higher severity). Of the rules that fire, the most severe level wins."""
    source = rule_scheme or scheme
    reasons, best, unknown_severity = [], None, 0
    for rule in rules:
        severity = source.level(rule.level).severity
        value = figures.get(rule_key(rule))
        fired = value is not None and value >= rule.at_least
        reasons.append(Reason(rule.indicator, value, rule.at_least, rule.level, fired, rule.categories))
        if fired and (best is None or severity > best):
            best = severity
        if value is None:
            unknown_severity = max(unknown_severity, severity)
    level = scheme.at_severity(best) if best is not None else None
    status = "suggest" if best is not None else "unknown" if unknown_severity else "none"
    return Suggestion(area, status, level, tuple(reasons), dict(figures),
                      incomplete=unknown_severity > (best or 0))
