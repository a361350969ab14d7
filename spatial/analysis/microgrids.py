"""Micro-grids (微网格) of five buildings inside one grid: sizes, contiguity, polygons that tile the grid.

Pure Shapely/numpy, no database; **coordinates in metres** of a projected CRS (EPSG:4547 in Shenzhen).
The store glue (``store/microgrids.py``) loads a grid, calls :func:`plan_micro_grids` and writes rows.

**Sizes** (:func:`group_sizes`): n buildings, n = 5a + r with 0 ≤ r ≤ 4, give

* r = 0: a groups of 5;                 * r = 1: a − 1 groups of 5 and one of 6 (n ≥ 6);
* r = 2: a − 2 groups of 5 and two of 6 (n ≥ 12);   * r = 3: a − 1 groups of 5 and two of 4 (n ≥ 8);
* r = 4: a groups of 5 and one of 4;
* n < 4: one group of n; n = 7 (the only other count that no sum of 4s, 5s and 6s makes): one of 4 and one of 3.

That is the most fives any split into 4–6 can have, and the fewest non-five groups among those; the partition
below reaches it by minimising Σ|size − 5| (with sizes outside 4–6 priced far higher).

**Method**: a morphological tessellation of the grid (:mod:`spatial.analysis.tessellation`) gives every
building a cell; cells sharing a border are adjacent. An edge whose two buildings are separated by a street
(the shortest line between the footprints crosses a street line) costs far more than others, and components
that touch nowhere (a grid in several pieces) are joined by "virtual" edges that cost more still. A spanning
tree of this graph is split into subtrees by an exact dynamic programme over (node, size of its open group),
minimising, in this order, invalid sizes, Σ|size − 5|, street edges kept inside a group, and the length of
kept tree edges (a compactness proxy). Subtrees of a spanning tree are connected, so every micro-grid is
contiguous, and it crosses a street only when the sizes demand it. The minimum spanning tree and ``tries``
randomly re-weighted ones are split; the best split by (invalid, Σ|size − 5|, street crossings, moment of
inertia) wins. Polygons are unions of members' cells, so micro-grids tile the grid exactly and cut no building.
k-means (HOT's splitter) is not used: it does not control sizes.

**Stability** (``previous``): a previous group is kept unchanged when all its buildings are still in the grid,
it still has 4–6 buildings and its cells are still contiguous. The other buildings are regrouped; when they
form a piece of 1–3 or 7 buildings (no valid split), the kept group bordering it longest is released too.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import shapely
from shapely import Geometry

from spatial.analysis import cellgraph
from spatial.analysis.tessellation import DEFAULT_SPACING_M, majority_owner, tessellate

TARGET, LOW, HIGH = 5, 4, 6
STREET_COST_M = 10_000.0     # spanning-tree weight added to an edge crossing a street
VIRTUAL_COST_M = 100_000.0   # ... and to an edge joining pieces of the grid that do not touch
_INVALID, _OFF_TARGET, _STREET, _VIRTUAL = 1e12, 1e9, 1e6, 1e7


def group_sizes(n: int) -> list[int]:
    """Sizes of the micro-grids of a grid with ``n`` buildings (largest first); see the module docstring.

    >>> [group_sizes(n) for n in (0, 3, 7, 11, 12, 13, 14)]
    [[], [3], [4, 3], [6, 5], [6, 6], [5, 4, 4], [5, 5, 4]]
    """
    if n <= 0:
        return []
    if n < LOW:
        return [n]
    if n == 7:
        return [4, 3]
    a, r = divmod(n, TARGET)
    extra = {0: [], 1: [6], 2: [6, 6], 3: [4, 4], 4: [4]}[r]
    fives = a - {0: 0, 1: 1, 2: 2, 3: 1, 4: 0}[r]
    return sorted([TARGET] * fives + extra, reverse=True)


def size_cost(size: int) -> float:
    """Price of a group of ``size`` buildings: 0 for five, 1e9 for four or six, ≥ 1e12 otherwise."""
    if LOW <= size <= HIGH:
        return abs(size - TARGET) * _OFF_TARGET
    return _INVALID * (LOW - size if size < LOW else size - HIGH) + _OFF_TARGET * abs(size - TARGET)


@dataclass(frozen=True)
class CellGraph:
    """Adjacency of building cells. Node i holds the buildings ``keys[i]`` (several only when their footprints
    overlap, so they can never be split) and weighs ``weight[i]`` buildings; ``xy`` are footprint centroids (m).
    Edge e joins ``edges[e]``, sharing ``shared_m[e]`` metres of border (0 for virtual edges)."""

    keys: tuple[tuple[Hashable, ...], ...]
    cells: tuple[Geometry, ...]
    weight: np.ndarray
    xy: np.ndarray
    edges: np.ndarray
    shared_m: np.ndarray
    street: np.ndarray
    virtual: np.ndarray

    @property
    def n(self) -> int:
        return len(self.keys)

    def tree_cost(self) -> np.ndarray:
        """Spanning-tree weight of each edge: centroid distance (m) plus the street and virtual surcharges."""
        d = np.hypot(*(self.xy[self.edges[:, 0]] - self.xy[self.edges[:, 1]]).T) if len(self.edges) else \
            np.zeros(0)
        return d + STREET_COST_M * self.street + VIRTUAL_COST_M * self.virtual


@dataclass(frozen=True)
class MicroGrid:
    """One micro-grid: its buildings, polygon (metres), the previous group it continues (or None), whether it
    needs a street crossing or a jump between pieces of the grid to be connected."""

    buildings: tuple[Hashable, ...]
    polygon: Geometry
    kept: Hashable | None = None
    crosses_street: bool = False
    jumps: bool = False


@dataclass(frozen=True)
class MicroGridPlan:
    groups: tuple[MicroGrid, ...]
    outside: tuple[Hashable, ...] = ()        # buildings with no footprint inside the container

    def sizes(self) -> list[int]:
        return [len(g.buildings) for g in self.groups]


def plan_micro_grids(container: Geometry, footprints: Mapping[Hashable, Geometry], streets: Iterable[Geometry] = (),
                     *, previous: Mapping[Hashable, Iterable[Hashable]] | None = None, tries: int = 16,
                     seed: int = 0, spacing_m: float = DEFAULT_SPACING_M) -> MicroGridPlan:
    """Group the buildings ``footprints`` (key → footprint, metres) of a grid ``container`` into micro-grids.

    Every footprint with some area inside the container is grouped (membership is the caller's decision, e.g.
    ``buildings.grid_id``); ``streets`` are lines (metres) that groups should not cross; ``previous`` maps the
    ids of existing micro-grids to their buildings, to keep unchanged groups stable. Deterministic for a seed.
    """
    tess = tessellate(container, footprints, spacing_m=spacing_m, min_share=0.0)
    if not tess.cells:
        return MicroGridPlan((), tuple(tess.excluded))
    attached = _attach(tess, footprints)
    graph = cell_graph(tess.cells, footprints, streets, attached=attached)
    labels, kept = stable_partition(graph, previous or {}, tries=tries, seed=seed)
    groups = []
    for label in np.unique(labels):
        nodes = np.flatnonzero(labels == label)
        keys = tuple(k for i in nodes for k in graph.keys[i])
        polygon = cellgraph.union([graph.cells[i] for i in nodes])
        crossing, jump = _crossings(graph, set(nodes.tolist()))
        groups.append(MicroGrid(keys, polygon, kept.get(int(label)), crossing, jump))
    return MicroGridPlan(tuple(groups), tuple(k for k in tess.excluded if k not in attached))


def _attach(tess, footprints) -> dict[Hashable, Hashable]:
    """Buildings the tessellation left out although they lie in the container (footprints wholly covered by
    other footprints: building parts, duplicates): each joins the building whose cell holds most of it."""
    loose = [k for k in tess.excluded if shapely.intersection(footprints[k], tess.container).area > 0]
    if not loose:
        return {}
    keys = list(tess.cells)
    host = majority_owner([footprints[k] for k in loose], [tess.cells[k] for k in keys])
    return {k: keys[h] for k, h in zip(loose, host) if h >= 0}


def cell_graph(cells: Mapping[Hashable, Geometry], footprints: Mapping[Hashable, Geometry],
               streets: Iterable[Geometry] = (), *, min_shared_m: float = 1e-3,
               attached: Mapping[Hashable, Hashable] | None = None) -> CellGraph:
    """The adjacency graph of ``cells`` (key → cell, metres); see :class:`CellGraph`. ``attached`` maps
    buildings without a cell of their own to the building whose node they join."""
    keys = list(cells)
    feet = np.array([footprints[k] for k in keys], dtype=object)
    roots = _overlap_groups(feet)
    node_keys, node_cells, node_feet = [], [], []
    for root in dict.fromkeys(roots.tolist()):
        members = np.flatnonzero(roots == root)
        node_keys.append(tuple(keys[i] for i in members))
        node_cells.append(cellgraph.union([cells[keys[i]] for i in members]))
        node_feet.append(cellgraph.union(list(feet[members])))
    node_cells_a = np.array(node_cells, dtype=object)
    a, b, shared = cellgraph.adjacency(node_cells_a, min_shared_m)
    xy = shapely.get_coordinates(shapely.centroid(np.array(node_feet, dtype=object)))
    street = _street_edges(np.array(node_feet, dtype=object), a, b, streets)
    edges = np.column_stack([a, b]).astype(np.int64) if len(a) else np.zeros((0, 2), dtype=np.int64)
    virtual = np.zeros(len(edges), dtype=bool)
    extra = cellgraph.join_components(node_cells_a, edges)
    if len(extra):
        edges = np.vstack([edges, extra])
        shared = np.r_[shared, np.zeros(len(extra))]
        street = np.r_[street, np.zeros(len(extra), dtype=bool)]
        virtual = np.r_[virtual, np.ones(len(extra), dtype=bool)]
    if attached:
        node_of = {k: i for i, keys in enumerate(node_keys) for k in keys}
        for key, host in attached.items():
            node_keys[node_of[host]] += (key,)
    weight = np.array([len(k) for k in node_keys], dtype=np.int64)
    return CellGraph(tuple(node_keys), tuple(node_cells), weight, xy, edges, shared, street, virtual)


def partition(graph: CellGraph, nodes: np.ndarray | None = None, *, tries: int = 16, seed: int = 0) -> np.ndarray:
    """Labels (0..k-1) of ``nodes`` (default: all) grouping them into connected groups; see the module docstring.

    ``nodes`` must induce a connected subgraph (virtual edges count). Returns one label per node of ``nodes``.
    """
    nodes = np.arange(graph.n) if nodes is None else np.asarray(nodes)
    if len(nodes) == 1:
        return np.zeros(1, dtype=np.int64)
    local = {int(v): i for i, v in enumerate(nodes)}
    keep = np.array([e[0] in local and e[1] in local for e in graph.edges.tolist()], dtype=bool)
    edges = np.array([[local[a], local[b]] for a, b in graph.edges[keep].tolist()], dtype=np.int64).reshape(-1, 2)
    base = graph.tree_cost()[keep]
    keep_cost = _STREET * graph.street[keep] + _VIRTUAL * graph.virtual[keep] + \
        np.hypot(*(graph.xy[graph.edges[keep, 0]] - graph.xy[graph.edges[keep, 1]]).T)
    weight, xy = graph.weight[nodes], graph.xy[nodes]
    rng = np.random.default_rng(seed)
    best, best_score = None, None
    for attempt in range(max(1, tries + 1)):
        sigma = 0.0 if attempt == 0 else (0.5 if attempt % 2 else 1.5)
        tree = cellgraph.spanning_tree(len(nodes), edges, base * rng.lognormal(0.0, sigma, len(base)))
        labels = _split_tree(len(nodes), edges[tree], keep_cost[tree], weight)
        score = _score(labels, weight, xy, edges, graph.street[keep], graph.virtual[keep])
        if best_score is None or score < best_score:
            best, best_score = labels, score
        if best_score[:4] == (0, _least_deviation(int(weight.sum())), 0, 0):
            break
    return _repair(best, weight, xy, edges, graph.street[keep], graph.virtual[keep])


def _least_deviation(n: int) -> int:
    return sum(abs(s - TARGET) for s in group_sizes(n))


def _repair(labels, weight, xy, edges, street, virtual, rounds: int = 60) -> np.ndarray:
    """Improve sizes by chains of single-building moves between neighbouring groups (each group on a chain
    gives one boundary node to the next and stays connected), accepted only when the score falls:

    * from a group above five to one below five (6 + 4 → 5 + 5);
    * dissolving a group below five into other groups below five, one chain per member (5·4 + 4·4 → 5·20).
    """
    labels = labels.copy()
    adjacency = cellgraph.neighbours(len(labels), edges)
    score = _score(labels, weight, xy, edges, street, virtual)
    least = _least_deviation(int(weight.sum()))
    blocked: set[tuple[int, int]] = set()
    for _ in range(rounds):
        size = _sizes(labels, weight)
        if score[1] <= least or not any(s < TARGET for s in size.values()):
            break
        trial = None
        if any(s > TARGET for s in size.values()):
            path = _chain(labels, weight, adjacency, [g for g, s in size.items() if s > TARGET],
                          lambda g, start, size=size: size[g] < TARGET, blocked)
            if path is not None:
                trial = _apply(labels, path)
        if trial is None:
            trial = _dissolve(labels, weight, adjacency, size, blocked)
        if trial is None:
            break
        new_score = _score(trial, weight, xy, edges, street, virtual)
        moved = set(np.flatnonzero(trial != labels).tolist())
        groups = {int(g) for g in trial[list(moved)]} | {int(g) for g in labels[list(moved)]}
        if new_score < score and all(_connected(set(np.flatnonzero(trial == g).tolist()), adjacency)
                                     for g in groups if (trial == g).any()):
            labels, score = trial, new_score
            blocked.clear()
        else:
            first = min(moved)
            blocked.add((first, int(trial[first])))
    return _relabel(labels)


def _sizes(labels, weight) -> dict[int, int]:
    return {int(g): int(weight[labels == g].sum()) for g in np.unique(labels)}


def _apply(labels, path) -> np.ndarray:
    trial = labels.copy()
    for node, group in path:
        trial[node] = group
    return trial


def _relabel(labels) -> np.ndarray:
    _, dense = np.unique(labels, return_inverse=True)
    return dense.astype(np.int64)


def _dissolve(labels, weight, adjacency, size, blocked) -> np.ndarray | None:
    """Empty the smallest group below five that can be emptied: each of its nodes travels along a chain to
    another group below five (else below six). None if no group can."""
    for group in sorted((g for g, s in size.items() if s < TARGET), key=lambda g: size[g]):
        room = sum(HIGH - s for g, s in size.items() if g != group and s < HIGH)
        if room < size[group]:
            continue
        trial, current = labels.copy(), dict(size)
        for _ in range(size[group]):
            path = None
            for limit in (TARGET, HIGH):
                path = _chain(trial, weight, adjacency, [group],
                              lambda g, start, current=current, limit=limit: g != start and current[g] < limit,
                              blocked, donor_may_split=True)
                if path is not None:
                    break
            if path is None:
                trial = None
                break
            current[group] -= 1
            current[path[-1][1]] += 1
            trial = _apply(trial, path)
        if trial is not None:
            return trial
    return None


def _chain(labels, weight, adjacency, starts, accept, blocked, donor_may_split: bool = False
           ) -> list[tuple[int, int]] | None:
    """Shortest chain of (node, new group) moves from one of ``starts`` to a group ``accept(g, start)`` takes
    (BFS on groups; a donor keeps its other nodes connected, unless ``donor_may_split`` for the first one)."""
    previous: dict[int, tuple[int, int] | None] = {g: None for g in starts}
    origin = {g: g for g in starts}
    queue = list(starts)
    while queue:
        group = queue.pop(0)
        members = set(np.flatnonzero(labels == group).tolist())
        received = {previous[group][1]} if previous[group] is not None else set()
        for node in sorted(members):
            free = donor_may_split and previous[group] is None
            if weight[node] != 1 or not (free or _connected((members | received) - {node}, adjacency)):
                continue
            for other in sorted({int(labels[w]) for w in adjacency[node]} - {group}):
                if other in previous or (node, other) in blocked:
                    continue
                previous[other] = (group, node)
                origin[other] = origin[group]
                if accept(other, origin[other]):
                    path, g = [], other
                    while previous[g] is not None:
                        src, moved = previous[g]
                        path.append((moved, g))
                        g = src
                    return path[::-1]
                queue.append(other)
    return None


def stable_partition(graph: CellGraph, previous: Mapping[Hashable, Iterable[Hashable]], *, tries: int = 16,
                     seed: int = 0) -> tuple[np.ndarray, dict[int, Hashable]]:
    """Labels of all nodes and, for labels that continue a previous group, that group's id."""
    node_of = {k: i for i, keys in enumerate(graph.keys) for k in keys}
    adjacency = cellgraph.neighbours(graph.n, graph.edges[~graph.virtual])
    kept: dict[Hashable, set[int]] = {}
    for gid, members in previous.items():
        members = list(members)
        nodes = {node_of.get(k) for k in members}
        if None in nodes or sum(len(graph.keys[i]) for i in nodes) != len(set(members)):
            continue
        if LOW <= len(set(members)) <= HIGH and _connected(nodes, adjacency):
            kept[gid] = nodes
    everything = cellgraph.neighbours(graph.n, graph.edges)
    while True:
        taken = set().union(*kept.values()) if kept else set()
        free = [v for v in range(graph.n) if v not in taken]
        pieces = cellgraph.pieces(free, everything)
        bad = [p for p in pieces if not _splittable(int(graph.weight[list(p)].sum()))]
        released = False
        for piece in bad:
            gid = _longest_border(graph, piece, kept)
            if gid is not None:
                del kept[gid]
                released = True
        if not released:
            break
    labels = np.full(graph.n, -1, dtype=np.int64)
    continued: dict[int, Hashable] = {}
    next_label = 0
    for gid, nodes in kept.items():
        labels[list(nodes)] = next_label
        continued[next_label] = gid
        next_label += 1
    for piece in pieces:
        nodes = np.array(sorted(piece))
        sub = partition(graph, nodes, tries=tries, seed=seed)
        labels[nodes] = sub + next_label
        next_label += int(sub.max()) + 1
    return labels, continued


