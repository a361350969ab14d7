"""The life of a case (事件): its states, the actions that move it, and which clock runs in each state.

The workflow of Chinese digital city management (GB/T 30428: 信息采集、案卷建立、任务派遣、任务处置、处理反馈、
核查结案) as a table, so that the store, the API, the pages and the figures read one definition::

    reported ─register→ registered ─dispatch→ dispatched ─accept→ handling ─report_back→ feedback
        │                 ↑   │                  │    ↑ return        │  ↑ redo (返工)      │
        reject            └───┴── return (退回) ──┘    └───────────────┘  └──── verify_fail ─┤
        ↓                                                                                  verify
    rejected        deferred (挂账) ←defer─ registered | dispatched | handling       verified ─close→ closed
                    deferred ─resume→ handling,  deferred ─close→ closed           closed ─reopen→ registered

    reported | registered ─merge→ merged (合并: a duplicate of another open case, which carries on for both)

Extensions (延期) do not change the state: ``request_extension`` and then ``approve_extension`` or
``refuse_extension`` while the case is dispatched or handling (:data:`EXTENSION_STATES`); an approved one
moves the deadline of the running clock. Who may take an action (reporter, dispatcher, handler, verifier) is
the store's business, with the caller's role and grids; this module only knows what follows what.

Each open state runs the clock of one step (:data:`CLOCKS`); the step's limit comes from the case's category
(:mod:`spatial.worktime` counts it in working time). ``deferred`` (long-term register) runs no clock, and the
terminal states ``closed``, ``rejected`` and ``merged`` none either.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from spatial.errors import Conflict

STATES: dict[str, tuple[str, str]] = {
    "reported": ("已上报", "reported"),
    "registered": ("已立案", "registered"),
    "dispatched": ("已派遣", "dispatched"),
    "handling": ("处置中", "being handled"),
    "feedback": ("已反馈", "handled, awaiting verification"),
    "verified": ("已核查", "verified"),
    "closed": ("已结案", "closed"),
    "rejected": ("不予立案", "not accepted"),
    "deferred": ("挂账", "long-term register"),
    "merged": ("已合并", "merged into another report of the same problem"),
}
TERMINAL = frozenset({"closed", "rejected", "merged"})


@dataclass(frozen=True)
class Action:
    """An action moving a case from any of ``sources`` to ``target``; ``needs_note``: a reason is required."""

    sources: frozenset[str]
    target: str
    label_zh: str
    label_en: str
    needs_note: bool = False


def _a(sources: str, target: str, zh: str, en: str, needs_note: bool = False) -> Action:
    return Action(frozenset(sources.split()), target, zh, en, needs_note)


ACTIONS: dict[str, Action] = {
    "register": _a("reported", "registered", "立案", "register"),
    "reject": _a("reported", "rejected", "不予立案", "reject", needs_note=True),
    "dispatch": _a("registered", "dispatched", "派遣", "dispatch"),
    "accept": _a("dispatched", "handling", "接单", "accept"),
    "return": _a("dispatched handling", "registered", "退回", "return to the dispatcher", needs_note=True),
    "report_back": _a("handling", "feedback", "反馈", "report the handling"),
    "verify": _a("feedback", "verified", "核查通过", "verify"),
    "verify_fail": _a("feedback", "handling", "返工", "send back for redo", needs_note=True),
    "close": _a("verified deferred", "closed", "结案", "close"),
    "defer": _a("registered dispatched handling", "deferred", "挂账", "put on the long-term register",
                needs_note=True),
    "resume": _a("deferred", "handling", "恢复处置", "resume handling"),
    "reopen": _a("closed", "registered", "重新立案", "reopen", needs_note=True),
    "merge": _a("reported registered", "merged", "合并", "merge into the same problem's open case"),
}

EXTENSION_STATES = frozenset({"dispatched", "handling"})
EXTENSION_ACTIONS = ("request_extension", "approve_extension", "refuse_extension")
EXTENSION_LABELS: dict[str, tuple[str, str]] = {
    "request_extension": ("申请延期", "request an extension"),
    "approve_extension": ("批准延期", "approve the extension"),
    "refuse_extension": ("不予延期", "refuse the extension"),
}

# state -> the step whose time limit runs while the case is in it
CLOCKS: dict[str, str] = {
    "reported": "register",      # 受理立案
    "registered": "dispatch",    # 派遣
    "dispatched": "handle",      # 处置 (the handling clock starts at dispatch)
    "handling": "handle",
    "feedback": "verify",        # 核查
    "verified": "close",         # 结案
}
STEPS: dict[str, tuple[str, str]] = {
    "register": ("立案", "register"), "dispatch": ("派遣", "dispatch"), "handle": ("处置", "handle"),
    "verify": ("核查", "verify"), "close": ("结案", "close"),
}


def allowed(state: str) -> list[str]:
    """The actions that can be taken in ``state``, in table order (extension actions included where they apply)."""
    return list(_allowed(state))


@lru_cache(maxsize=None)
def _allowed(state: str) -> tuple[str, ...]:
    _known(state)
    found = [name for name, action in ACTIONS.items() if state in action.sources]
    return tuple(found + (list(EXTENSION_ACTIONS) if state in EXTENSION_STATES else []))


def next_state(state: str, action: str) -> str:
    """The state after ``action`` in ``state``; :class:`~spatial.errors.Conflict` (409) naming the allowed
    actions when it cannot be taken now, ValueError for an action that does not exist."""
    _known(state)
    if action in EXTENSION_ACTIONS:
        if state in EXTENSION_STATES:
            return state
    elif action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: use one of {', '.join([*ACTIONS, *EXTENSION_ACTIONS])}")
    elif state in ACTIONS[action].sources:
        return ACTIONS[action].target
    options = allowed(state)
    zh, en = STATES[state]
    raise Conflict(f"{action!r} is not possible for a case that is {en} ({zh}): "
                   + (f"allowed now: {', '.join(options)}" if options else "nothing, it is finished"),
                   state=state, action=action, allowed=options)


def clock(state: str) -> str | None:
    """The step whose limit runs in ``state`` (None: no clock — deferred, closed, rejected)."""
    _known(state)
    return CLOCKS.get(state)


def _known(state: str) -> None:
    if state not in STATES:
        raise ValueError(f"unknown case state {state!r}")
