"""Map matching of GPS tracks to the walking network: a hidden Markov model solved by Viterbi (Newson & Krumm 2009).

Plain numpy and Shapely on planar coordinates in metres (the caller projects, e.g. to EPSG:4547); no database.

* **States**: for each fix, the candidate positions on the network: the nearest point of each edge within
  ``radius_m`` (segments found through a Shapely STRtree of the edges' segments, at most ``max_candidates`` per
  fix, nearest first).
* **Emission**: Gaussian on the distance from the fix to the candidate, ``log p = -½ (d / sigma_m)²``.
* **Transition**: exponential on ``|route distance − straight distance|`` between consecutive fixes,
  ``log p = -|Δ| / beta_m``; route distances on the undirected edge graph by a Dijkstra bounded to
  ``2 × straight + 2 × radius_m + 100 m`` (rounded up to 100 m, results kept per start node for the whole
  track, so neighbouring fixes reuse them). A route longer than ``max_speed_mps × Δt + 2 × radius_m`` is
  impossible.
* **Averaging and thinning**: at 1 Hz a walker moves ~1.3 m between fixes, far less than the noise, and matching
  every fix lets the path wander back and forth along an edge and onto neighbouring lanes. The fixes are first
  averaged over consecutive windows of ``window_s`` seconds (the noise falls by √n; a corner is cut by under
  ``window_s × speed / 4``), then an averaged fix is matched only when it lies ``min_step_m`` or more from the last
  matched one (Newson & Krumm's thinning), the last of a piece always.
* **Pieces**: the track is cut where no fix arrived for more than ``break_s`` seconds (a drop-out shorter than
  that is bridged by the route, if one is plausible) and where the
  model finds no possible transition (a jump, or a fix far from every lane); each piece is matched on its own.
  Fixes with no candidate within ``radius_m`` are left out (counted in :attr:`Match.unmatched`).
* **Edges walked**: the matched route between consecutive states (the Dijkstra path between their edges); an
  edge counts as walked when the route covers at least ``min(½ its length, cover_m)`` of it.

Edge cases: fewer than 2 matched fixes in a piece gives a piece with one state and the edge it lies on;
an empty track or network gives an empty :class:`Match`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely

INF = math.inf


@dataclass(frozen=True)
class Network:
    """The edges to match to, in metres. ``edge_ids`` are the caller's ids; everything else is by edge index."""

    edge_ids: np.ndarray
    source: np.ndarray
    target: np.ndarray
    length: np.ndarray
    seg_a: np.ndarray
    seg_b: np.ndarray
    seg_edge: np.ndarray
    seg_start: np.ndarray
    tree: shapely.STRtree
    adjacency: list[list[tuple[int, int, float]]]
    index: dict[int, int] = field(repr=False)

    @property
    def edges(self) -> int:
        return len(self.edge_ids)


def build_network(edge_ids: Sequence[int], sources: Sequence[int], targets: Sequence[int],
                  lines: Sequence[np.ndarray]) -> Network:
    """A :class:`Network` from edges: ids, source and target node ids, and each edge's vertices as an (n, 2)
    array in metres drawn from source to target. Edge lengths are the lines' planar lengths."""
    nodes: dict[int, int] = {}
    src = np.array([nodes.setdefault(int(s), len(nodes)) for s in sources], dtype=np.int64)
    tgt = np.array([nodes.setdefault(int(t), len(nodes)) for t in targets], dtype=np.int64)
    seg_a, seg_b, seg_edge, seg_start, lengths = [], [], [], [], []
    for i, line in enumerate(lines):
        xy = np.asarray(line, dtype=float)
        steps = np.hypot(*(xy[1:] - xy[:-1]).T)
        starts = np.concatenate([[0.0], np.cumsum(steps)[:-1]])
        seg_a.append(xy[:-1])
        seg_b.append(xy[1:])
        seg_edge.append(np.full(len(steps), i, dtype=np.int64))
        seg_start.append(starts)
        lengths.append(float(steps.sum()))
    if lines:
        a, b = np.concatenate(seg_a), np.concatenate(seg_b)
        se, ss = np.concatenate(seg_edge), np.concatenate(seg_start)
    else:
        a = b = np.zeros((0, 2))
        se, ss = np.zeros(0, dtype=np.int64), np.zeros(0)
    length = np.array(lengths)
    adjacency: list[list[tuple[int, int, float]]] = [[] for _ in nodes]
    for i, (u, v, w) in enumerate(zip(src.tolist(), tgt.tolist(), length.tolist(), strict=True)):
        adjacency[u].append((v, i, w))
        adjacency[v].append((u, i, w))
    tree = shapely.STRtree(shapely.linestrings(np.stack([a, b], axis=1)) if len(a) else [])
    ids = np.asarray(edge_ids, dtype=np.int64)
    return Network(ids, src, tgt, length, a, b, se, ss, tree, adjacency, {int(e): i for i, e in enumerate(ids)})


