"""Map matching of patrol tracks on the real Shatou walking network: gridgov's HMM matcher against leuvenmapmatching.

The OpenStreetMap street network of Shatou (``../shared/data/futian_shatou.gpkg``) is imported into a throw-away
database (``spatial.io.import_streets``) and read back in EPSG:4547 metres (``spatial.store.network.edge_lines``).
Synthetic tracks (seeded): a random walk of shortest routes between random nodes of the largest connected piece
(each leg 300–1200 m), walked at 1.1–1.5 m/s, one fix per second with Gaussian noise of a standard deviation drawn
per track from 5–15 m, and 0–3 drop-outs of 10–60 s (fixes removed). The truth is the set of edges of the route.

* **gridgov** — :func:`spatial.analysis.mapmatch.match` with its default parameters (on every fix; it thins them
  itself);
* **leuvenmapmatching** — ``DistanceMatcher`` (non-emitting states, lattice width 10, rtree edge index; the
  distances the same as ours: obs_noise 10 m, max_dist 50 m) on an ``InMemMap`` in metres whose nodes are the
  edges' vertices, given every fix; and given the fixes thinned the way ours are (``leuven/thinned``), to separate
  the model from the thinning.

Accuracy per track: the share of edges matched correctly, |truth ∩ matched| / |truth ∪ matched| (edges in the truth
not matched and edges matched not in the truth both count against), and the recall |truth ∩ matched| / |truth|;
means over the tracks. Time: seconds per track, mean (the network index built once, outside the timing, for
both). Finally one 1-hour track (3,600 fixes) timed for gridgov (and leuven with ``--leuven-hour``).

    python -m benchmarks.mapmatch [--tracks 20] [--minutes 10] [--seed 1] [--leuven-hour] [--database-url URL]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
from sqlalchemy.orm import Session

from benchmarks.common import SHARED_DATA, database
from spatial.analysis import mapmatch
from spatial.store import network as net
from spatial.store.engine import make_engine

DATA = Path(os.environ.get("SHARED_DATA_DIR") or SHARED_DATA) / "futian_shatou.gpkg"


@dataclass(frozen=True)
class Track:
    """A synthetic track: fixes (n, 2) metres, times (n,) seconds, the edge ids of the route walked, noise σ."""

    xy: np.ndarray
    t: np.ndarray
    truth: frozenset[int]
    sigma_m: float


def graph_of(lines: net.EdgeLines) -> nx.MultiGraph:
    """The undirected edge graph (nodes: street node ids; key: edge id; weight: planar metres)."""
    graph = nx.MultiGraph()
    for e, s, t, line in zip(lines.ids, lines.sources, lines.targets, lines.lines, strict=True):
        graph.add_edge(s, t, key=e, weight=float(np.hypot(*np.diff(line, axis=0).T).sum()), line=line)
    return graph.subgraph(max(nx.connected_components(graph), key=len)).copy()


def synthetic_track(graph: nx.MultiGraph, rng: np.random.Generator, seconds: float, *,
                    sigma_range: tuple[float, float] = (5.0, 15.0), dropouts: int | None = None) -> Track:
    """A track of about ``seconds`` seconds on ``graph`` (see the module docstring)."""
    nodes = list(graph.nodes)
    where = {}
    for u, v, data in graph.edges(data=True):
        where[u], where[v] = data["line"][0], data["line"][-1]
    speed = rng.uniform(1.1, 1.5)
    want = speed * seconds
    node = nodes[rng.integers(len(nodes))]
    coords: list[np.ndarray] = [where[node][None, :]]
    truth: set[int] = set()
    walked = 0.0
    while walked < want:
        target = nodes[rng.integers(len(nodes))]
        d = math.dist(where[node], where[target])
        if not 300 <= d <= 1200:
            continue
        path = nx.shortest_path(graph, node, target, weight="weight")
        for u, v in zip(path, path[1:], strict=False):
            key, data = min(graph[u][v].items(), key=lambda kv: kv[1]["weight"])
            line = data["line"]
            if not np.allclose(line[0], where[u]):
                line = line[::-1]
            coords.append(line[1:])
            truth.add(int(key))
            walked += data["weight"]
            if walked >= want:
                break
        node = target
    route = np.concatenate(coords)
    step = np.hypot(*np.diff(route, axis=0).T)
    at = np.concatenate([[0.0], np.cumsum(step)])
    t = np.arange(0.0, min(seconds, at[-1] / speed))
    s = t * speed
    xy = np.column_stack([np.interp(s, at, route[:, 0]), np.interp(s, at, route[:, 1])])
    sigma = rng.uniform(*sigma_range)
    xy = xy + rng.normal(0.0, sigma, xy.shape)
    keep = np.ones(len(t), dtype=bool)
    for _ in range(rng.integers(0, 4) if dropouts is None else dropouts):
        start = rng.integers(len(t))
        keep[start:start + rng.integers(10, 61)] = False
    return Track(xy[keep], t[keep], frozenset(truth), sigma)


def scores(truth: frozenset[int], matched: set[int] | frozenset[int]) -> tuple[float, float]:
    """(share of edges matched correctly = |∩| / |∪|, recall = |∩| / |truth|)."""
    both = len(truth & matched)
    return both / max(len(truth | matched), 1), both / max(len(truth), 1)


class Leuven:
    """leuvenmapmatching's DistanceMatcher on the same network (vertices as nodes), in metres."""

    def __init__(self, lines: net.EdgeLines) -> None:
        from leuvenmapmatching.map.inmem import InMemMap

        self.map = InMemMap("shatou", use_latlon=False, use_rtree=True, index_edges=True)
        self.segment_edge: dict[tuple[int, int], int] = {}
        ids: dict[tuple[float, float], int] = {}

        def node(xy) -> int:
            key = (round(float(xy[0]), 3), round(float(xy[1]), 3))
            if key not in ids:
                ids[key] = len(ids)
                self.map.add_node(ids[key], (key[1], key[0]))  # leuven's locations are (y, x)
            return ids[key]

        for e, line in zip(lines.ids, lines.lines, strict=True):
            vertices = [node(p) for p in line]
            for a, b in zip(vertices, vertices[1:], strict=False):
                if a != b:
                    self.map.add_edge(a, b)
                    self.map.add_edge(b, a)
                    self.segment_edge[(a, b)] = self.segment_edge[(b, a)] = int(e)
        self.map.setup_index()

    def match(self, xy: np.ndarray) -> set[int]:
        from leuvenmapmatching.matcher.distance import DistanceMatcher

        matcher = DistanceMatcher(self.map, max_dist=50, max_dist_init=50, obs_noise=10, obs_noise_ne=20,
                                  dist_noise=10, non_emitting_states=True, max_lattice_width=10)
        matcher.match([(float(y), float(x)) for x, y in xy])
        nodes = matcher.path_pred_onlynodes
        return {self.segment_edge[(a, b)] for a, b in zip(nodes, nodes[1:], strict=False)
                if (a, b) in self.segment_edge}


