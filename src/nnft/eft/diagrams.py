"""Feynman diagrams of an O(m)-invariant multi-sample theory with vertices (z·z)^k: Wick contractions, merged.

The theory (CONVENTIONS.md, Effective action): fields ``z_{i;α}`` (neuron i = 1..m, sample α), free part
``½ γ2^{αβ} z_α·z_β`` (propagator ``⟨z_{i;α} z_{j;β}⟩_0 = δ_ij G_{αβ}``, ``G = γ2^{-1}``) and interactions
``−c_k γ_{2k}^{(α1α2)…(α_{2k-1}α_{2k})} (z_{α1}·z_{α2})…(z_{α_{2k-1}}·z_{α_{2k}})`` with ``c_k = 1/(k! 2^k)``
(``c_2 = ⅛``: the quartic term of CONVENTIONS.md; ``c_3 = 1/48`` for the sextic one). A vertex of type k has k
*dot pairs* ``(z_{α}·z_{β}) = Σ_i z_{i;α} z_{i;β}`` of two slots each; a diagram is a perfect matching (Wick
pairing) of the slots of its vertices and of the external points.

Weights. Expanding ``e^{−S_int}`` gives ``Π_k (c_k γ_{2k})^{n_k}/n_k!`` per set of vertices; the pairings that
give isomorphic graphs (external points fixed) are merged, and their number is
``Π_k n_k! (k! 2^k)^{n_k} / |Aut|`` (orbit–stabiliser: vertices, dot pairs within a vertex and slots within a dot
pair permuted), so a diagram's weight is ``Π_k γ_{2k}^{n_k} / |Aut|`` — ``symmetry_factor = |Aut|``, computed
from the graph's automorphisms (networkx) and checked against a brute-force count of pairings in the tests.

Neuron indices. Each dot pair ties its two slots to one neuron index and a propagator identifies the indices at
its ends, so the propagator lines form *strands*: open strands join two external points (a Kronecker δ of their
neurons) and closed strands are index loops, each a factor m (``index_loops``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import networkx as nx
import sympy as sp

from nnft.errors import InputError

#: Sample-index letters of external points in expressions (α, β, γ, … in LaTeX).
EXTERNAL_LETTERS = "abcdefgh"
_GREEK = {"a": r"\alpha", "b": r"\beta", "c": r"\gamma", "d": r"\delta", "e": r"\epsilon", "f": r"\zeta",
          "g": r"\eta", "h": r"\theta"}

m = sp.Symbol("m", positive=True, integer=True)
G = sp.IndexedBase("G")
gamma = {2: sp.IndexedBase(r"\gamma_4"), 3: sp.IndexedBase(r"\gamma_6")}
#: Scalar symbols for one sample (the zero-dimensional theory): propagator g, couplings γ4, γ6.
g0 = sp.Symbol("g", positive=True)
coupling = {2: sp.Symbol(r"\gamma_4", real=True), 3: sp.Symbol(r"\gamma_6", real=True)}


@dataclass(frozen=True)
class Diagram:
    """One isomorphism class of Wick contractions (external points labelled 0..E−1, fixed).

    ``vertices`` are the vertex types (k = dot pairs per vertex, sorted), ``pairing`` the propagators as pairs of
    slots: an external slot is ``("x", e)``, a vertex slot ``("s", v, p, t)`` (vertex v, dot pair p, slot t).
    ``multiplicity`` is the number of Wick pairings of the labelled slots merged into this class.
    """

    externals: int
    vertices: tuple[int, ...]
    pairing: tuple[tuple[tuple, tuple], ...]
    symmetry_factor: int
    multiplicity: int
    graph: nx.Graph = field(repr=False, compare=False)

    # ------------------------------------------------------------------ structure
    @property
    def order(self) -> dict[int, int]:
        """Vertex counts by type k: ``{2: n_4, 3: n_6}``."""
        return {k: self.vertices.count(k) for k in sorted(set(self.vertices))}

    def _strands(self) -> tuple[int, tuple[tuple[int, int], ...]]:
        S = nx.Graph()
        for a, b in self.pairing:
            S.add_edge(_owner(a), _owner(b), key=(a, b))
        for e in range(self.externals):
            S.add_node(("x", e))
        for v, k in enumerate(self.vertices):
            for p in range(k):
                S.add_node(("d", v, p))
        loops, deltas = 0, []
        for comp in nx.connected_components(S):
            ext = sorted(n[1] for n in comp if n[0] == "x")
            if not ext:
                loops += 1
            else:
                deltas.append(tuple(ext))
        return loops, tuple(sorted(deltas))

    @property
    def index_loops(self) -> int:
        """Closed neuron-index loops (each a factor m)."""
        return self._strands()[0]

    @property
    def neuron_pattern(self) -> tuple[tuple[int, int], ...]:
        """The Kronecker-δ structure of the external neurons, e.g. ``((0, 1), (2, 3))`` for δ_{i0i1}δ_{i2i3}."""
        return self._strands()[1]

    @property
    def connected(self) -> bool:
        return nx.is_connected(self.graph)

    @property
    def weight(self) -> sp.Expr:
        """``m^{loops} Π γ_{2k}^{n_k} / |Aut|`` — the diagram's coefficient for one sample (scalars)."""
        w = sp.Integer(1) / self.symmetry_factor * m**self.index_loops
        for k, c in self.order.items():
            w *= coupling[k] ** c
        return w

    # ------------------------------------------------------------------ expressions
    def letters(self) -> dict[tuple, str]:
        """A sample-index name per slot: externals ``a, b, …``; vertex slots ``s0, s1, …``."""
        out = {("x", e): EXTERNAL_LETTERS[e] for e in range(self.externals)}
        i = 0
        for v, k in enumerate(self.vertices):
            for p in range(k):
                for t in range(2):
                    out[("s", v, p, t)] = f"s{i}"
                    i += 1
        return out

    def einsum(self) -> tuple[str, list[tuple[str, int]]]:
        """``(spec, operands)`` for ``numpy.einsum``: operands ``("G", -)`` or ``("gamma", k)``; output: externals.

        The propagator between two slots contributes ``G[slot1, slot2]``; a vertex ``γ_{2k}[slots of its dot
        pairs in order]``; the externals' indices are the output, in order.
        """
        lab = self.letters()
        letters = iter("ijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        sym = {}
        for key in lab:
            if key[0] == "x":
                sym[key] = EXTERNAL_LETTERS[key[1]]
        for key in lab:
            if key[0] == "s":
                sym[key] = next(letters)
        terms, ops = [], []
        for a, b in self.pairing:
            terms.append(sym[a] + sym[b])
            ops.append(("G", 0))
        for v, k in enumerate(self.vertices):
            terms.append("".join(sym[("s", v, p, t)] for p in range(k) for t in range(2)))
            ops.append(("gamma", k))
        out = "".join(EXTERNAL_LETTERS[e] for e in range(self.externals))
        return ",".join(terms) + "->" + out, ops

    def expression(self) -> sp.Expr:
        """The diagram with explicit sample-index sums (sympy ``Sum`` over the vertex indices)."""
        lab = self.letters()
        idx = {key: sp.Symbol(name if key[0] == "s" else _GREEK[name]) for key, name in lab.items()}
        body = sp.Integer(1) / self.symmetry_factor * m**self.index_loops
        for a, b in self.pairing:
            body *= G[idx[a], idx[b]]
        for v, k in enumerate(self.vertices):
            body *= gamma[k][tuple(idx[("s", v, p, t)] for p in range(k) for t in range(2))]
        internal = [idx[key] for key in lab if key[0] == "s"]
        P = sp.Symbol("P", positive=True, integer=True)
        for s in internal:
            body = sp.Sum(body, (s, 1, P))
        return body

    def scalar(self) -> sp.Expr:
        """The value for one sample: ``weight × g^{#propagators}``."""
        return self.weight * g0 ** len(self.pairing)

    def latex(self) -> str:
        """LaTeX of the diagram's term: weight, neuron δ's and the contraction with summed sample indices."""
        lab = self.letters()
        tex = {key: (_GREEK[name] if key[0] == "x" else rf"\beta_{{{name[1:]}}}") for key, name in lab.items()}
        w = sp.latex(sp.Integer(1) / self.symmetry_factor * m**self.index_loops)
        deltas = "".join(rf"\delta_{{i_{a} i_{b}}}" for a, b in self.neuron_pattern if True) if self.externals else ""
        props = " ".join(rf"G_{{{tex[a]}{tex[b]}}}" for a, b in self.pairing)
        verts = " ".join(
            rf"\gamma_{{{2 * k}}}^{{" + "".join("(" + tex[("s", v, p, 0)] + tex[("s", v, p, 1)] + ")" for p in range(k))
            + "}" for v, k in enumerate(self.vertices))
        return f"{w}\\, {deltas} {verts} {props}".strip()

    def draw(self, ax=None):
        """Draw the diagram with matplotlib: external points (squares), dot pairs (dots), vertices (dashed)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(3, 3))
        H = nx.MultiGraph()
        for e in range(self.externals):
            H.add_node(("x", e))
        for v, k in enumerate(self.vertices):
            for p in range(k):
                H.add_node(("d", v, p))
        for a, b in self.pairing:
            H.add_edge(_owner(a), _owner(b))
        pos = nx.kamada_kawai_layout(nx.Graph(H)) if H.number_of_nodes() > 2 else nx.circular_layout(H)
        for (u, w, _key) in H.edges(keys=True):
            (x0, y0), (x1, y1) = pos[u], pos[w]
            if u == w:
                ax.add_patch(plt.Circle((x0, y0 + 0.12), 0.12, fill=False, color="k"))
            else:
                ax.plot([x0, x1], [y0, y1], "k-", lw=1.2)
        for v, k in enumerate(self.vertices):
            pts = [pos[("d", v, p)] for p in range(k)]
            for (x0, y0), (x1, y1) in itertools.combinations(pts, 2):
                ax.plot([x0, x1], [y0, y1], "--", color="C3", lw=1.5)
        for n, (x, y) in pos.items():
            if n[0] == "x":
                ax.plot(x, y, "s", color="C0", ms=9)
                ax.annotate(_GREEK[EXTERNAL_LETTERS[n[1]]].replace("\\", ""), (x, y), textcoords="offset points",
                            xytext=(6, 6), fontsize=8)
            else:
                ax.plot(x, y, "o", color="C3", ms=7)
        ax.set_title(f"S = {self.symmetry_factor}, loops = {self.index_loops}", fontsize=8)
        ax.set_axis_off()
        ax.set_aspect("equal")
        return ax


def _owner(slot: tuple) -> tuple:
    """The strand node of a slot: the external point itself or the dot pair the slot belongs to."""
    return slot if slot[0] == "x" else ("d", slot[1], slot[2])


def _slots(externals: int, vertices: Sequence[int]) -> list[tuple]:
    out = [("x", e) for e in range(externals)]
    for v, k in enumerate(vertices):
        out += [("s", v, p, t) for p in range(k) for t in range(2)]
    return out


def _matchings(slots: list) -> Iterator[list[tuple]]:
    """Every perfect matching of ``slots`` (the lowest unmatched slot paired with each other one, recursively)."""
    if not slots:
        yield []
        return
    first, rest = slots[0], slots[1:]
    for i, other in enumerate(rest):
        for tail in _matchings(rest[:i] + rest[i + 1:]):
            yield [(first, other), *tail]


def _graph(externals: int, vertices: Sequence[int], pairing) -> nx.Graph:
    H = nx.Graph()
    for e in range(externals):
        H.add_node(("x", e), kind=f"x{e}")
    for v, k in enumerate(vertices):
        H.add_node(("v", v), kind=f"v{k}")
        for p in range(k):
            H.add_node(("d", v, p), kind="d")
            H.add_edge(("v", v), ("d", v, p), kind="in")
            for t in range(2):
                H.add_node(("s", v, p, t), kind="s")
                H.add_edge(("d", v, p), ("s", v, p, t), kind="in")
    for a, b in pairing:
        H.add_edge(a, b, kind="prop")
    return H


def _match(a, b) -> bool:
    return a["kind"] == b["kind"]


def automorphisms(H: nx.Graph) -> int:
    """|Aut| of a diagram graph with its external points fixed (their node kinds are distinct)."""
    gm = nx.algorithms.isomorphism.GraphMatcher(H, H, node_match=_match, edge_match=_match)
    return sum(1 for _ in gm.isomorphisms_iter())


def _vertex_group_order(vertices: Sequence[int]) -> int:
    out = 1
    for k in set(vertices):
        n = vertices.count(k)
        out *= sp.factorial(n) * (sp.factorial(k) * 2**k) ** n
    return int(out)


@lru_cache(maxsize=256)
def diagrams(externals: int, vertices: tuple[int, ...], kind: str = "connected") -> tuple[Diagram, ...]:
    """All distinct diagrams with ``externals`` points and the given vertex types (k per vertex), merged.

    ``kind``: ``"connected"`` (the graph is connected — connected correlators, or connected vacuum diagrams when
    ``externals = 0``), ``"all"``, or ``"vacuum"`` (no external points, any connectivity). Pairings are enumerated
    exhaustively (the lowest open slot first), merged by graph isomorphism (Weisfeiler–Lehman hash, then an exact
    isomorphism test within a hash class), and each class gets its automorphism count; the orbit–stabiliser
    relation ``multiplicity × |Aut| = Π n_k!(k!2^k)^{n_k}`` is asserted.
    """
    vertices = tuple(sorted(int(k) for k in vertices))
    if kind not in ("connected", "all", "vacuum"):
        raise InputError(f"kind must be 'connected', 'all' or 'vacuum', got {kind!r}")
    if kind == "vacuum" and externals:
        raise InputError("vacuum diagrams have no external points: pass externals=0")
    if any(k < 2 for k in vertices) or externals < 0 or externals > len(EXTERNAL_LETTERS):
        raise InputError(f"vertices are (z·z)^k with k ≥ 2 and at most {len(EXTERNAL_LETTERS)} external points")
    slots = _slots(externals, vertices)
    if len(slots) % 2:
        return ()
    if len(slots) > 12:
        raise InputError(f"{len(slots)} slots: exhaustive Wick enumeration is limited to 12 slots in this version "
                         "(the two- and four-point functions to second order in γ4, one sextic vertex); generation "
                         "by canonical augmentation for higher orders is not built yet")
    classes: dict[str, list[tuple[nx.Graph, list, int]]] = {}
    for pairing in _matchings(slots):
        H = _graph(externals, vertices, pairing)
        if kind == "connected" and not nx.is_connected(H):
            continue
        h = nx.weisfeiler_lehman_graph_hash(H, node_attr="kind", edge_attr="kind", iterations=4)
        bucket = classes.setdefault(h, [])
        for entry in bucket:
            if nx.is_isomorphic(entry[0], H, node_match=_match, edge_match=_match):
                entry[2] += 1
                break
        else:
            bucket.append([H, pairing, 1])
    order = _vertex_group_order(vertices)
    out = []
    for bucket in classes.values():
        for H, pairing, count in bucket:
            aut = automorphisms(H)
            if count * aut != order:
                raise AssertionError(f"orbit–stabiliser violated: {count} pairings × |Aut| {aut} ≠ {order}")
            out.append(Diagram(externals, vertices, tuple(pairing), aut, count, H))
    out.sort(key=lambda d: (d.neuron_pattern, d.index_loops, d.symmetry_factor, d.einsum()[0]))
    return tuple(out)


def vertex_sets(order: int, sextic: int = 0) -> list[tuple[int, ...]]:
    """Vertex multisets with ``order`` quartic and ``sextic`` sextic vertices."""
    return [tuple([2] * order + [3] * sextic)]


__all__ = ["Diagram", "EXTERNAL_LETTERS", "automorphisms", "coupling", "diagrams", "g0", "m", "vertex_sets"]
