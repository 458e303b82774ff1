"""Style `graph`: the network as graphviz DOT text, one node per layer.

    >>> import cnndsl
    >>> net = cnndsl.loads("input 32x32x3\\nCONV(8, 3, p=1) - RELU - GAP - FC(10)")
    >>> dot = to_dot(net.graph)
    >>> '"conv1" -> "relu1"' in dot, "3x3/1 p1, 8" in dot, "32x32x8" in dot
    (True, True, True)

Nodes show the op with its hyper-parameters (`layers.KINDS[op].describe`) and
the output volume; layers that keep their input's volume (activations, BN,
dropout) are drawn small and without it. Block instances and labelled groups
become clusters; folded repeats (see draw_fold) carry an `x N` badge. DOT is
written by hand, not with the graphviz package, so escaping is in one place
(`quote`, `html`) and this module imports nothing heavy.
"""
from __future__ import annotations

import bisect

from .fold import Fold
from ..ir import Graph, Node
from ..kinds import DRAW_GROUPS, KINDS, fmt_shape

# Colour groups, a legend entry each, in legend order: from each kind's `draw_group`.
def fill_colour(op) -> str:
    """The fill colour of a kind's nodes: its `draw_group`'s (read from the kind, so that a kind
    registered after import has one too)."""
    kind = KINDS.get(op)
    group = DRAW_GROUPS.get(kind.draw_group) if kind is not None else None
    return group[1] if group else "#ffffff"
FONT = "Helvetica"


def quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, line breaks as spaces."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\r", " ").replace("\n", " ") + '"'


def html(text: str) -> str:
    """Text for inside an HTML-like label (<...>): the XML specials escaped."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("\n", " "))


def _num(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def is_minor(node: Node) -> bool:
    """Layers drawn small and without a volume: their output is their input's volume."""
    k = KINDS[node.op]
    return k.elementwise and not k.join and node.op != "FLATTEN"


def node_label(node: Node, detail: str, last: Node | None = None) -> str:
    k = KINDS[node.op]
    desc = k.describe(node.attrs)
    desc = desc or (f"({k.symbol})" if k.join and k.symbol else "")  # a join: its operator in the spec
    head = f"<b>{html(node.op)}</b>" + (f" {html(desc)}" if desc else "")
    lines = []
    if detail == "high":
        lines.append(f'<font point-size="8" color="#555555">{html(node.name)}</font>')
    lines.append(head)
    if not is_minor(node):
        shape = fmt_shape(node.out_shape)
        if last is not None and last.out_shape != node.out_shape:   # folded, and it grows
            shape += f" … {fmt_shape(last.out_shape)}"
        lines.append(f'<font point-size="9" color="#333333">{html(shape)}</font>')
    if detail == "high":
        m = node.meta
        if m.get("params"):
            lines.append(f'<font point-size="8" color="#555555">{_num(m["params"])} params, {_num(m.get("macs", 0))} MACs</font>')
    return "<" + "<br/>".join(lines) + ">"


def node_tooltip(node: Node) -> str:
    m = node.meta
    desc = KINDS[node.op].describe(node.attrs)
    parts = [node.name, f"{node.op} {desc}".strip(), fmt_shape(node.out_shape)]
    if "params" in m:
        parts.append(f"{m['params']:,} params, {m.get('macs', 0):,} MACs")
    return " | ".join(parts)


def _node_line(node: Node, detail: str, indent: str, last: Node | None = None) -> str:
    attrs = [f"label={node_label(node, detail, last)}", f"fillcolor={quote(fill_colour(node.op))}",
             f"tooltip={quote(node_tooltip(node))}"]
    if is_minor(node):
        attrs.append('fontsize=9, height=0.24, margin="0.08,0.05"')
    return f"{indent}{quote(node.name)} [{', '.join(attrs)}]"


# ---- clusters ------------------------------------------------------------------
class _Cluster:
    def __init__(self, key, label, badge=""):
        self.key, self.label, self.badge = key, label, badge
        self.nodes: list[Node] = []
        self.children: list[_Cluster] = []

    def size(self) -> int:
        return len(self.nodes) + sum(c.size() for c in self.children)