def thinned(track: Track, params: mapmatch.Params) -> np.ndarray:
    kept = [0]
    for i in range(1, len(track.xy)):
        if math.dist(track.xy[i], track.xy[kept[-1]]) >= params.min_step_m:
            kept.append(i)
    return track.xy[kept]


def run(session: Session, tracks: int, minutes: float, seed: int, leuven_hour: bool, with_leuven: bool) -> None:
    from spatial.io import import_streets

    report = import_streets(session, DATA, origin="bench:shatou")
    print(report.summary())
    lines = net.edge_lines(session, "walk", (113.0, 22.0, 115.0, 23.0), margin_m=0.0)
    network = mapmatch.build_network(lines.ids, lines.sources, lines.targets, lines.lines)
    graph = graph_of(lines)
    print(f"walking network: {network.edges} edges; largest piece {graph.number_of_nodes()} nodes")
    rng = np.random.default_rng(seed)
    leuven = Leuven(lines) if with_leuven else None
    rows: dict[str, list[tuple[float, float, float]]] = {"gridgov": [], "leuven": [], "leuven/thinned": []}
    for _ in range(tracks):
        track = synthetic_track(graph, rng, minutes * 60)
        start = time.perf_counter()
        result = mapmatch.match(network, track.xy, track.t)
        rows["gridgov"].append((*scores(track.truth, result.edges), time.perf_counter() - start))
        if leuven is not None:
            for name, xy in (("leuven", track.xy), ("leuven/thinned", thinned(track, mapmatch.Params()))):
                start = time.perf_counter()
                try:
                    matched = leuven.match(xy)
                except Exception as exc:  # noqa: BLE001 — a peer's failure is a figure, not a crash
                    print(f"  {name} failed: {exc}")
                    matched = set()
                rows[name].append((*scores(track.truth, matched), time.perf_counter() - start))
    print(f"\n{tracks} tracks of {minutes:g} min (1 Hz, noise σ 5–15 m, drop-outs), seed {seed}")
    print(f"{'matcher':<16}{'edges correct':>14}{'recall':>9}{'s / track':>11}")
    for name, values in rows.items():
        if values:
            acc, rec, sec = (statistics.fmean(v[k] for v in values) for k in range(3))
            print(f"{name:<16}{acc:>14.3f}{rec:>9.3f}{sec:>11.3f}")
    hour = synthetic_track(graph, rng, 3600, dropouts=2)
    start = time.perf_counter()
    result = mapmatch.match(network, hour.xy, hour.t)
    took = time.perf_counter() - start
    acc, rec = scores(hour.truth, result.edges)
    print(f"\n1-hour track ({len(hour.xy)} fixes): gridgov {took:.2f} s, edges correct {acc:.3f}, recall {rec:.3f}")
    if leuven_hour and leuven is not None:
        start = time.perf_counter()
        acc, rec = scores(hour.truth, leuven.match(hour.xy))
        print(f"1-hour track: leuvenmapmatching {time.perf_counter() - start:.2f} s, edges correct {acc:.3f}, "
              f"recall {rec:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--leuven-hour", action="store_true", help="also time leuvenmapmatching on the 1-hour track")
    parser.add_argument("--no-leuven", action="store_true", help="gridgov only")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with database(args.database_url, "gridgov_bench_mapmatch") as (url, _):
        engine = make_engine(url, pool_size=1)
        with Session(engine) as session:
            run(session, args.tracks, args.minutes, args.seed, args.leuven_hour, not args.no_leuven)
            session.rollback()
        engine.dispose()


if __name__ == "__main__":
    main()
