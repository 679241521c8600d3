"""Discrete cells (genotypes): the type, named published cells, derivation and drawing.

A genotype lists, for every intermediate node of a normal and a reduction cell, its two
inputs as ``(operation, input_index)`` pairs (inputs 0 and 1 are the two previous cells'
outputs, 2.. the earlier nodes), and which nodes are concatenated into the cell's output.
The string form is the DARTS one, ``Genotype(normal=[('sep_conv_3x3', 0), ...],
normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[...])``, so genotypes printed by
DARTS-family code paste in unchanged; the JSON form is a plain object with the same keys.

Derivation (PC-DARTS rule, paper Sec. 3.1): the strength of an edge is beta_e * alpha_e^o
for its strongest non-zero op o; each node keeps its two strongest incoming edges, each
with that op.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch

from .operations import ALL_OPS, PRIMITIVES


class GenotypeError(ValueError):
    """A genotype string, file or object that does not describe a valid cell pair."""


Edge = tuple  # (op_name, input_index)


@dataclass(frozen=True)
class Genotype:
    normal: tuple
    normal_concat: tuple
    reduce: tuple
    reduce_concat: tuple
    name: str = field(default="", compare=False)

    def __post_init__(self):
        for attr in ("normal", "reduce"):
            object.__setattr__(self, attr, tuple((str(o), int(i)) for o, i in getattr(self, attr)))
        for attr in ("normal_concat", "reduce_concat"):
            object.__setattr__(self, attr, tuple(int(i) for i in getattr(self, attr)))
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        for kind, edges, concat in (("normal", self.normal, self.normal_concat), ("reduce", self.reduce, self.reduce_concat)):
            if not edges or len(edges) % 2:
                raise GenotypeError(f"{kind} cell needs two inputs per node, got {len(edges)} edges")
            n_nodes = len(edges) // 2
            for k, (op, inp) in enumerate(edges):
                node = k // 2
                if op not in ALL_OPS:
                    raise GenotypeError(f"{kind} cell, node {node}: unknown operation {op!r} (known: {', '.join(ALL_OPS)})")
                if not 0 <= inp < node + 2:
                    raise GenotypeError(f"{kind} cell, node {node}: input {inp} does not exist yet (valid: 0..{node + 1})")
            if not concat:
                raise GenotypeError(f"{kind} cell concatenates no node")
            for c in concat:
                if not 0 <= c < n_nodes + 2:
                    raise GenotypeError(f"{kind} cell: concat index {c} out of range 0..{n_nodes + 1}")

    @property
    def steps(self) -> int:
        return len(self.normal) // 2

    # ------------------------------------------------------------------ forms
    def to_dict(self) -> dict:
        return {
            "normal": [list(e) for e in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(e) for e in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def __str__(self) -> str:
        def edges(es):
            return "[" + ", ".join(f"('{o}', {i})" for o, i in es) + "]"

        return (f"Genotype(normal={edges(self.normal)}, normal_concat={list(self.normal_concat)}, "
                f"reduce={edges(self.reduce)}, reduce_concat={list(self.reduce_concat)})")

    @classmethod
    def from_dict(cls, d: dict, name: str = "") -> "Genotype":
        missing = {"normal", "normal_concat", "reduce", "reduce_concat"} - set(d)
        if missing:
            raise GenotypeError(f"genotype is missing {', '.join(sorted(missing))}")
        try:
            return cls(tuple(tuple(e) for e in d["normal"]), tuple(d["normal_concat"]),
                       tuple(tuple(e) for e in d["reduce"]), tuple(d["reduce_concat"]), name=name)
        except (TypeError, ValueError) as e:
            if isinstance(e, GenotypeError):
                raise
            raise GenotypeError(f"malformed genotype: {e}") from e

    @classmethod
    def from_string(cls, s: str, name: str = "") -> "Genotype":
        """Parse the DARTS repr (``range(2, 6)`` accepted) or the JSON form."""
        s = s.strip()
        if s.startswith("{"):
            try:
                return cls.from_dict(json.loads(s), name)
            except json.JSONDecodeError as e:
                raise GenotypeError(f"genotype JSON does not parse: {e}") from e
        m = re.fullmatch(r"Genotype\((.*)\)", s, flags=re.S)
        if not m:
            raise GenotypeError(f"not a genotype string (expected 'Genotype(normal=..., ...)' or JSON): {s[:80]!r}")
        body = re.sub(r"range\(\s*(\d+)\s*,\s*(\d+)\s*\)", lambda r: str(list(range(int(r[1]), int(r[2])))), m[1])
        try:
            call = ast.parse(f"f({body})", mode="eval").body
            d = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
        except (SyntaxError, ValueError) as e:
            raise GenotypeError(f"genotype string does not parse: {e}") from e
        return cls.from_dict(d, name)


def load_genotype(spec: str) -> Genotype:
    """A genotype from a registered name (``RACL``, ``DARTS_V2``...), a file (.json or a
    text file holding the string form) or the string itself."""
    from pathlib import Path

    if spec in GENOTYPES:
        return GENOTYPES[spec]
    if spec.upper() in GENOTYPES:
        return GENOTYPES[spec.upper()]
    if spec.strip().startswith(("Genotype(", "{")):  # before any path test: a long string is no file name
        return Genotype.from_string(spec)
    p = Path(spec)
    if p.suffix in (".json", ".txt") or p.exists():
        if not p.exists():
            raise GenotypeError(f"genotype file {spec} does not exist")
        try:
            text = p.read_text()
            if p.suffix == ".json":
                obj = json.loads(text)
                obj = obj.get("genotype", obj) if isinstance(obj, dict) else obj
                if not isinstance(obj, (dict, str)):
                    raise GenotypeError(f"expected a genotype object or string, got {type(obj).__name__}")
                return Genotype.from_dict(obj, name=p.stem) if isinstance(obj, dict) else Genotype.from_string(obj, name=p.stem)
            return Genotype.from_string(text, name=p.stem)
        except (OSError, UnicodeDecodeError, ValueError) as e:  # GenotypeError and JSONDecodeError are ValueErrors
            raise GenotypeError(f"genotype file {p}: {' '.join(str(e).split())}") from e
    if spec.strip().startswith(("Genotype(", "{")):
        return Genotype.from_string(spec)
    raise GenotypeError(f"unknown genotype {spec!r}: not a registered name ({', '.join(GENOTYPES)}), a file, or a genotype string")


def _g(name, normal, normal_concat, reduce, reduce_concat):
    return Genotype(tuple(normal), tuple(normal_concat), tuple(reduce), tuple(reduce_concat), name=name)


# Published cells, as transcribed in public DARTS-family code.
GENOTYPES: dict[str, Genotype] = {
    g.name: g
    for g in [
        _g("NASNet",
           [("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 0), ("avg_pool_3x3", 1),
            ("skip_connect", 0), ("avg_pool_3x3", 0), ("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 1)],
           [2, 3, 4, 5, 6],
           [("sep_conv_5x5", 1), ("sep_conv_7x7", 0), ("max_pool_3x3", 1), ("sep_conv_7x7", 0), ("avg_pool_3x3", 1),
            ("sep_conv_5x5", 0), ("skip_connect", 3), ("avg_pool_3x3", 2), ("sep_conv_3x3", 2), ("max_pool_3x3", 1)],
           [4, 5, 6]),
        _g("AmoebaNet",
           [("avg_pool_3x3", 0), ("max_pool_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 2), ("sep_conv_3x3", 0),
            ("avg_pool_3x3", 3), ("sep_conv_3x3", 1), ("skip_connect", 1), ("skip_connect", 0), ("avg_pool_3x3", 1)],
           [4, 5, 6],
           [("avg_pool_3x3", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 0), ("sep_conv_7x7", 2), ("sep_conv_7x7", 0),
            ("avg_pool_3x3", 1), ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("conv_7x1_1x7", 0), ("sep_conv_3x3", 5)],
           [3, 4, 6]),
        _g("DARTS_V1",
           [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1), ("skip_connect", 0),
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
           [2, 3, 4, 5],
           [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0), ("max_pool_3x3", 0),
            ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
           [2, 3, 4, 5]),
        _g("DARTS_V2",
           [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
           [2, 3, 4, 5],
           [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1), ("max_pool_3x3", 0),
            ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
           [2, 3, 4, 5]),
        _g("PC_DARTS",
           [("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1), ("sep_conv_5x5", 0),
            ("sep_conv_3x3", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1)],
           [2, 3, 4, 5],
           [("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_5x5", 2), ("sep_conv_3x3", 0),
            ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2)],
           [2, 3, 4, 5]),
        _g("ADVRUSH",
           [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1)],
           [2, 3, 4, 5],
           [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 0), ("dil_conv_3x3", 2), ("skip_connect", 0),
            ("avg_pool_3x3", 1), ("skip_connect", 0), ("skip_connect", 2)],
           [2, 3, 4, 5]),
        # The cell published with the RACL paper.
        _g("RACL",
           [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 1), ("sep_conv_3x3", 0),
            ("skip_connect", 3), ("sep_conv_3x3", 3), ("skip_connect", 4)],
           [2, 3, 4, 5],
           [("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1), ("sep_conv_3x3", 0),
            ("sep_conv_5x5", 1), ("sep_conv_3x3", 2), ("dil_conv_3x3", 3)],
           [2, 3, 4, 5]),
    ]
}
GENOTYPES["DARTS"] = GENOTYPES["DARTS_V2"]


# ---------------------------------------------------------------------- derivation
def parse_cell(weights: torch.Tensor, steps: int, primitives: Sequence[str] = PRIMITIVES) -> list:
    """Two strongest incoming edges per node, each with its strongest non-zero op.

    ``weights`` (E, O) already holds beta_e * alpha_e^o (the PC-DARTS edge-normalised
    weights). Ties break towards the lower index, deterministically."""
    W = weights.detach().cpu().double()
    none = primitives.index("none") if "none" in primitives else None
    if none is not None:
        W = W.clone()
        W[:, none] = -float("inf")
    gene, start = [], 0
    for i in range(steps):
        n = 2 + i
        block = W[start : start + n]
        strength = block.max(dim=1).values
        order = sorted(range(n), key=lambda j: (-strength[j].item(), j))[:2]
        for j in sorted(order):
            k = int(block[j].argmax())
            gene.append((primitives[k], j))
        start += n
    return gene


def derive(alpha: dict, beta: dict, steps: int, primitives: Sequence[str] = PRIMITIVES, multiplier: int = 4, name: str = "") -> Genotype:
    """Genotype from per-type ``alpha[t]`` (E, O) and ``beta[t]`` (E) values."""
    cells = {t: parse_cell(alpha[t] * beta[t].unsqueeze(-1), steps, primitives) for t in ("normal", "reduce")}
    concat = tuple(range(2 + steps - multiplier, steps + 2))
    return Genotype(tuple(cells["normal"]), concat, tuple(cells["reduce"]), concat, name=name)


def agreement(genotypes: Iterable[Genotype], reference: Genotype) -> dict:
    """How often sampled genotypes equal ``reference``: whole genotype, and per chosen
    (node, input, op) edge, averaged."""
    gs = list(genotypes)
    if not gs:
        raise ValueError("no genotypes to compare")
    same = sum(g == reference for g in gs) / len(gs)
    ref_edges = {t: set(enumerate_edges(getattr(reference, t))) for t in ("normal", "reduce")}
    per_edge = []
    for g in gs:
        for t in ("normal", "reduce"):
            e = set(enumerate_edges(getattr(g, t)))
            per_edge.append(len(e & ref_edges[t]) / len(ref_edges[t]))
    return {"genotype_agreement": same, "edge_agreement": sum(per_edge) / len(per_edge), "n": len(gs)}


def enumerate_edges(edges):
    return [(k // 2, inp, op) for k, (op, inp) in enumerate(edges)]


# ---------------------------------------------------------------------- drawing
def plot_cell(genotype: Genotype, cell: str = "normal", filename: str | None = None, fmt: str = "svg"):
    """A graphviz drawing of one cell in the style of the paper's Fig. 3 (needs ``dot``).

    Returns the :class:`graphviz.Digraph`; renders to ``filename``.``fmt`` when given."""
    import graphviz

    edges = getattr(genotype, cell)
    concat = getattr(genotype, f"{cell}_concat")
    g = graphviz.Digraph(
        format=fmt,
        edge_attr=dict(fontsize="12", fontname="helvetica"),
        node_attr=dict(style="filled", shape="rect", align="center", fontsize="14", height="0.5",
                       width="0.5", penwidth="2", fontname="helvetica"),
        engine="dot",
    )
    g.body.extend(["rankdir=LR"])
    g.node("c_{k-2}", fillcolor="darkseagreen2")
    g.node("c_{k-1}", fillcolor="darkseagreen2")
    n = len(edges) // 2
    for i in range(n):
        g.node(str(i), fillcolor="lightblue")
    for k, (op, j) in enumerate(edges):
        src = {0: "c_{k-2}", 1: "c_{k-1}"}.get(j, str(j - 2))
        g.edge(src, str(k // 2), label=op, fillcolor="gray")
    g.node("c_{k}", fillcolor="palegoldenrod")
    for c in concat:
        src = {0: "c_{k-2}", 1: "c_{k-1}"}.get(c, str(c - 2))
        g.edge(src, "c_{k}", fillcolor="gray")
    if filename:
        g.render(filename, view=False, cleanup=True)
    return g


#: short names of the operations in :func:`draw_cell`, and their colours: convolutions
#: (trainable parameters) red, pooling blue, the skip connection black
OP_SHORT = {"sep_conv_3x3": "sep 3x3", "sep_conv_5x5": "sep 5x5", "sep_conv_7x7": "sep 7x7", "dil_conv_3x3": "dil 3x3",
            "dil_conv_5x5": "dil 5x5", "conv_7x1_1x7": "conv 7x1/1x7", "max_pool_3x3": "max 3x3",
            "avg_pool_3x3": "avg 3x3", "skip_connect": "skip", "none": "zero"}


def op_colour(op: str) -> str:
    if op == "skip_connect":
        return "black"
    if op.endswith("pool_3x3"):
        return "tab:blue"
    return "tab:red" if op != "none" else "lightgray"


def draw_cell(ax, genotype: Genotype, cell: str = "normal"):
    """One cell drawn with matplotlib on ``ax`` (no graphviz needed), left to right like
    the paper's Figs. 3 and 5: the two cell inputs c_{k-2} and c_{k-1}, the intermediate
    nodes 0..n-1, each with its two incoming operations (convolutions red, pooling blue,
    skip connections black), and the output c_k concatenating ``<cell>_concat``."""
    if cell not in ("normal", "reduce"):
        raise ValueError(f"cell must be 'normal' or 'reduce', got {cell!r}")
    edges = getattr(genotype, cell)
    concat = getattr(genotype, f"{cell}_concat")
    n = len(edges) // 2
    pos = {0: (0.0, 1.3), 1: (0.0, -1.3)}
    for i in range(n):
        pos[i + 2] = (1.0 + i, 0.8 if i % 2 == 0 else -0.8)
    out = (n + 1.0, 0.0)
    for k, (op, j) in enumerate(edges):
        (x1, y1), (x2, y2) = pos[j], pos[k // 2 + 2]
        rad = (0.25 if k % 2 == 0 else -0.25) * (1 + 0.3 * max(0, k // 2 + 2 - j - 2))
        col = op_colour(op)
        ax.annotate("", xy=(x2, y2), xytext=(x1, y1),
                    arrowprops=dict(arrowstyle="-|>", color=col, lw=1.6, shrinkA=12, shrinkB=12,
                                    connectionstyle=f"arc3,rad={rad}"))
        # the label on the arc (matplotlib's arc3: a quadratic Bezier through the control
        # point below), nearer the node it enters, where the arcs into a node fan out
        cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
        t = 0.62
        mx = (1 - t) ** 2 * x1 + 2 * t * (1 - t) * cx + t ** 2 * x2
        my = (1 - t) ** 2 * y1 + 2 * t * (1 - t) * cy + t ** 2 * y2
        ax.text(mx, my, OP_SHORT.get(op, op), color=col, fontsize=7, ha="center", va="center",
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))
    for c in concat:
        ax.annotate("", xy=out, xytext=pos[c], arrowprops=dict(arrowstyle="-|>", color="gray", lw=0.8, shrinkA=12,
                                                                shrinkB=12, linestyle="--"))
    style = dict(ha="center", va="center", fontsize=9)
    for j, label in ((0, "c_{k-2}"), (1, "c_{k-1}")):
        ax.text(*pos[j], f"${label}$", bbox=dict(boxstyle="round", fc="#c1e1c1", ec="gray"), **style)
    for i in range(n):
        ax.text(*pos[i + 2], str(i), bbox=dict(boxstyle="round", fc="lightblue", ec="gray"), **style)
    ax.text(*out, "$c_{k}$", bbox=dict(boxstyle="round", fc="palegoldenrod", ec="gray"), **style)
    ax.set_xlim(-0.6, n + 1.6)
    ax.set_ylim(-2.2, 2.2)
    ax.axis("off")
    return ax
