"""Two planners save the same grid in a tight loop, each with its own HTTP client against a real uvicorn.

Each iteration reads the grid's ETag and saves a redraw with ``If-Match`` (the shared boundary moves to an x of
that planner's own, never used twice, so every applied save is a real change). Every answer must be 2xx
(applied) or 412 (refused: the other planner saved in between); the grid's history must hold versions 1..N
with no gap, one row per applied save carrying that save's boundary, and the stored grid must be the last
applied save.
"""

from __future__ import annotations

import threading

import httpx

from tests import drills
from tests.drills import WEST

ITERATIONS = 25  # per planner


def planner_loop(base: str, username: str, offset: int, results: list, start: threading.Barrier) -> None:
    """Save ITERATIONS redraws, each at x = 110 + 2·i + offset metres; append (status, version, x)."""
    with httpx.Client(base_url=base, timeout=30) as client:
        headers = drills.token(client, username)
        start.wait()
        for i in range(ITERATIONS):
            x = 110 + 2 * i + offset
            read = client.get(f"/api/grids/{WEST}", headers=headers)
            assert read.status_code == 200, read.text
            response = drills.redraw(client, headers, x, read.headers["ETag"], reason=f"{username} #{i}")
            version = None
            if 200 <= response.status_code < 300:
                version = response.json()["grids"]["features"][0]["properties"]["version"]
                assert response.headers["ETag"] == f'"{WEST}.v{version}"'
            results.append((response.status_code, version, float(x)))


def test_two_planners_saving_one_grid_in_a_tight_loop_lose_nothing_and_overwrite_nothing(live_server):
    base, sessions = live_server
    drills.seed(sessions)
    results: dict[str, list] = {"planner1": [], "planner2": []}
    start = threading.Barrier(2)
    threads = [threading.Thread(target=planner_loop, args=(base, name, offset, results[name], start))
               for offset, name in enumerate(results)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    answers = results["planner1"] + results["planner2"]
    assert len(answers) == 2 * ITERATIONS  # both loops ran to the end (an assertion inside a thread stops it)

    assert {status for status, _, _ in answers} <= {200, 412}, sorted({s for s, _, _ in answers})
    applied = sorted((version, x) for status, version, x in answers if status == 200)
    assert len(applied) >= ITERATIONS  # at least one of the two planners gets through on every round
    versions = [v for v, _ in applied]
    assert versions == list(range(2, len(applied) + 2))  # each applied save made exactly one new version

    assert drills.west_history(sessions) == [(1, 200.0), *applied]  # no gap, one row per save, its boundary
    last_version, last_x = applied[-1]
    assert drills.west_now(sessions) == (last_version, last_x, round(last_x * 200))
