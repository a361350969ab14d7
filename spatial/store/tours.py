"""Tours on the street network: the order to visit stops in, and the route through them.

Used by field staff (visit routes through unvisited households) and inspectors (patrol routes through
checkpoints or buildings). Three shapes of tour, all from a ``start`` position:

* ``open``    start → every stop, ending at the last stop (a worker's round);
* ``closed``  start → every stop → back to start;
* ``to_end``  start → every stop → ``end``.

On the ``walk`` network (both directions everywhere) or the ``drive`` network (one-way streets honoured; the
cost matrix is then asymmetric). Distances are metres, times seconds at ``speed_mps`` (default 1.2 m/s walking,
8.3 m/s = 30 km/h driving). Positions are EPSG:4326 (lon, lat); convert at the edge.

What runs where: snapping, the cost matrix (``pgr_dijkstraCostMatrix``) and the legs (``pgr_dijkstra``) run in
PostGIS/pgRouting (:mod:`spatial.store.network`), where the network lives; the order is solved in Python on that
matrix by :func:`spatial.analysis.tsp.solve_tsp` (exact Held-Karp up to 13 stops, the exact MIP or OR-Tools'
guided local search beyond).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from shapely.geometry import LineString
from sqlalchemy.orm import Session

from spatial.analysis.tsp import TspSolution, solve_tsp
from spatial.errors import InvalidInput
from spatial.store import network as net

MAX_STOPS = 300
DEFAULT_SPEED_MPS = {"walk": 1.2, "drive": 8.3}


@dataclass(frozen=True)
class Stop:
    """A place to visit: ``key`` identifies it to the caller (a building id, a checkpoint id...)."""

    key: Hashable
    lon: float
    lat: float


@dataclass(frozen=True)
class RouteLeg:
    from_key: Hashable
    to_key: Hashable
    length_m: float
    duration_s: float
    geometry: LineString
    steps: tuple[net.Step, ...]


@dataclass(frozen=True)
class Tour:
    """The planned tour. ``order`` are stop keys in visiting order; ``arrival_m`` the metres walked (or driven)
    on arrival at each of them; ``geometry`` (EPSG:4326) the whole route; ``unreachable`` the stops left out
    because no route reaches them (only with ``skip_unreachable``)."""

    network: str
    shape: str
    order: tuple[Hashable, ...]
    arrival_m: tuple[float, ...]
    legs: tuple[RouteLeg, ...]
    length_m: float
    duration_s: float
    speed_mps: float
    geometry: LineString
    unreachable: tuple[Hashable, ...]
    optimal: bool
    solver: str


def _validate(stops: Sequence[Stop], network: str, speed_mps: float | None, closed: bool, end) -> float:
    net.network_view(network)
    if not stops:
        raise InvalidInput("give at least one stop to visit")
    if len(stops) > MAX_STOPS:
        raise InvalidInput(f"at most {MAX_STOPS} stops per tour, got {len(stops)}; split the area")
    if len({s.key for s in stops}) != len(stops):
        raise InvalidInput("stop keys must be unique")
    if closed and end is not None:
        raise InvalidInput("a tour is either closed (back to start) or goes to an end point, not both")
    speed = DEFAULT_SPEED_MPS[network] if speed_mps is None else float(speed_mps)
    if not 0.1 <= speed <= 40:
        raise InvalidInput(f"speed must be between 0.1 and 40 m/s, got {speed_mps}")
    return speed


def plan_tour(session: Session, start: tuple[float, float], stops: Sequence[Stop], *,
              end: tuple[float, float] | None = None, closed: bool = False, network: str = "walk",
              speed_mps: float | None = None, time_limit_s: float | None = None, skip_unreachable: bool = False,
              margin_m: float = 500.0, max_snap_m: float = 200.0, metric_srid: int = 4547,
              first: Hashable | None = None) -> Tour:
    """Plan a tour from ``start`` (lon, lat) through ``stops`` on ``network`` ('walk' or 'drive').

    ``closed``: back to start; ``end`` (lon, lat): finish there; neither: end at the last stop. Stops more than
    ``max_snap_m`` metres from the network, or with no route to or from the others, are unreachable:
    InvalidInput naming them (``detail['unreachable']`` = their keys), or, with ``skip_unreachable``, left out
    and listed in ``Tour.unreachable``. The network is loaded for ``margin_m`` metres around the points' box.
    ``first`` (a stop's key; open or to_end tours only, ignored if that stop is unreachable): visit it first,
    then the best order of the others from there (a worker standing at a building starts with it); ``optimal``
    then means optimal under that condition.
    """
    speed = _validate(stops, network, speed_mps, closed, end)
    points = [tuple(start), *((s.lon, s.lat) for s in stops)] + ([tuple(end)] if end is not None else [])
    graph = net.build_graph(session, network, points, margin_m=margin_m, max_snap_m=max_snap_m,
                            metric_srid=metric_srid)
    if graph.snaps[0].vertex is None:
        raise InvalidInput(f"the start is more than {max_snap_m:g} m from the {network} network")
    if end is not None and graph.snaps[-1].vertex is None:
        raise InvalidInput(f"the end is more than {max_snap_m:g} m from the {network} network")
    cost = net.cost_matrix(session, graph)
    end_index = len(points) - 1 if end is not None else None
    stop_indexes = list(range(1, len(stops) + 1))
    bad = [i for i in stop_indexes if not _reachable(cost, i, end_index, closed)]
    if bad and not skip_unreachable:
        keys = [stops[i - 1].key for i in bad]
        raise InvalidInput(f"{len(keys)} stop(s) cannot be reached on the {network} network: "
                           + ", ".join(map(str, keys[:20])), unreachable=keys)
    keep = [0] + [i for i in stop_indexes if i not in bad] + ([end_index] if end_index is not None else [])
    pinned = next((i for i in keep[1:] if i <= len(stops) and stops[i - 1].key == first), None) \
        if first is not None and not closed else None
    if pinned is not None and len(keep) > 2:  # solve the rest from the first stop
        keep = [pinned] + [i for i in keep[1:] if i != pinned]
    else:
        pinned = None
    sub = cost[np.ix_(keep, keep)]
    solution = solve_tsp(sub, start=0, end=len(keep) - 1 if end is not None else None, closed=closed,
                         time_limit_s=time_limit_s)
    visit = ([pinned] if pinned is not None else []) + [keep[i] for i in solution.order]
    path = [0, *visit] + ([0] if closed else [end_index] if end_index is not None else [])
    legs = net.legs(session, graph, list(itertools.pairwise(path)))
    return _tour(network, "closed" if closed else "to_end" if end is not None else "open", stops, visit, legs,
                 speed, [stops[i - 1].key for i in bad], solution)


def _reachable(cost: np.ndarray, i: int, end: int | None, closed: bool) -> bool:
    """Whether stop i can be reached from the start and, where the tour goes on, left for the end or start."""
    back = cost[i, 0] if closed else cost[i, end] if end is not None else 0.0
    return bool(np.isfinite(cost[0, i]) and np.isfinite(back))


def _key(stops: Sequence[Stop], index: int):
    return stops[index - 1].key if 1 <= index <= len(stops) else ("start" if index == 0 else "end")


def _tour(network: str, shape: str, stops: Sequence[Stop], visit: list[int], legs: list[net.Leg], speed: float,
          unreachable: list, solution: TspSolution) -> Tour:
    route_legs, coords, arrivals, walked = [], [], [], 0.0
    for leg in legs:
        route_legs.append(RouteLeg(_key(stops, leg.source), _key(stops, leg.target), leg.length_m,
                                   leg.length_m / speed, leg.geometry, leg.steps))
        part = list(leg.geometry.coords)
        coords.extend(part[1:] if coords and part[0] == coords[-1] else part)
        walked += leg.length_m
        if 1 <= leg.target <= len(stops):
            arrivals.append(walked)
    arrivals = arrivals[:len(visit)]
    geometry = LineString(coords if len(coords) > 1 else coords * 2)
    return Tour(network, shape, tuple(stops[i - 1].key for i in visit), tuple(arrivals), tuple(route_legs), walked,
                walked / speed, speed, geometry, tuple(unreachable), solution.optimal, solution.method)
