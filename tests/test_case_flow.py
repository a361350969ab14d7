"""The case workflow table: every pair of states is checked against a hand-written list of the moves the
workflow allows (GB/T 30428 steps plus 退回, 返工, 挂账, 延期 and reopening); an illegal move is a Conflict naming
what is allowed."""

from __future__ import annotations

import itertools

import pytest

from spatial import case_flow as flow
from spatial.errors import Conflict

# (from, to) -> action: written by hand from the workflow, not derived from the table under test
MOVES = {
    ("reported", "registered"): "register",
    ("reported", "rejected"): "reject",
    ("registered", "dispatched"): "dispatch",
    ("dispatched", "handling"): "accept",
    ("dispatched", "registered"): "return",
    ("handling", "registered"): "return",
    ("handling", "feedback"): "report_back",
    ("feedback", "verified"): "verify",
    ("feedback", "handling"): "verify_fail",
    ("verified", "closed"): "close",
    ("deferred", "closed"): "close",
    ("registered", "deferred"): "defer",
    ("dispatched", "deferred"): "defer",
    ("handling", "deferred"): "defer",
    ("deferred", "handling"): "resume",
    ("closed", "registered"): "reopen",
    ("reported", "merged"): "merge",
    ("registered", "merged"): "merge",
}


@pytest.mark.parametrize("source, target", list(itertools.product(flow.STATES, repeat=2)))
def test_every_pair_of_states(source, target):
    reachable = {flow.ACTIONS[a].target: a for a in flow.allowed(source) if a in flow.ACTIONS}
    assert reachable.get(target) == MOVES.get((source, target))
    for action in flow.ACTIONS:
        if (source, target) not in MOVES and flow.ACTIONS[action].target == target:
            with pytest.raises(Conflict) as refused:
                flow.next_state(source, action)
            assert refused.value.detail["allowed"] == flow.allowed(source)


def test_an_illegal_move_lists_the_allowed_ones_in_its_message():
    with pytest.raises(Conflict, match="allowed now: register, reject, merge") as refused:
        flow.next_state("reported", "close")
    assert refused.value.detail == {"state": "reported", "action": "close",
                                    "allowed": ["register", "reject", "merge"]}
    with pytest.raises(Conflict, match="nothing, it is finished"):
        flow.next_state("rejected", "reopen")


def test_extensions_keep_the_state_and_only_while_dispatched_or_handling():
    for state in flow.STATES:
        for action in flow.EXTENSION_ACTIONS:
            if state in ("dispatched", "handling"):
                assert flow.next_state(state, action) == state
            else:
                with pytest.raises(Conflict):
                    flow.next_state(state, action)


def test_clocks_run_in_open_states_only_and_every_label_has_chinese():
    assert {s for s in flow.STATES if flow.clock(s)} == {"reported", "registered", "dispatched", "handling",
                                                          "feedback", "verified"}
    assert all(flow.clock(s) is None for s in ("closed", "rejected", "deferred"))
    assert all(zh and en for zh, en in flow.STATES.values())
    assert all(a.label_zh and a.label_en for a in flow.ACTIONS.values())
    assert set(flow.EXTENSION_LABELS) == set(flow.EXTENSION_ACTIONS)
    assert all(zh and en for zh, en in flow.EXTENSION_LABELS.values())
    assert all(flow.next_state(s, "close") == "closed" for s in ("verified", "deferred"))


def test_unknown_states_and_actions_are_errors_not_conflicts():
    with pytest.raises(ValueError, match="unknown case state"):
        flow.allowed("lost")
    with pytest.raises(ValueError, match="unknown action"):
        flow.next_state("reported", "teleport")