def _clusters(fold: Fold) -> _Cluster:
    """The tree of clusters: block and label frames, and folded repeats (merged into a block when
    each iteration is exactly one block instance, so `bottleneck x3` is one frame, not two)."""
    root = _Cluster((), "")
    index: dict[tuple, _Cluster] = {(): root}
    for n in fold.nodes:
        parent = root
        frames = n.frames
        for d, f in enumerate(frames):
            key = frames[:d + 1]
            if f.kind == "repeat":
                if not fold.is_folded(n, d):
                    continue
                if n.implicit:
                    break   # made once, before the first iteration: not inside the `x N` frame
                rep = fold.repeats[(frames[:d], f.name)]
                if _repeat_is_one_frame(fold, rep):
                    continue   # the block frame inside carries the badge
                label, badge = "", f"x {f.count}"
            else:
                label, badge = (f.path.rsplit(".", 1)[-1] or f.name), ""
                if d and frames[d - 1].kind == "repeat" and fold.is_folded(n, d - 1):
                    rep = fold.repeats[(frames[:d - 1], frames[d - 1].name)]
                    if _repeat_is_one_frame(fold, rep):
                        # every iteration is one instance: name the block, not instance 1
                        label, badge = f.name, f"x {frames[d - 1].count}"
            c = index.get(key)
            if c is None:
                c = index[key] = _Cluster(key, label, badge)
                parent.children.append(c)
            parent = c
        parent.nodes.append(n)
    return root


def _repeat_is_one_frame(fold: Fold, rep) -> bool:
    graph = fold.graph
    inner = {graph[m].frames[rep.depth + 1] if len(graph[m].frames) > rep.depth + 1 else None
             for m in rep.members}
    return len(inner) == 1 and None not in inner and next(iter(inner)).kind != "repeat"


def _all_nodes(c: _Cluster) -> list:
    return c.nodes + [n for child in c.children for n in _all_nodes(child)]


def _worth_a_frame(c: _Cluster, consumers: dict) -> bool:
    """Frames that explain: repeats, and named parts of 4 layers or more that are not just one
    branch of a parallel section (an Inception column is read from its columns, not a frame)."""
    if c.badge:
        return True
    nodes = _all_nodes(c)
    if len(nodes) < (3 if c.children else 4):   # a VGG stage: a folded x N and its pool
        return False
    names = {n.name for n in nodes}
    if any(KINDS[n.op].join for n in nodes):
        return True
    exits = [m for n in nodes for m in consumers.get(n.name, ()) if m.name not in names]
    return not exits or not all(KINDS[m.op].join for m in exits)


def _emit_cluster(c: _Cluster, detail: str, out: list, counter: list, depth: int, consumers: dict, last: dict,
                  keep=None, shown=None):
    """A cluster's frame and nodes; with `keep` (one column of a wrapped graph) only its nodes in
    `keep`, and a frame already drawn in an earlier column (`shown`) is marked as continued."""
    indent = "  " * (depth + 1)
    if keep is not None and not any(n.name in keep for n in _all_nodes(c)):
        return
    if c.key and _worth_a_frame(c, consumers):
        counter[0] += 1
        out.append(f"{indent}subgraph cluster_{counter[0]} {{")
        label = c.label + (" (cont.)" if shown is not None and c.key in shown and c.label else "")
        if shown is not None:
            shown.add(c.key)
        title = f"<b>{html(label)}</b>" if label else ""
        if c.badge:
            title += (" " if title else "") + f'<font color="#b45f06"><b>{html(c.badge)}</b></font>'
        style = "rounded,dashed" if c.badge else "rounded"
        out.append(f'{indent}  label=<{title}>; style="{style}"; color="#999999"; '
                   f'fontsize=10; labelloc=t; labeljust=l; margin=6;')
        inner = indent + "  "
    else:
        inner, c = indent, c
    for n in c.nodes:
        if keep is None or n.name in keep:
            out.append(_node_line(n, detail, inner, last.get(n.name)))
    for child in c.children:
        _emit_cluster(child, detail, out, counter, depth + (1 if inner != indent else 0), consumers, last,
                      keep, shown)
    if inner != indent:
        out.append(f"{indent}}}")


# ---- the graph -------------------------------------------------------------------
def legend(ops) -> str:
    rows = []
    present = {KINDS[op].draw_group for op in ops if op in KINDS}
    for key, (name, fill) in DRAW_GROUPS.items():
        if key in present:
            rows.append(f'<td bgcolor="{fill}" border="1" width="14"> </td><td align="left">{html(name)}</td>')
    cells = "".join(rows)
    return (f'<<table border="0" cellspacing="3" cellpadding="2"><tr>{cells}</tr></table>>')