@dataclass(frozen=True)
class Params:
    """Model parameters (metres, seconds); defaults tuned on 1 Hz phone tracks with 5–15 m noise."""

    radius_m: float = 50.0
    max_candidates: int = 8
    sigma_m: float = 10.0
    beta_m: float = 8.0
    min_step_m: float = 8.0
    window_s: float = 15.0
    break_s: float = 120.0
    max_speed_mps: float = 15.0
    cover_m: float = 15.0


@dataclass(frozen=True)
class Piece:
    """A matched stretch of track: fixes ``first``…``last`` (indexes into the input, inclusive), the edge ids
    walked in order (``edges``, each once per run), metres along the network (``length_m``), and per matched fix
    (``states``): (fix index, edge id, metres from the edge's source, x, y on the edge)."""

    first: int
    last: int
    edges: tuple[int, ...]
    length_m: float
    states: tuple[tuple[int, int, float, float, float], ...]


@dataclass(frozen=True)
class Match:
    """The pieces of a track, the set of edge ids walked, and how many fixes had no candidate."""

    pieces: tuple[Piece, ...]
    edges: frozenset[int]
    unmatched: int

    @property
    def length_m(self) -> float:
        return sum(p.length_m for p in self.pieces)


def nearest_distances(net: Network, xy: np.ndarray) -> np.ndarray:
    """Metres from each point to the nearest edge (``inf`` for an empty network)."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    if not net.edges or not len(xy):
        return np.full(len(xy), INF)
    _, dist = net.tree.query_nearest(shapely.points(xy), return_distance=True, all_matches=False)
    return np.asarray(dist, dtype=float)


@dataclass
class _Candidates:
    offsets: np.ndarray  # CSR: candidates of fix i are offsets[i]:offsets[i+1]
    edge: np.ndarray
    pos: np.ndarray
    dist: np.ndarray
    xy: np.ndarray


def _candidates(net: Network, xy: np.ndarray, params: Params) -> _Candidates:
    n = len(xy)
    if not net.edges or not n:
        return _Candidates(np.zeros(n + 1, dtype=np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0),
                           np.zeros((0, 2)))
    pi, si = net.tree.query(shapely.points(xy), predicate="dwithin", distance=params.radius_m)
    a, b, p = net.seg_a[si], net.seg_b[si], xy[pi]
    ab = b - a
    l2 = (ab * ab).sum(axis=1)
    t = np.clip(((p - a) * ab).sum(axis=1) / np.where(l2 > 0, l2, 1.0), 0.0, 1.0)
    proj = a + t[:, None] * ab
    d = np.hypot(*(p - proj).T)
    edge = net.seg_edge[si]
    pos = net.seg_start[si] + t * np.sqrt(l2)
    order = np.lexsort((d, edge, pi))  # per (fix, edge): the nearest segment first
    pi, edge, d, pos, proj = pi[order], edge[order], d[order], pos[order], proj[order]
    first = np.ones(len(pi), dtype=bool)
    first[1:] = (pi[1:] != pi[:-1]) | (edge[1:] != edge[:-1])
    pi, edge, d, pos, proj = pi[first], edge[first], d[first], pos[first], proj[first]
    order = np.lexsort((d, pi))  # per fix: nearest edge first
    pi, edge, d, pos, proj = pi[order], edge[order], d[order], pos[order], proj[order]
    rank = np.arange(len(pi)) - np.searchsorted(pi, pi)
    keep = rank < params.max_candidates
    pi, edge, d, pos, proj = pi[keep], edge[keep], d[keep], pos[keep], proj[keep]
    offsets = np.searchsorted(pi, np.arange(n + 1))
    return _Candidates(offsets, edge, pos, d, proj)


class _Router:
    """Bounded Dijkstra on the undirected edge graph, results kept per start node (node → (bound, dist, pred))."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.cache: dict[int, tuple[float, dict[int, float], dict[int, tuple[int, int]]]] = {}

    def tree(self, node: int, bound: float) -> tuple[dict[int, float], dict[int, tuple[int, int]]]:
        hit = self.cache.get(node)
        if hit is not None and hit[0] >= bound:
            return hit[1], hit[2]
        adjacency = self.net.adjacency
        dist = {node: 0.0}
        pred: dict[int, tuple[int, int]] = {}
        heap = [(0.0, node)]
        done = set()
        while heap:
            d, u = heapq.heappop(heap)
            if u in done:
                continue
            done.add(u)
            for v, edge, w in adjacency[u]:
                nd = d + w
                if nd <= bound and nd < dist.get(v, INF):
                    dist[v] = nd
                    pred[v] = (u, edge)
                    heapq.heappush(heap, (nd, v))
        self.cache[node] = (bound, dist, pred)
        return dist, pred

    def path(self, start: int, end: int, bound: float) -> list[int]:
        """Edge indexes from node ``start`` to node ``end`` (within a tree already grown to ``bound``)."""
        _, pred = self.tree(start, bound)
        edges = []
        node = end
        while node != start:
            node, edge = pred[node]
            edges.append(edge)
        return edges[::-1]


