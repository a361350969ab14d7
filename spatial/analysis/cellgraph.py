"""Graphs of cells (tessellation cells, footprints) shared by the micro-grid and balanced-grid planners.

Nodes are integers 0..n-1; edges are ``(k, 2)`` integer arrays or pairs of index arrays. Geometries are Shapely
polygons in a metric CRS (lengths in metres).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import shapely
from shapely import Geometry


def union(polygons) -> Geometry:
    """The union of polygons that tile (coverage union, fast), falling back to a general union."""
    if len(polygons) == 1:
        return polygons[0]
    try:
        return shapely.coverage_union_all(polygons)
    except shapely.errors.GEOSException:
        return shapely.union_all(polygons)


def find(parent: np.ndarray, i: int) -> int:
    """Union-find root of ``i`` (with path halving)."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return int(i)


def adjacency(cells: np.ndarray, min_shared: float):
    """(a, b, shared length in metres) of cell pairs a < b sharing more than ``min_shared`` metres of border."""
    if len(cells) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0)
    a, b = shapely.STRtree(cells).query(cells, predicate="intersects")
    k = a < b
    a, b = a[k], b[k]
    shared = shapely.length(shapely.intersection(shapely.boundary(cells[a]), shapely.boundary(cells[b])))
    k = shared > min_shared
    return a[k], b[k], shared[k]


def neighbours(n: int, edges: np.ndarray) -> list[set[int]]:
    """Adjacency sets of ``n`` nodes from an edge array."""
    adjacency: list[set[int]] = [set() for _ in range(n)]
    for a, b in edges.tolist():
        adjacency[a].add(b)
        adjacency[b].add(a)
    return adjacency


def pieces(nodes: Iterable[int], adjacency: list[set[int]], grow: bool = False) -> list[set[int]]:
    """Connected pieces of the subgraph induced by ``nodes`` (with ``grow``, of the whole graph from them)."""
    allowed = None if grow else set(nodes)
    seen: set[int] = set()
    pieces = []
    for start in nodes:
        if start in seen:
            continue
        piece, stack = {start}, [start]
        while stack:
            v = stack.pop()
            for w in adjacency[v]:
                if w not in piece and (allowed is None or w in allowed):
                    piece.add(w)
                    stack.append(w)
        seen |= piece
        pieces.append(piece)
    return pieces


def spanning_tree(n: int, edges: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indexes of the edges of a minimum spanning tree (Kruskal); the graph must be connected."""
    parent = np.arange(n)
    chosen = []
    for e in np.argsort(cost, kind="stable").tolist():
        a, b = edges[e]
        ra, rb = find(parent, int(a)), find(parent, int(b))
        if ra != rb:
            parent[ra] = rb
            chosen.append(e)
            if len(chosen) == n - 1:
                break
    return np.array(chosen, dtype=np.int64)


def join_components(cells: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Virtual edges (``(k, 2)`` node pairs a < b) that make the graph of ``cells`` and ``edges`` connected,
    joining pieces that share no border: each time, the closest pair of cells (shortest distance) between the
    piece holding node 0 and the rest. Used by the micro-grid and balanced-grid planners."""
    n = len(cells)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    adjacency = neighbours(n, edges)
    extra = []
    while True:
        main = pieces([0], adjacency, grow=True)[0]
        if len(main) == n:
            break
        inside = np.array(sorted(main))
        outside = np.array([v for v in range(n) if v not in main])
        out_i, in_i = shapely.STRtree(cells[inside]).query_nearest(cells[outside], all_matches=False,
                                                                     return_distance=False)
        dist = shapely.distance(cells[outside[out_i]], cells[inside[in_i]])
        j = int(np.argmin(dist))
        a, b = int(inside[in_i[j]]), int(outside[out_i[j]])
        extra.append((min(a, b), max(a, b)))
        adjacency[a].add(b)
        adjacency[b].add(a)
    return np.array(extra, dtype=np.int64).reshape(-1, 2)
