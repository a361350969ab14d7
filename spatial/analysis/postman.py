"""Street-coverage patrols: walk every lane of an area at least once and come back, as short as possible.

This is the **undirected** Chinese postman problem (every lane may be walked in either direction), solved
exactly the classic way (Edmonds & Johnson 1973): the vertices of odd degree are paired by a minimum-weight
perfect matching on their shortest-path distances, the matched paths are walked twice, and an Euler circuit of
the result is the tour. pgRouting's ``pgr_chinesePostman`` solves the *directed* problem instead: a two-way
lane is two arcs to cover, so every lane is walked twice (+65% on a test grid); it is not used here.

Lanes to cover (``required``) may be a subset of the network; the other edges may be walked to get from one
lane to another (deadheading). Where the required lanes and the start are connected among themselves, the
answer is optimal (``optimal=True``); otherwise (a grid cut in two by a wall) joining the pieces is the rural
postman problem, NP-hard: pieces are joined along a minimum spanning tree of their shortest connections
(Frederickson's heuristic) and the answer says it is not proven optimal.

Pure Python on networkx (Dijkstra, Edmonds' blossom matching via ``min_weight_matching``, Hierholzer's Euler
circuit); lengths in metres; node and edge ids are whatever the caller uses (street_nodes / street_edges ids).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import networkx as nx

from spatial.errors import InvalidInput

MAX_REQUIRED_EDGES = 20_000
MAX_ODD_VERTICES = 1_500


@dataclass(frozen=True)
class Arc:
    """An undirected edge of the network: ``id`` (street edge), end nodes ``u``, ``v``, ``length`` metres."""

    id: Hashable
    u: Hashable
    v: Hashable
    length: float


@dataclass(frozen=True)
class PostmanTour:
    """The circuit as ``(edge id, from node, to node)`` in walking order, from ``start`` back to it.

    ``required_m``: the lanes to cover, once each; ``deadhead_m``: metres walked again or between lanes
    (``length_m = required_m + deadhead_m``); ``odd_vertices``: vertices paired by the matching; ``pieces``:
    connected pieces of the required lanes (with the start) before joining them.
    """

    walk: tuple[tuple[Hashable, Hashable, Hashable], ...]
    start: Hashable
    length_m: float
    required_m: float
    deadhead_m: float
    required_edges: int
    odd_vertices: int
    pieces: int
    optimal: bool
    method: str


def _network(edges: Sequence[Arc]) -> tuple[nx.Graph, dict]:
    """Simple graph for shortest paths: between two nodes keep the shortest edge (its id in ``best``)."""
    graph = nx.Graph()
    best: dict[frozenset, Arc] = {}
    for arc in edges:
        if not arc.length >= 0:
            raise InvalidInput(f"edge {arc.id} has no valid length")
        key = frozenset((arc.u, arc.v))
        if key not in best or arc.length < best[key].length:
            best[key] = arc
            graph.add_edge(arc.u, arc.v, weight=arc.length)
    return graph, best


def _add_path(multi: nx.MultiGraph, path: list, best: dict) -> float:
    """Add the network edges along ``path`` (a node list) to ``multi`` as walked-again copies; their metres."""
    total = 0.0
    for a, b in itertools.pairwise(path):
        arc = best[frozenset((a, b))]
        multi.add_edge(a, b, id=arc.id, length=arc.length, deadhead=True)
        total += arc.length
    return total


def postman_tour(edges: Sequence[Arc], required: set, *, start: Hashable | None = None) -> PostmanTour:
    """The shortest closed walk from ``start`` covering every edge whose id is in ``required``.

    ``edges``: the whole network the walker may use (required lanes and the streets around them); ``start``:
    a node of that network (default: a node of the first required edge). InvalidInput if nothing is required,
    the start is not in the network, or some required lane cannot be reached from the others.
    """
    arcs = [a for a in edges if a.id in required]
    if not arcs:
        raise InvalidInput("there are no lanes to patrol in this area")
    if len(arcs) > MAX_REQUIRED_EDGES:
        raise InvalidInput(f"more than {MAX_REQUIRED_EDGES} lanes to patrol; split the area")
    graph, best = _network(edges)
    start = arcs[0].u if start is None else start
    if start not in graph:
        raise InvalidInput("the start is not on the network")
    multi = nx.MultiGraph()
    multi.add_node(start)
    for arc in arcs:
        multi.add_edge(arc.u, arc.v, id=arc.id, length=arc.length, deadhead=False)
    required_m = sum(a.length for a in arcs)
    pieces = [set(c) for c in nx.connected_components(multi)]
    deadhead = _join_pieces(multi, graph, best, pieces)
    odd = [n for n, degree in multi.degree() if degree % 2]
    if len(odd) > MAX_ODD_VERTICES:
        raise InvalidInput(f"{len(odd)} lane ends to pair; split the area")
    deadhead += _pair_odd_vertices(multi, graph, best, odd)
    walk = tuple((data["id"], u, v) for u, v, _, data in
                 ((u, v, k, multi.edges[u, v, k]) for u, v, k in nx.eulerian_circuit(multi, source=start, keys=True)))
    method = "euler" if not odd and len(pieces) == 1 else "matching" if len(pieces) == 1 else "matching+joined"
    return PostmanTour(walk, start, required_m + deadhead, required_m, deadhead, len(arcs), len(odd), len(pieces),
                       len(pieces) == 1, method)


def _join_pieces(multi: nx.MultiGraph, graph: nx.Graph, best: dict, pieces: list[set]) -> float:
    """Connect the pieces along a minimum spanning tree of their shortest connections on the network."""
    if len(pieces) == 1:
        return 0.0
    links = nx.Graph()
    paths = {}
    for i, piece in enumerate(pieces):
        lengths, routes = nx.multi_source_dijkstra(graph, piece, weight="weight")
        for j in range(i + 1, len(pieces)):
            reached = [(lengths[n], n) for n in pieces[j] if n in lengths]
            if not reached:
                continue
            length, node = min(reached, key=lambda t: (t[0], str(t[1])))
            links.add_edge(i, j, weight=length)
            paths[(i, j)] = routes[node]
    links.add_nodes_from(range(len(pieces)))
    if not nx.is_connected(links):
        raise InvalidInput("some lanes of the area cannot be reached from the others on the network")
    total = 0.0
    for i, j in nx.minimum_spanning_edges(links, data=False):
        total += _add_path(multi, paths[(min(i, j), max(i, j))], best)
    return total


def _pair_odd_vertices(multi: nx.MultiGraph, graph: nx.Graph, best: dict, odd: list) -> float:
    """Minimum-weight perfect matching of the odd vertices on shortest-path metres; walk the matched paths."""
    if not odd:
        return 0.0
    complete = nx.Graph()
    paths = {}
    targets = set(odd)
    for a in odd:
        lengths, routes = nx.single_source_dijkstra(graph, a, weight="weight")
        for b in targets:
            if b != a and b in lengths and not complete.has_edge(a, b):
                complete.add_edge(a, b, weight=lengths[b])
                paths[(a, b)] = routes[b]
        targets.discard(a)
    matching = nx.min_weight_matching(complete, weight="weight")
    if 2 * len(matching) != len(odd):
        raise InvalidInput("some lane ends cannot be paired on the network (it is disconnected)")
    total = 0.0
    for a, b in matching:
        total += _add_path(multi, paths[(a, b)] if (a, b) in paths else paths[(b, a)][::-1], best)
    return total
