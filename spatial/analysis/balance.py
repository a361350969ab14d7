"""Balanced grid plans: contiguous, compact grids of 300–500 households that follow streets and never cut a
building.

Pure Shapely/numpy, no database; **coordinates in metres** of a projected CRS (EPSG:4547 in Shenzhen), areas
m². The store glue (``store/plans.py``) loads a community and adopts a plan as new grid versions.

**Units.** A morphological tessellation of the area, enclosed by the street network and estate walls
(``barriers``), gives every building a cell that stays inside its street block (:mod:`.tessellation`). The cells
of one block that touch each other form a *unit*, so unit borders run along streets and walls; a unit heavier
than ``split_above`` households (default: half the width of the range) is split back into its cells so that the
balance has fine enough steps. Units are unions of cells of one arrangement: any union of units tiles the area
exactly and cuts no building.

**Partition** (why, in docs/decisions/0007-tessellation-and-balancing.md):

1. *How many grids*: a unit heavier than ``high`` on its own (a tower block) is one grid, out of range
   whatever is done; for the rest, k = the count whose mean lies nearest the middle of the range among the
   counts that can hold them (⌈H/high⌉ … ⌊H/low⌋), else the one whose mean is nearest the range.
2. *Recursive bisection*: the unit graph is split in two (k₁ = ⌊k/2⌋ and k₂ = k − k₁ grids) by cutting one edge
   of a spanning tree, as in GerryChain's tree bipartition. Of ``tries`` random spanning trees (edges inside a
   block drawn first), the cuts whose sides can hold their grids (enough units, at most one heavy unit per
   grid) and weigh closest to their targets compete, and among those within :data:`CUT_TOLERANCE` the one
   with the shortest border (borders inside blocks count triple) wins. Both sides are subtrees, hence
   contiguous; recursion gives k contiguous regions.
3. *Recombination* (ReCom, greedily): a region out of range or > 5 % from the mean is merged with the
   neighbour whose mean with it is nearest the target and the pair is bisected again; kept if the energy
   below falls.
4. *Local moves*: a boundary unit moves to a neighbouring region when that lowers
   Σ[100·(out-of-range/μ)² + ((W − μ)/μ)²] + λ·Σ(1 − Polsby-Popper) + ν·(border inside blocks)/√area and
   its region stays connected (μ = mean households of the grids that are not one heavy unit).

Max-p regionalisation (PySAL spopt, the benchmark's peer) maximises the number of regions above a floor and
lets them grow far above the ceiling; bisection aims at the range from both sides.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely import Geometry

from spatial.analysis import cellgraph
from spatial.analysis.tessellation import DEFAULT_SPACING_M, Tessellation, tessellate

DEFAULT_RANGE = (300, 500)
COMPACTNESS_WEIGHT = 0.3        # λ
BLOCK_CUT_WEIGHT = 0.02         # ν, per (metre of border inside a block / √(mean grid area))
CUT_TOLERANCE = 0.03           # bisection: cuts within this share of the best balance compete on border length


@dataclass(frozen=True)
class Unit:
    """Building cells of one street block that touch each other (or one cell of a heavy block)."""

    polygon: Geometry
    households: int
    buildings: tuple[Hashable, ...]
    block: int


@dataclass(frozen=True)
class Region:
    polygon: Geometry
    households: int
    buildings: tuple[Hashable, ...]
    units: tuple[int, ...]


@dataclass(frozen=True)
class BalancedPlan:
    """A proposed plan: regions (metres) and their statistics (:func:`plan_stats`)."""

    regions: tuple[Region, ...]
    low: int
    high: int
    stats: dict[str, float] = field(default_factory=dict)
    excluded: tuple[Hashable, ...] = ()     # buildings with less than half their footprint in the area


def grid_count(total: int, low: int, high: int) -> int:
    """How many grids for ``total`` households and a range [low, high] (see the module docstring).

    >>> grid_count(7874, 300, 500), grid_count(250, 300, 500), grid_count(550, 300, 500), grid_count(0, 300, 500)
    (20, 1, 2, 1)
    """
    if total <= 0:
        return 1
    lo_k, hi_k = max(1, math.ceil(total / high)), max(1, total // low)
    middle = (low + high) / 2
    if lo_k <= hi_k:
        return min(range(lo_k, hi_k + 1), key=lambda k: (abs(total / k - middle), k))
    candidates = {max(1, total // high), lo_k, hi_k}
    return min(candidates, key=lambda k: (max(low - total / k, total / k - high, 0), k))


def units_grid_count(weights: Iterable[int], low: int, high: int) -> int:
    """:func:`grid_count` when some units weigh more than ``high`` on their own: each of those is one grid
    (out of range whatever is done) and the rest are counted apart.

    >>> units_grid_count([1069, 1031, 400, 400, 400], 300, 500), units_grid_count([100] * 40, 300, 500)
    (5, 10)
    """
    weights = np.asarray(list(weights), dtype=float)
    heavy = weights > high
    rest = int(weights[~heavy].sum())
    return int(heavy.sum()) + (grid_count(rest, low, high) if rest or not heavy.any() else 0)


def polsby_popper(geom: Geometry) -> float:
    """4πA/P² (1 for a disc, ~0.785 for a square, → 0 for ragged shapes); 0 for an empty geometry."""
    perimeter = geom.length
    return 4 * math.pi * geom.area / perimeter ** 2 if perimeter > 0 else 0.0


def plan_stats(polygons: Iterable[Geometry], households: Iterable[int], low: int, high: int) -> dict[str, float]:
    """Figures of a plan: grids; households mean, mean absolute deviation from the mean (and as a share of
    it), max absolute deviation, standard deviation; share of grids in [low, high]; Polsby-Popper mean/min."""
    polygons, w = list(polygons), np.asarray(list(households), dtype=float)
    if not len(w):
        return {"grids": 0}
    mean = float(w.mean())
    pp = np.array([polsby_popper(p) for p in polygons])
    return {
        "grids": len(w), "households": int(w.sum()), "mean_households": mean,
        "mean_abs_deviation": float(np.abs(w - mean).mean()),
        "mean_abs_deviation_share": float(np.abs(w - mean).mean() / mean) if mean else 0.0,
        "max_abs_deviation": float(np.abs(w - mean).max()), "std_households": float(w.std()),
        "min_households": int(w.min()), "max_households": int(w.max()),
        "share_in_range": float(((w >= low) & (w <= high)).mean()),
        "polsby_popper_mean": float(pp.mean()), "polsby_popper_min": float(pp.min()),
    }


def plan_units(area: Geometry, footprints: Mapping[Hashable, Geometry], households: Mapping[Hashable, int],
               barriers: Iterable[Geometry] = (), *, split_above: int | None = None,
               spacing_m: float = DEFAULT_SPACING_M) -> tuple[list[Unit], Tessellation]:
    """Units of ``area`` (see the module docstring); ``households`` missing or None count as 0."""
    tess = tessellate(area, footprints, barriers=list(barriers), spacing_m=spacing_m, min_share=0.5)
    keys = list(tess.cells)
    if not keys:
        return [], tess
    cells = np.array([tess.cells[k] for k in keys], dtype=object)
    block = np.array([tess.enclosure_of[k] for k in keys])
    weight = np.array([int(households.get(k) or 0) for k in keys])
    a, b, _ = cellgraph.adjacency(cells, 1e-3)
    same = block[a] == block[b]
    parent = np.arange(len(keys))
    for x, y in zip(a[same].tolist(), b[same].tolist()):
        rx, ry = cellgraph.find(parent, x), cellgraph.find(parent, y)
        if rx != ry:
            parent[rx] = ry
    roots = np.array([cellgraph.find(parent, i) for i in range(len(keys))])
    units = []
    for root in dict.fromkeys(roots.tolist()):
        members = np.flatnonzero(roots == root)
        total = int(weight[members].sum())
        if split_above is not None and total > split_above and len(members) > 1:
            units += [Unit(cells[i], int(weight[i]), (keys[i],), int(block[i])) for i in members]
        else:
            units.append(Unit(cellgraph.union(list(cells[members])), total, tuple(keys[i] for i in members),
                              int(block[members[0]])))
    return units, tess


def propose_balanced_plan(area: Geometry, footprints: Mapping[Hashable, Geometry],
                          households: Mapping[Hashable, int], barriers: Iterable[Geometry] = (), *,
                          low: int = DEFAULT_RANGE[0], high: int = DEFAULT_RANGE[1], k: int | None = None,
                          split_above: int | None = None, tries: int = 16, seed: int = 0,
                          spacing_m: float = DEFAULT_SPACING_M) -> BalancedPlan:
    """Propose grids for ``area`` (metres) from building ``footprints`` (key → footprint, metres) and
    ``households`` (key → count; missing/None = 0), following ``barriers`` (street and wall lines, metres).

    Every building with at least half its footprint inside the area is in exactly one region; regions tile
    the area. An area without buildings gives one region (the area). Deterministic for a ``seed``.
    """
    if low <= 0 or high < low:
        raise ValueError(f"bad household range {low}–{high}")
    units, tess = plan_units(area, footprints, households, barriers, spacing_m=spacing_m,
                             split_above=(high - low) // 2 if split_above is None else split_above)
    if not units:
        return BalancedPlan((Region(tess.container, 0, (), ()),), low, high,
                            plan_stats([tess.container], [0], low, high), tuple(tess.excluded))
    k = min(k or units_grid_count([u.households for u in units], low, high), len(units))
    labels = balance_units(units, k, low, high, tries=tries, seed=seed)
    regions = []
    for label in range(k):
        members = np.flatnonzero(labels == label)
        regions.append(Region(cellgraph.union([units[i].polygon for i in members]),
                              sum(units[i].households for i in members),
                              tuple(b for i in members for b in units[i].buildings), tuple(members.tolist())))
    return BalancedPlan(tuple(regions), low, high,
                        plan_stats([r.polygon for r in regions], [r.households for r in regions], low, high),
                        tuple(tess.excluded))


def balance_units(units: list[Unit], k: int, low: int, high: int, *, tries: int = 16, seed: int = 0) -> np.ndarray:
    """Region label (0..k-1) of every unit: recursive bisection, then local moves (module docstring)."""
    polygons = np.array([u.polygon for u in units], dtype=object)
    graph = _UnitGraph.build(units, polygons, high)
    rng = np.random.default_rng(seed)
    parts = _bisect(graph, np.arange(len(units)), k, tries, rng)
    labels = np.empty(len(units), dtype=np.int64)
    for label, nodes in enumerate(parts):
        labels[nodes] = label
    labels = _recombine(graph, labels, k, low, high, tries, rng)
    return _local_moves(graph, labels, k, low, high)


def _energy(graph: _UnitGraph, nodes: np.ndarray, mean: float, low: int, high: int) -> float:
    """Balance + compactness energy of one region (see :func:`_local_moves`)."""
    w = graph.weight[nodes].sum()
    out = max(low - w, w - high, 0.0) / mean
    area = graph.area[nodes].sum()
    inside = np.isin(graph.edges, nodes).all(axis=1)
    perimeter = graph.perimeter[nodes].sum() - 2 * graph.shared[inside].sum()
    pp = 4 * math.pi * area / perimeter ** 2 if perimeter > 0 else 0.0
    return 100.0 * out * out + ((w - mean) / mean) ** 2 + COMPACTNESS_WEIGHT * (1 - pp)


def _recombine(graph: _UnitGraph, labels: np.ndarray, k: int, low: int, high: int, tries: int, rng,
               rounds: int = 3) -> np.ndarray:
    """Spanning-tree recombination (GerryChain's ReCom, greedy): merge a region that is out of range or far
    from the mean with a neighbour and split the pair again by the best spanning-tree cut; keep the new pair
    when its energy is lower."""
    labels = labels.copy()
    mean = graph.target(k)
    for _ in range(rounds):
        improved = False
        weights = np.bincount(labels, weights=graph.weight, minlength=k)
        order = np.argsort(-np.abs(weights - mean))
        for r in order.tolist():
            w = weights[r]
            if low <= w <= high and abs(w - mean) <= 0.05 * mean:
                continue
            a, b = graph.edges[:, 0], graph.edges[:, 1]
            touching = set(labels[b[labels[a] == r]].tolist()) | set(labels[a[labels[b] == r]].tolist())
            touching.discard(r)
            best = None
            for s in sorted(touching, key=lambda s: abs((w + weights[s]) / 2 - mean)):
                nodes = np.flatnonzero((labels == r) | (labels == s))
                before = _energy(graph, np.flatnonzero(labels == r), mean, low, high) + \
                    _energy(graph, np.flatnonzero(labels == s), mean, low, high)
                side = _best_cut(graph, nodes, 1, 1, tries, rng)
                if side is None or side.all() or not side.any():
                    continue
                after = _energy(graph, nodes[side], mean, low, high) + _energy(graph, nodes[~side], mean, low, high)
                if after < before - 1e-9 and (best is None or after - before < best[0]):
                    best = (after - before, s, nodes, side)
                break                                 # the most promising neighbour only
            if best is not None:
                _, s, nodes, side = best
                labels[nodes[side]], labels[nodes[~side]] = r, s
                weights = np.bincount(labels, weights=graph.weight, minlength=k)
                improved = True
        if not improved:
            break
    return labels


@dataclass
class _UnitGraph:
    weight: np.ndarray
    area: np.ndarray
    perimeter: np.ndarray
    block: np.ndarray
    edges: np.ndarray          # (m, 2)
    shared: np.ndarray         # metres
    adjacency: list[set[int]]
    heavy: np.ndarray          # units heavier than the range on their own

    def target(self, k: int) -> float:
        """Households a grid should hold: the mean over the grids that are not a heavy unit on its own."""
        heavy = int(self.heavy.sum())
        rest = self.weight[~self.heavy].sum()
        return max(rest / (k - heavy) if k > heavy else self.weight.sum() / k, 1.0)

    @classmethod
    def build(cls, units: list[Unit], polygons: np.ndarray, high: float) -> _UnitGraph:
        a, b, shared = cellgraph.adjacency(polygons, 1e-3)
        edges = np.column_stack([a, b]).astype(np.int64) if len(a) else np.zeros((0, 2), dtype=np.int64)
        extra = cellgraph.join_components(polygons, edges)  # pieces touching nowhere: nearest units
        if len(extra):
            edges = np.vstack([edges, extra])
            shared = np.r_[shared, np.zeros(len(extra))]
        return cls(np.array([u.households for u in units], dtype=float), shapely.area(polygons),
                   shapely.length(polygons), np.array([u.block for u in units]), edges, shared,
                   cellgraph.neighbours(len(units), edges), np.array([u.households > high for u in units], dtype=bool))


def _bisect(graph: _UnitGraph, nodes: np.ndarray, k: int, tries: int, rng) -> list[np.ndarray]:
    """k groups of ``nodes`` (k ≤ len(nodes)), each connected, by recursive spanning-tree bisection."""
    if k <= 1 or len(nodes) <= 1:
        return [nodes]
    k1 = k // 2
    side = _best_cut(graph, nodes, k1, k - k1, tries, rng)
    if side is None:                                   # no feasible cut: hand out single units (rare)
        return [nodes[:len(nodes) - k + 1]] + [nodes[i:i + 1] for i in range(len(nodes) - k + 1, len(nodes))]
    return _bisect(graph, nodes[side], k1, tries, rng) + _bisect(graph, nodes[~side], k - k1, tries, rng)


def _best_cut(graph: _UnitGraph, nodes: np.ndarray, k1: int, k2: int, tries: int, rng) -> np.ndarray | None:
    """Boolean mask over ``nodes`` of the side that gets ``k1`` grids (the other gets ``k2``), or None.

    A side must have at least as many units as grids and at most as many heavy units (heavier than the range:
    one grid each). Its target weight is its heavy units plus its other grids times the mean of the rest.
    """
    local = np.full(len(graph.weight), -1)
    local[nodes] = np.arange(len(nodes))
    mask = (local[graph.edges[:, 0]] >= 0) & (local[graph.edges[:, 1]] >= 0)
    edges = local[graph.edges[mask]]
    shared = graph.shared[mask]
    same_block = graph.block[graph.edges[mask, 0]] == graph.block[graph.edges[mask, 1]]
    weight = graph.weight[nodes] + 1e-6 * graph.area[nodes]     # ties between empty units: by area
    heavy = graph.heavy[nodes]
    values = np.column_stack([weight, np.ones(len(nodes)), heavy, heavy * weight])
    totals = values.sum(axis=0)
    k = k1 + k2
    rest_grids = k - totals[2]
    mean_rest = (totals[0] - totals[3]) / rest_grids if rest_grids > 0 else totals[0] / k
    candidates = []
    for _ in range(max(1, tries)):
        # random spanning tree; edges inside a block are drawn first so blocks tend to stay whole
        cost = rng.random(len(edges)) + same_block * 1.0
        tree = cellgraph.spanning_tree(len(nodes), edges, cost)
        if len(tree) != len(nodes) - 1:
            return None
        tin, tout, sub = _subtrees(len(nodes), edges[tree], values)
        for side_is_subtree in (True, False):
            side = sub[1:] if side_is_subtree else totals - sub[1:]
            other = totals - side
            ok = (side[:, 1] >= k1) & (other[:, 1] >= k2) & (side[:, 2] <= k1) & (other[:, 2] <= k2)
            target = side[:, 3] + (k1 - side[:, 2]) * mean_rest
            err = np.abs(side[:, 0] - target)
            for c in np.flatnonzero(ok):
                candidates.append((float(err[c]), (tin[c + 1], tout[c + 1], side_is_subtree), tin))
    if not candidates:
        return None
    candidates.sort(key=lambda x: x[0])
    best_err = candidates[0][0]
    good = [c for c in candidates if c[0] <= best_err + CUT_TOLERANCE * mean_rest * k1][:64]
    best_mask, best_cut = None, None
    for _, (start, stop, side_is_subtree), tin in good:
        inside = (tin >= start) & (tin < stop)
        side = inside if side_is_subtree else ~inside
        crossing = side[edges[:, 0]] != side[edges[:, 1]]
        cut = float(shared[crossing].sum() + 2.0 * shared[crossing & same_block].sum())
        if best_cut is None or cut < best_cut:
            best_mask, best_cut = side, cut
    return best_mask


def _subtrees(n: int, tree: np.ndarray, values: np.ndarray):
    """Rooted at node 0: DFS entry/exit times and subtree sums of ``values`` (rows = nodes); the subtree of c
    is the nodes with tin in [tin[c], tout[c])."""
    adjacency: list[list[int]] = [[] for _ in range(n)]
    for a, b in tree.tolist():
        adjacency[a].append(b)
        adjacency[b].append(a)
    tin, tout = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    sub = values.astype(float).copy()
    parent = [-1] * n
    clock = 0
    stack = [(0, False)]
    seen = [False] * n
    while stack:
        v, done = stack.pop()
        if done:
            tout[v] = clock
            if parent[v] >= 0:
                sub[parent[v]] += sub[v]
            continue
        if seen[v]:
            continue
        seen[v] = True
        tin[v] = clock
        clock += 1
        stack.append((v, True))
        for w in adjacency[v]:
            if not seen[w]:
                parent[w] = v
                stack.append((w, False))
    return tin, tout, sub


def _local_moves(graph: _UnitGraph, labels: np.ndarray, k: int, low: int, high: int,
                 passes: int = 30) -> np.ndarray:
    """Move boundary units between neighbouring regions while the energy (module docstring) falls."""
    labels = labels.copy()
    count = np.bincount(labels, minlength=k)
    mean = graph.target(k)
    W = np.array([graph.weight[labels == r].sum() for r in range(k)])
    A = np.array([graph.area[labels == r].sum() for r in range(k)])
    P = np.zeros(k)
    for r in range(k):
        P[r] = graph.perimeter[labels == r].sum()
    for (a, b), s in zip(graph.edges.tolist(), graph.shared.tolist()):
        if labels[a] == labels[b]:
            P[labels[a]] -= 2 * s
    scale = math.sqrt(max(graph.area.sum() / k, 1.0))
    shared_to: list[dict[int, float]] = [{} for _ in range(len(labels))]
    for (a, b), s in zip(graph.edges.tolist(), graph.shared.tolist()):
        shared_to[a][b] = shared_to[a].get(b, 0.0) + s
        shared_to[b][a] = shared_to[b].get(a, 0.0) + s
    same_block = {(a, b): graph.block[a] == graph.block[b] for a, b in graph.edges.tolist()}

    def balance(w):
        out = max(low - w, w - high, 0.0) / mean
        return 100.0 * out * out + ((w - mean) / mean) ** 2

    def compact(area, perimeter):
        return 1.0 - (4 * math.pi * area / perimeter ** 2 if perimeter > 0 else 0.0)

    for _ in range(passes):
        moved = 0
        for u in range(len(labels)):
            src = int(labels[u])
            neighbours = {int(labels[v]) for v in graph.adjacency[u]} - {src}
            if not neighbours or count[src] <= 1:
                continue
            s_src = sum(s for v, s in shared_to[u].items() if labels[v] == src)
            block_src = sum(s for v, s in shared_to[u].items() if labels[v] == src and same_block[min(u, v), max(u, v)])
            best, best_delta = None, -1e-9
            for dst in neighbours:
                s_dst = sum(s for v, s in shared_to[u].items() if labels[v] == dst)
                block_dst = sum(s for v, s in shared_to[u].items()
                                if labels[v] == dst and same_block[min(u, v), max(u, v)])
                w_u, a_u, p_u = graph.weight[u], graph.area[u], graph.perimeter[u]
                delta = (balance(W[src] - w_u) + balance(W[dst] + w_u) - balance(W[src]) - balance(W[dst]))
                delta += COMPACTNESS_WEIGHT * (
                    compact(A[src] - a_u, P[src] - p_u + 2 * s_src) + compact(A[dst] + a_u, P[dst] + p_u - 2 * s_dst)
                    - compact(A[src], P[src]) - compact(A[dst], P[dst]))
                delta += BLOCK_CUT_WEIGHT * (block_src - block_dst) / scale
                if delta < best_delta:
                    best, best_delta = dst, delta
            if best is None:
                continue
            rest = set(np.flatnonzero(labels == src).tolist()) - {u}
            if len(cellgraph.pieces(sorted(rest), graph.adjacency)) != 1:
                continue
            labels[u] = best
            count[src] -= 1
            count[best] += 1
            W[src] -= graph.weight[u]
            W[best] += graph.weight[u]
            A[src] -= graph.area[u]
            A[best] += graph.area[u]
            P[src] += -graph.perimeter[u] + 2 * s_src
            s_dst = sum(s for v, s in shared_to[u].items() if labels[v] == best and v != u)
            P[best] += graph.perimeter[u] - 2 * s_dst
            moved += 1
        if not moved:
            break
    return labels
