"""The failover drill (issue 18 §2), opt-in: ``GRIDGOV_DRILL=1 pytest tests/test_failover_drill.py`` (about 90 s:
a pg_auto_failover formation is created, gridgov served on its multi-host URL under mixed load, the primary
killed). Needs ``pg_autoctl`` (package postgresql-15-auto-failover, installed by ./dev.sh setup)."""

from __future__ import annotations

import os
import shutil

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("GRIDGOV_DRILL") != "1",
                                reason="the failover drill runs only with GRIDGOV_DRILL=1 (about 90 s, "
                                       "pg_auto_failover)")

RECOVERY_BOUND_S = 30.0
"""Kill → first acknowledged save. Measured 9.6–9.9 s (decision 0025, of which 8.0–8.7 s to promote the standby);
the bound leaves room for a busy machine."""


def test_killing_the_primary_loses_no_acknowledged_write_and_service_recovers_by_itself():
    from benchmarks.failover import drill

    assert shutil.which("pg_autoctl"), "GRIDGOV_DRILL=1 needs pg_autoctl: apt-get install postgresql-15-auto-failover"
    result = drill(concurrency=4, duration=25.0, kill_at=6.0, warmup=2.0, rejoin=True)
    print("\n".join(result.lines()))
    assert result.old_primary and result.new_primary and result.new_primary != result.old_primary
    assert result.acknowledged > 0 and result.lost == 0, result.lines()
    assert result.unavailable > 0 and result.unavailable_with_retry_after == result.unavailable
    assert result.other_5xx == {} and result.connection_errors == 0
    assert result.first_write_after_kill_s is not None and result.first_write_after_kill_s < RECOVERY_BOUND_S
    assert result.rejoin_s is not None, "the old primary did not come back as a standby"