def match(net: Network, xy: np.ndarray, t: np.ndarray, params: Params = Params()) -> Match:
    """Match fixes ``xy`` ((n, 2) metres, same CRS as the network) taken at times ``t`` ((n,) seconds,
    non-decreasing; the caller sorts and cleans them) to ``net`` (see the module docstring)."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    t = np.asarray(t, dtype=float)
    n = len(xy)
    if n == 0 or not net.edges:
        return Match((), frozenset(), n)
    cand = _candidates(net, xy, params)
    has = np.diff(cand.offsets) > 0
    router = _Router(net)
    pieces: list[Piece] = []
    # cut at long gaps: a run of fixes with candidates, no silence longer than break_s between consecutive ones
    usable = np.flatnonzero(has)
    runs: list[list[int]] = []
    for i in usable.tolist():
        if runs and t[i] - t[runs[-1][-1]] <= params.break_s:
            runs[-1].append(i)
        else:
            runs.append([i])
    for run in runs:
        mxy, mt, first = _average(xy, t, run, params.window_s)
        mcand = _candidates(net, mxy, params)
        ok = [k for k in range(len(mxy)) if mcand.offsets[k + 1] > mcand.offsets[k]]
        if not ok:
            continue
        kept = _thin(mxy, ok, params.min_step_m)
        for piece in _viterbi(net, router, mcand, mxy, mt, kept, params):
            states = tuple((first[s[0]], *s[1:]) for s in piece.states)
            last = run[-1] if piece.last == kept[-1] else first[piece.last + 1] - 1 if piece.last + 1 < len(first) \
                else run[-1]
            pieces.append(Piece(first[piece.first], last, piece.edges, piece.length_m, states))
    edges = frozenset(e for p in pieces for e in p.edges)
    return Match(tuple(pieces), edges, int((~has).sum()))


def _average(xy: np.ndarray, t: np.ndarray, run: list[int], window_s: float):
    """The fixes of ``run`` averaged over consecutive windows of ``window_s`` seconds (noise down by √n at 1 Hz):
    (mean positions, mean times, index of each window's first fix)."""
    idx = np.asarray(run)
    if window_s <= 0:
        return xy[idx], t[idx], idx.tolist()
    bucket = np.floor((t[idx] - t[idx[0]]) / window_s).astype(np.int64)
    starts = np.flatnonzero(np.concatenate([[True], bucket[1:] != bucket[:-1]]))
    counts = np.diff(np.concatenate([starts, [len(idx)]]))
    mx = np.add.reduceat(xy[idx, 0], starts) / counts
    my = np.add.reduceat(xy[idx, 1], starts) / counts
    mt = np.add.reduceat(t[idx], starts) / counts
    return np.column_stack([mx, my]), mt, idx[starts].tolist()


def _thin(xy: np.ndarray, run: list[int], min_step: float) -> list[int]:
    kept = [run[0]]
    for i in run[1:]:
        if math.hypot(*(xy[i] - xy[kept[-1]])) >= min_step:
            kept.append(i)
    if run[-1] != kept[-1]:
        kept.append(run[-1])
    return kept


def _bound(straight: float, params: Params) -> float:
    return math.ceil((2 * straight + 2 * params.radius_m + 100.0) / 100.0) * 100.0


def _routes(net: Network, router: _Router, cand: _Candidates, i: int, j: int, bound: float):
    """Route metres between every candidate of fix i and of fix j, and how each is walked:
    (None: along one edge) or (node from, node to)."""
    ai = range(cand.offsets[i], cand.offsets[i + 1])
    bj = range(cand.offsets[j], cand.offsets[j + 1])
    out = np.full((len(ai), len(bj)), INF)
    how: dict[tuple[int, int], tuple[int, int] | None] = {}
    src, tgt, length = net.source, net.target, net.length
    for x, a in enumerate(ai):
        ea, pa = int(cand.edge[a]), float(cand.pos[a])
        ends_a = ((int(src[ea]), pa), (int(tgt[ea]), float(length[ea]) - pa))
        trees = [router.tree(na, bound)[0] for na, _ in ends_a]
        for y, b in enumerate(bj):
            eb, pb = int(cand.edge[b]), float(cand.pos[b])
            if ea == eb:
                out[x, y] = abs(pb - pa)
                how[(x, y)] = None
                continue
            ends_b = ((int(src[eb]), pb), (int(tgt[eb]), float(length[eb]) - pb))
            best, pair = INF, None
            for (na, oa), dist in zip(ends_a, trees, strict=True):
                for nb, ob in ends_b:
                    d = dist.get(nb)
                    if d is not None and oa + d + ob < best:
                        best, pair = oa + d + ob, (na, nb)
            out[x, y] = best
            how[(x, y)] = pair
    return out, how


def _viterbi(net: Network, router: _Router, cand: _Candidates, xy: np.ndarray, t: np.ndarray, kept: list[int],
             params: Params) -> list[Piece]:
    def emission(i: int) -> np.ndarray:
        d = cand.dist[cand.offsets[i]:cand.offsets[i + 1]]
        return -0.5 * (d / params.sigma_m) ** 2

    pieces: list[Piece] = []
    score = emission(kept[0])
    chain = [kept[0]]
    back: list[np.ndarray] = []
    hows: list[tuple[float, dict]] = []
    for i, j in zip(kept, kept[1:], strict=False):
        straight = math.hypot(*(xy[j] - xy[i]))
        bound = _bound(straight, params)
        routes, how = _routes(net, router, cand, i, j, bound)
        limit = params.max_speed_mps * max(t[j] - t[i], 1.0) + 2 * params.radius_m
        trans = np.where(routes <= limit, -np.abs(routes - straight) / params.beta_m, -INF)
        total = score[:, None] + trans
        best = total.argmax(axis=0)
        new = total[best, np.arange(total.shape[1])]
        if not np.isfinite(new).any():  # no way from i to j: close the piece, start again at j
            pieces.append(_piece(net, router, cand, chain, back, hows, score, params))
            score, chain, back, hows = emission(j), [j], [], []
            continue
        score = new + emission(j)
        chain.append(j)
        back.append(best)
        hows.append((bound, how))
    pieces.append(_piece(net, router, cand, chain, back, hows, score, params))
    return pieces


def _piece(net: Network, router: _Router, cand: _Candidates, chain: list[int], back: list[np.ndarray],
           hows: list[tuple[float, dict]], score: np.ndarray, params: Params) -> Piece:
    states = [int(np.argmax(score))]
    for best in reversed(back):
        states.append(int(best[states[-1]]))
    states.reverse()
    glob = [cand.offsets[i] + s for i, s in zip(chain, states, strict=True)]
    covered: dict[int, float] = {}
    order: list[int] = []
    length = 0.0

    def walk(edge: int, metres: float) -> None:
        if edge not in covered:
            covered[edge] = 0.0
            order.append(edge)
        covered[edge] += metres

    walk(int(cand.edge[glob[0]]), 0.0)
    for k, (bound, how) in enumerate(hows):
        a, b = glob[k], glob[k + 1]
        ea, eb = int(cand.edge[a]), int(cand.edge[b])
        pa, pb = float(cand.pos[a]), float(cand.pos[b])
        pair = how[(states[k], states[k + 1])]
        if pair is None:
            walk(ea, abs(pb - pa))
            length += abs(pb - pa)
            continue
        na, nb = pair
        oa = pa if na == net.source[ea] else float(net.length[ea]) - pa
        ob = pb if nb == net.source[eb] else float(net.length[eb]) - pb
        walk(ea, oa)
        length += oa + ob
        for e in router.path(na, nb, bound):
            walk(e, float(net.length[e]))
            length += float(net.length[e])
        walk(eb, ob)
    ids = net.edge_ids
    walked = tuple(int(ids[e]) for e in order
                   if covered[e] >= min(0.5 * float(net.length[e]), params.cover_m) or len(chain) == 1)
    out_states = tuple((int(i), int(ids[cand.edge[g]]), float(cand.pos[g]), float(cand.xy[g][0]),
                        float(cand.xy[g][1])) for i, g in zip(chain, glob, strict=True))
    return Piece(chain[0], chain[-1], walked, length, out_states)


@dataclass(frozen=True)
class Cleaned:
    """The fixes worth matching: ``keep`` (indexes into the input, in time order), and what was left out:
    ``out_of_order`` (fixes that arrived after a later one: sorted, not refused), ``same_time`` (a second fix at
    an instant already seen), ``too_fast`` (implying more than ``max_speed_mps`` from the last kept fix) and
    ``jumps`` (where the track resumed after a run of consistent fixes far away: the positions in ``keep`` where
    a new stretch begins)."""

    keep: np.ndarray
    out_of_order: int
    same_time: int
    too_fast: int
    jumps: tuple[int, ...]


def clean_track(xy: np.ndarray, t: np.ndarray, *, max_speed_mps: float = 15.0, noise_m: float = 50.0,
                settle: int = 5) -> Cleaned:
    """Sort fixes by time, drop repeated instants and fixes implying an absurd speed (metres, seconds).

    A fix farther from the last kept fix than ``max_speed_mps`` allows (over at least 1 s, plus ``noise_m`` for the
    noise of both fixes) is left out; but when
    ``settle`` consecutive left-out fixes agree with one another, the track has truly moved (a lift, a tunnel, a
    phone restarted): they are kept and a jump is recorded there, so one bad first fix does not discard the rest.
    """
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    t = np.asarray(t, dtype=float)
    if not len(t):
        return Cleaned(np.zeros(0, dtype=np.int64), 0, 0, 0, ())
    out_of_order = int((t[1:] < np.maximum.accumulate(t)[:-1]).sum())
    order = np.argsort(t, kind="stable")
    ts = t[order]
    fresh = np.concatenate([[True], ts[1:] != ts[:-1]])
    same_time = int((~fresh).sum())
    order = order[fresh]
    keep: list[int] = []
    pending: list[int] = []
    jumps: list[int] = []
    too_fast = 0

    def fits(a: int, b: int) -> bool:
        return math.hypot(*(xy[b] - xy[a])) <= max_speed_mps * max(t[b] - t[a], 1.0) + noise_m

    for i in order.tolist():
        if not keep or fits(keep[-1], i):
            too_fast += len(pending)
            pending = []
            keep.append(i)
            continue
        if pending and not fits(pending[-1], i):
            too_fast += len(pending)
            pending = []
        pending.append(i)
        if len(pending) >= settle:
            jumps.append(len(keep))
            keep.extend(pending)
            pending = []
    too_fast += len(pending)
    return Cleaned(np.array(keep, dtype=np.int64), out_of_order, same_time, too_fast, tuple(jumps))