# --- graph building ----------------------------------------------------------------------------------------




def _overlap_groups(feet: np.ndarray) -> np.ndarray:
    """Union-find roots: footprints overlapping by more than 0.01 m² share a root (they must not be split)."""
    roots = np.arange(len(feet))
    if len(feet) < 2:
        return roots
    a, b = shapely.STRtree(feet).query(feet, predicate="intersects")
    k = a < b
    a, b = a[k], b[k]
    overlap = shapely.area(shapely.intersection(feet[a], feet[b])) > 0.01
    for x, y in zip(a[overlap].tolist(), b[overlap].tolist()):
        rx, ry = cellgraph.find(roots, x), cellgraph.find(roots, y)
        if rx != ry:
            roots[max(rx, ry)] = min(rx, ry)
    return np.array([cellgraph.find(roots, i) for i in range(len(feet))])






def _street_edges(feet: np.ndarray, a, b, streets) -> np.ndarray:
    """True where the shortest line between the two footprints crosses a street line."""
    streets = np.array([s for s in streets if s is not None and not s.is_empty], dtype=object)
    if not len(a) or not len(streets):
        return np.zeros(len(a), dtype=bool)
    links = shapely.shortest_line(feet[a], feet[b])
    hit = np.zeros(len(a), dtype=bool)
    link_index, _ = shapely.STRtree(streets).query(links, predicate="intersects")
    hit[link_index] = True
    return hit