def to_dot(graph: Graph, rankdir: str | None = None, expand: bool = False, detail: str = "low",
           title: str = "net", starts: tuple = (), extra: str = "") -> str:
    """The DOT of `graph`. `starts`: indexes into the folded layers where a new column (TB) or row
    (LR) begins, so a long net wraps (see draw/slide.py); `extra`: graph attributes (size, dpi)."""
    fold = Fold(graph, expand=expand)
    rankdir = rankdir or "TB"
    out = [f"digraph {quote(title)} {{",
           f'  graph [rankdir={rankdir}, fontname="{FONT}", fontsize=10, nodesep=0.18, ranksep=0.22, '
           f'newrank=true, labelloc=b, labeljust=r, tooltip={quote(title)}{extra}]',
           f'  node [shape=box, style="rounded,filled", fontname="{FONT}", fontsize=10, height=0.3, '
           f'margin="0.1,0.06", penwidth=0.7]',
           '  edge [arrowsize=0.5, color="#666666", penwidth=0.8]',
           f'  label={legend({n.op for n in fold.nodes})}']
    input_line = (f'  "input" [label=<<b>input</b><br/><font point-size="9">{html(fmt_shape(graph.input_shape))}'
                  f'</font>>, fillcolor="#ffffff", tooltip={quote("input " + fmt_shape(graph.input_shape))}]')
    consumers: dict[str, list] = {}
    for a, b in fold.edges:
        consumers.setdefault(a, []).append(graph[b])
    column = {"input": 0, **{n.name: bisect.bisect_right(starts, i) for i, n in enumerate(fold.nodes)}}
    if not starts:
        out.append(input_line)
        _emit_cluster(_clusters(fold), detail, out, [0], 0, consumers, fold.last)
    else:
        out += _columns(fold, starts, column, input_line, detail, consumers)
    for a, b in fold.edges:
        # a shortcut: the branch point feeding a sum directly (the identity branch of a residual)
        skip = graph[b].op == "ADD" and len(consumers[a]) > 1
        attrs = ['color="#3c78d8", penwidth=1.3, tooltip="shortcut"'] if skip else []
        if column[a] != column[b]:   # from the end of one column to the top of the next
            ports = "tailport=s, headport=n" if rankdir == "TB" else "tailport=e, headport=w"
            attrs.append(f'constraint=false, style=dashed, {ports}')
        out.append(f"  {quote(a)} -> {quote(b)}" + (f" [{', '.join(attrs)}]" if attrs else ""))
    out += _branch_order(consumers, reverse=rankdir == "LR")
    if starts:   # the columns' heads on the first rank, in order
        heads = ["input"] + [fold.nodes[i].name for i in starts]
        out.append(_same_rank(heads[::-1] if rankdir == "LR" else heads))
    out.append("}")
    return "\n".join(out) + "\n"


def _columns(fold: Fold, starts, column: dict, input_line: str, detail: str, consumers: dict) -> list[str]:
    """One invisible cluster per column, each holding its part of the frames (split frames say
    `(cont.)`); the column's order comes from `_same_rank` on their heads."""
    out, counter, shown, root = [], [0], set(), _clusters(fold)
    for k in range(len(starts) + 1):
        out.append(f'  subgraph cluster_column{k} {{ label=""; style=invis; margin=4;')
        if k == 0:
            out.append("  " + input_line)
        keep = {name for name, col in column.items() if col == k}
        _emit_cluster(root, detail, out, counter, 1, consumers, fold.last, keep, shown)
        out.append("  }")
    return out


def _same_rank(names: list[str]) -> str:
    return f"  {{rank=same; {' -> '.join(quote(h) for h in names)} [style=invis]}}"


def _branch_order(consumers: dict, reverse: bool = False) -> list[str]:
    """Pin the heads of parallel branches left to right in source order (dot would otherwise
    order them by its crossing heuristics, often reversed): invisible edges within a rank.
    dot lays LR out as TB turned a quarter anticlockwise, so a rank's first node ends up at the
    bottom: `reverse` (for LR) chains them last to first, and the first branch reads at the top."""
    out = []
    for a, nodes in consumers.items():
        heads = [n.name for n in nodes if not KINDS[n.op].join]
        if reverse:
            heads.reverse()
        if len(heads) > 1:
            out.append(_same_rank(heads))
    return out