def _connected(nodes: set[int], adjacency: list[set[int]]) -> bool:
    return len(cellgraph.pieces(sorted(nodes), adjacency)) == 1


def _splittable(weight: int) -> bool:
    """Whether ``weight`` buildings split into groups of 4–6."""
    return LOW <= weight <= HIGH or weight >= 2 * LOW


def _longest_border(graph: CellGraph, piece: set[int], kept: dict[Hashable, set[int]]) -> Hashable | None:
    border: dict[Hashable, float] = {}
    owner = {v: gid for gid, nodes in kept.items() for v in nodes}
    for (a, b), s in zip(graph.edges.tolist(), graph.shared_m.tolist()):
        for x, y in ((a, b), (b, a)):
            if x in piece and y in owner:
                border[owner[y]] = border.get(owner[y], 0.0) + s + 1e-9
    return max(border, key=border.get) if border else None


def _crossings(graph: CellGraph, nodes: set[int]) -> tuple[bool, bool]:
    """(crosses a street, jumps between pieces): whether the group is connected only thanks to street edges,
    or only thanks to virtual edges."""
    plain = [set() for _ in range(graph.n)]
    real = [set() for _ in range(graph.n)]
    for (a, b), s, v in zip(graph.edges.tolist(), graph.street.tolist(), graph.virtual.tolist()):
        if not v:
            real[a].add(b)
            real[b].add(a)
            if not s:
                plain[a].add(b)
                plain[b].add(a)
    return not _connected(nodes, plain), not _connected(nodes, real)


# --- spanning trees and their exact split ------------------------------------------------------------------




def _split_tree(n: int, edges: np.ndarray, keep_cost: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Optimal split of a tree into subtrees: dynamic programme over (node, weight of its open group).

    dp[v][s] = least cost of v's subtree when v's group, still open, weighs s so far. A child's group is
    either closed (edge cut: pay ``size_cost`` of its weight) or merged (edge kept: pay ``keep_cost``).
    """
    cap = max(HIGH, int(weight.max()))
    children: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    adjacency: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for e, (a, b) in enumerate(edges.tolist()):
        adjacency[a].append((b, e))
        adjacency[b].append((a, e))
    order, parent, stack = [], [-1] * n, [0]
    seen = [False] * n
    seen[0] = True
    while stack:
        v = stack.pop()
        order.append(v)
        for w, e in adjacency[v]:
            if not seen[w]:
                seen[w] = True
                parent[w] = v
                children[v].append((w, e))
                stack.append(w)
    inf = float("inf")
    closing = [size_cost(s) for s in range(cap + 1)]
    dp: list[list[float]] = [[]] * n
    close: list[tuple[float, int]] = [(inf, 0)] * n
    choice: list[list[list[tuple[bool, int, int]]]] = [[] for _ in range(n)]
    for v in reversed(order):
        cur = [inf] * (cap + 1)
        cur[int(weight[v])] = 0.0
        steps = []
        for w, e in children[v]:
            new = [inf] * (cap + 1)
            back: list[tuple[bool, int, int]] = [(False, 0, 0)] * (cap + 1)
            child, (child_close, _) = dp[w], close[w]
            for s1 in range(cap + 1):
                if cur[s1] == inf:
                    continue
                cut = cur[s1] + child_close
                if cut < new[s1]:
                    new[s1], back[s1] = cut, (True, s1, 0)
                for s2 in range(1, cap + 1 - s1):
                    if child[s2] == inf:
                        continue
                    merged = cur[s1] + child[s2] + keep_cost[e]
                    if merged < new[s1 + s2]:
                        new[s1 + s2], back[s1 + s2] = merged, (False, s1, s2)
            cur = new
            steps.append(back)
        dp[v], choice[v] = cur, steps
        totals = [cur[s] + closing[s] for s in range(cap + 1)]
        best = int(np.argmin(totals))
        close[v] = (totals[best], best)
    labels = np.full(n, -1, dtype=np.int64)
    next_label = 0
    todo = [(0, close[0][1], 0)]                  # (node, weight of its open group, label)
    while todo:
        v, s, label = todo.pop()
        labels[v] = label
        for (w, _), back in zip(reversed(children[v]), reversed(choice[v])):
            was_cut, s1, s2 = back[s]
            if was_cut:
                next_label += 1
                todo.append((w, close[w][1], next_label))
            else:
                todo.append((w, s2, label))
            s = s1
    return labels


def _score(labels, weight, xy, edges, street, virtual) -> tuple[float, float, int, int, float]:
    """(invalid sizes, Σ|size − 5|, jumps, street crossings, moment of inertia m²) of a labelling; lower is
    better."""
    invalid = deviation = inertia = 0.0
    for label in np.unique(labels):
        members = labels == label
        size = int(weight[members].sum())
        cost = size_cost(size)
        invalid += cost // _INVALID
        deviation += abs(size - TARGET)
        centre = np.average(xy[members], axis=0, weights=weight[members])
        inertia += float((weight[members] * ((xy[members] - centre) ** 2).sum(axis=1)).sum())
    inside = labels[edges[:, 0]] == labels[edges[:, 1]] if len(edges) else np.zeros(0, dtype=bool)
    crossings = _needed(labels, edges, inside & ~street & ~virtual, inside & ~virtual)
    jumps = _needed(labels, edges, inside & ~virtual, inside)
    return invalid, deviation, jumps, crossings, inertia


def _needed(labels, edges, cheap, dear) -> int:
    """How many extra components the groups have with ``cheap`` edges only, compared with ``dear`` edges."""
    def count(mask):
        parent = np.arange(len(labels))
        for a, b in edges[mask].tolist():
            ra, rb = cellgraph.find(parent, a), cellgraph.find(parent, b)
            if ra != rb:
                parent[ra] = rb
        return len({cellgraph.find(parent, i) for i in range(len(labels))})
    return count(cheap) - count(dear)
