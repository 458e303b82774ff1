"""Foreign state_dicts onto our modules: which of their modules is which of ours, whatever order
their keys come in.

    >>> import cnndsl.weights_map as M
    >>> ours = {"body.conv1.weight": (4, 3, 3, 3), "body.bn1.weight": (4,), "body.bn1.bias": (4,),
    ...         "skip.conv1.weight": (4, 3, 1, 1), "skip.bn1.weight": (4,), "skip.bn1.bias": (4,)}
    >>> theirs = {"proj.1.weight": (4,), "proj.1.bias": (4,), "proj.0.weight": (4, 3, 1, 1),
    ...           "conv.bn.weight": (4,), "conv.bn.bias": (4,), "conv.conv.weight": (4, 3, 3, 3)}
    >>> how = {}
    >>> pairs = M.match(theirs, ours, feeds={"body.bn1": "body.conv1", "skip.bn1": "skip.conv1"}, how=how)[0]
    >>> sorted((t, o) for t, (o, _) in pairs.items())
    [('conv.bn', 'body.bn1'), ('conv.conv', 'body.conv1'), ('proj.0', 'skip.conv1'), ('proj.1', 'skip.bn1')]
    >>> how["conv.bn"], how["proj.0"]
    ('structure', 'shape')

A state_dict's keys are grouped by module (`layer1.0.conv1.weight` -> module `layer1.0.conv1`,
signature: its tensor names and shapes). Our modules are taken in execution order; each takes,
among their unused modules of the same signature (or one of its kinds' foreign layouts,
kinds.Foreign), the one the evidence below singles out. Nothing depends on the order of their keys
(a `.safetensors` file keeps them sorted): what is read from their side is the set of (key, shape).
A module of theirs with the very path of one of ours, and a signature that one may have, is that
one's before any rule: no other of ours takes it (our `layer_c.conv`, which runs first and shares
the word `layer`, never takes their `layer.conv` from our `layer.conv`).

    shape      only one of their modules has this signature (of those not yet taken)
    position   the others come after it: in their paths, Sequential indices (`features.3` before
               `features.10`) and names that differ only in one number or a trailing letter
               (`conv1` < `conv2`, `layer1` < `layer4`, `Mixed_6c` < `Mixed_6d`, `c1x1_a` < `c1x1_c`)
               are in forward order; other names (`conv_kxk`, `identity`, `downsample`; `c1x1_c`
               and `c3x3_b`, which differ in two) are not
    structure  a normalisation (1-D tensors only) follows its conv: theirs are paired by name
               (`x.conv`/`x.bn`, `conv1`/`bn1`, a Sequential's conv and the normalisation after it),
               ours by the graph (`feeds`: the layer with tensors whose output it reads); the one
               whose conv is the match of the conv ours reads wins. Only as evidence for, never
               against: in a pre-activation block (DPN's `c3x3_b.bn` normalises `c3x3_b.conv`'s
               input) the pair is the other way round, but that BN is placed before its conv is.
               Then: the most modules of our module's group already placed in the candidate's
               group (our `stem.conv2` goes where `stem.conv1` went: `conv1.3`, not `layer2.0.conv2`)
    name       the most components of our path found in theirs (`dense` in `z_dense`, `layer1`), then
               the very same path (our `bn1` is their `bn1`, not `layer1.0.bn1`), then a shortcut
               word (`downsample`, `proj`, ...) on both sides or on neither
    explicit   given (`mapping={their prefix: our prefix}`: the modules under it by relative path)

Where candidates remain that none of these tells apart, the mapping refuses (CnnError naming them)
instead of picking one: label the layer with the checkpoint's name, or pass `mapping`. `how`
collects {their module: the rule that placed it} (the load report's `matched_by`).
"""
from __future__ import annotations

import re

from .errors import CnnError

COUNTER = "num_batches_tracked"  # BN's step counter: loaded when both sides have it, never reported
SHORTCUT_WORDS = frozenset({"downsample", "shortcut", "proj", "projection", "skip"})
BARE = ""  # the leaf of a bare parameter (kinds.Foreign.bare): its whole key names it
NORM_STEM = re.compile(r"(?:bn|norm|batchnorm|ln|gn)(.*)")  # `bn1` is `conv1`'s, `bn_dw` is `conv_dw`'s
NORM_LEAVES = frozenset({"weight", "bias", "running_mean", "running_var"})


def shape_of(v) -> tuple:
    return tuple(v.shape) if hasattr(v, "shape") else tuple(v)


# ---- modules --------------------------------------------------------------------------------------
def split(sd: dict, bare: bool = False) -> dict[str, tuple[str, str]]:
    """{key: (module prefix, tensor name)}. With `bare`, a parameter of a module that also has
    submodules (torchvision's CNBlock.layer_scale beside CNBlock.block) is a module of its own
    whose tensor has no name: (its whole key, BARE), as kinds.Foreign(bare=True) describes it."""
    parts = {k: k.rpartition(".") for k in sd}
    containers = set()
    if bare:
        for prefix, _, _ in parts.values():
            while prefix:
                prefix = prefix.rpartition(".")[0]
                if prefix in containers:
                    break
                containers.add(prefix)
    return {k: (k, BARE) if bare and p in containers else (p, leaf) for k, (p, _, leaf) in parts.items()}


def modules(sd: dict, bare: bool = False) -> list[tuple[str, tuple]]:
    """[(module prefix, signature)] in key order; signature = ((tensor name, shape), ...)."""
    groups: dict[str, list] = {}
    for key, (prefix, leaf) in split(sd, bare).items():
        groups.setdefault(prefix, []).append((leaf, shape_of(sd[key])))
    return [(p, tuple(sorted(sig))) for p, sig in groups.items()]


def _forms(prefix: str, sig: tuple, layouts: dict) -> list[tuple[tuple, dict]]:
    """The signatures a foreign module of ours may have, ours first, each with {its tensor name:
    ours}: every tensor as it is, or in one of its kinds' foreign layouts."""
    forms = [((), {})]
    for leaf, shape in sig:
        key = f"{prefix}.{leaf}" if prefix else leaf
        options = [(leaf, shape)] + [(BARE if f.bare else f.name or leaf, tuple(f.shape)) for f in layouts.get(key, ())]
        forms = [(s + ((name, shp),), {**names, name: leaf}) for s, names in forms for name, shp in options
                 if name not in names]
    return [(tuple(sorted(s)), names) for s, names in forms]


def is_norm(sig) -> bool:
    return all(len(s) == 1 for _, s in sig) and {n for n, _ in sig} <= NORM_LEAVES


def is_conv(sig) -> bool:
    return any(n in ("weight", BARE) and len(s) >= 2 for n, s in sig)


def _order_key(component: str) -> tuple:
    """(skeleton, values): digit runs become `#` and a trailing letter after a digit or `_` becomes
    `@`; two components are in order when their skeletons are equal and their values differ in
    one place (`_before`)."""
    values = []

    def number(m):
        values.append(int(m.group()))
        return "#"
    skeleton = re.sub(r"\d+", number, component)
    m = re.search(r"(?<=[#_])[A-Za-z]$", skeleton)
    if m:
        values.append(m.group().lower())
        skeleton = skeleton[:-1] + "@"
    return (skeleton, tuple(values))


def _before(a: tuple, b: tuple) -> bool:
    """Whether a component with values `a` comes before one with `b` (the same skeleton): they
    differ in one value only, and a's is the less (`c1x1_a` < `c1x1_c`, `conv2_1` < `conv3_1`; not
    `c1x1_c` < `c3x3_b`, whose numbers are kernel sizes)."""
    differ = [(x, y) for x, y in zip(a, b) if x != y]
    return len(differ) == 1 and differ[0][0] < differ[0][1]


def _words(component: str) -> frozenset:
    return frozenset(w for w in component.lower().split("_") if w)


class Theirs:
    """Their modules, in an order that is a function of their names only, with what is read from
    the names: the order of their paths, each normalisation's conv, the words of each path."""

    def __init__(self, sd: dict, bare: bool):
        mods = modules(sd, bare)
        keys = {p: tuple(_order_key(c) for c in p.split(".")) if p else () for p, _ in mods}
        self.mods = sorted(mods, key=lambda m: (keys[m[0]], m[0]))
        self.keys = [keys[p] for p, _ in self.mods]
        self.index = {p: i for i, (p, _) in enumerate(self.mods)}
        self.by_sig: dict[tuple, list[int]] = {}
        for i, (_, sig) in enumerate(self.mods):
            self.by_sig.setdefault(sig, []).append(i)
        self.words = [[_words(c) for c in p.split(".") if not c.isdigit()] for p, _ in self.mods]
        self.partner = self._partners()

    def _partners(self) -> dict[int, int]:
        """{normalisation: its conv}, paired by name: `x.conv`/`x.bn`, `conv1`/`bn1`, `conv_dw`/`bn_dw`,
        or a Sequential's conv (`downsample.0`) and the normalisation after it (`downsample.1`)."""
        containers = {p.rpartition(".")[0] for p, _ in self.mods}
        out = {}
        for i, (prefix, sig) in enumerate(self.mods):
            if not is_norm(sig):
                continue
            parent, dot, leaf = prefix.rpartition(".")
            conv = None
            if leaf.isdigit():  # the nearest module before it in its Sequential, if a conv
                for j in range(int(leaf) - 1, -1, -1):
                    sibling = f"{parent}{dot}{j}"
                    if sibling in self.index or sibling in containers:
                        conv = sibling
                        break
            elif m := NORM_STEM.fullmatch(leaf):
                conv = f"{parent}{dot}conv{m.group(1)}"
            j = self.index.get(conv)
            if j is not None and is_conv(self.mods[j][1]):
                out[i] = j
        return out

    def minimal(self, cands: list[int], depth: int = 0) -> list[int]:
        """The candidates no other candidate comes before (module docstring, `position`)."""
        out, groups = [], {}
        for i in cands:
            if len(self.keys[i]) == depth:
                out.append(i)
            else:
                groups.setdefault(self.keys[i][depth], []).append(i)
        same: dict[str, list] = {}  # skeleton -> the values of the ordered components here
        for skeleton, values in groups:
            if values:
                same.setdefault(skeleton, []).append(values)
        for (skeleton, values), members in groups.items():
            if not values or not any(_before(v, values) for v in same[skeleton]):
                out.extend(self.minimal(members, depth + 1))
        return out


# ---- matching -----------------------------------------------------------------------------------
def match(theirs: dict, ours: dict, layouts: dict | None = None, feeds: dict | None = None,
          explicit: dict | None = None, how: dict | None = None):
    """({their prefix: (our prefix, {their tensor name: ours})}, our unmatched modules, their
    unmatched modules), as the module docstring says; `how` (a dict) receives {their prefix: rule}.
    `ours` and `theirs` hold tensors or shapes; `feeds` is {our module: the module it reads, or
    None} (`module_feeds`); `explicit` {their prefix: our prefix}."""
    layouts, how = layouts or {}, {} if how is None else how
    t = Theirs(theirs, bare(layouts))
    our_mods = modules(ours)
    pairs, taken, placed, missing = {}, set(), {}, []
    links: dict[tuple[str, str], int] = {}  # (our parent, their parent) -> modules placed so

    def place(i, prefix, names, rule):
        pairs[t.mods[i][0]], how[t.mods[i][0]] = (prefix, names), rule
        taken.add(i)
        placed[prefix] = i
        link = (_parent(prefix), _parent(t.mods[i][0]))
        links[link] = links.get(link, 0) + 1

    for i, prefix, names in _explicit(t, our_mods, layouts, explicit or {}):
        place(i, prefix, names, "explicit")
    forms_of = {prefix: dict(reversed(_forms(prefix, sig, layouts))) for prefix, sig in our_mods}  # ours first
    namesake = {t.index[p]: p for p in forms_of if p in t.index and t.mods[t.index[p]][1] in forms_of[p]}
    for prefix, sig in our_mods:
        if prefix in placed:
            continue
        forms = forms_of[prefix]  # {signature: names}
        # a module of theirs with the very path of one of ours (and a signature it may have) is that
        # one's: no other of ours takes it, whatever its words share (`layer_c.conv` never takes
        # `layer.conv` from our `layer.conv`), and ours takes it before any other evidence
        same = sorted({i for s in forms for i in t.by_sig.get(s, ()) if i not in taken})
        cands = [i for i in same if namesake.get(i, prefix) in (prefix, *placed)]
        if not cands:
            missing.append(f"{prefix} {fmt(sig)}")
            continue
        own = t.index.get(prefix)
        if own in cands or len(cands) == 1 < len(same):
            i, rule = own if own in cands else cands[0], "shape" if len(same) == 1 else "name"
        else:
            i, rule = _choose(t, prefix, sig, cands, feeds, placed, links)
        place(i, prefix, forms[t.mods[i][1]], rule)
    extra = [f"{p} {fmt(sig)}" for i, (p, sig) in enumerate(t.mods) if i not in taken]
    return pairs, missing, extra


def _parent(prefix: str) -> str:
    return prefix.rpartition(".")[0]


def _choose(t: Theirs, prefix: str, sig: tuple, cands: list[int], feeds, placed, links) -> tuple[int, str]:
    """(their module for our `prefix`, the rule that singled it out), or the CnnError of a tie."""
    if len(cands) == 1:
        return cands[0], "shape"
    left = t.minimal(cands)
    if len(left) == 1:
        return left[0], "position"
    ours_words = [_words(c) for c in prefix.split(".")]
    rules = (("structure", lambda i: _structure(t, i, prefix, sig, feeds, placed)),
             ("structure", lambda i: links.get((_parent(prefix), _parent(t.mods[i][0])), 0)),
             ("name", lambda i: _name_score(ours_words, t.words[i])),
             ("name", lambda i: t.mods[i][0] == prefix),
             ("name", lambda i: _shortcut(t.mods[i][0]) == _shortcut(prefix)))
    for rule, score in rules:
        scores = {i: score(i) for i in left}
        top = max(scores.values())
        left = [i for i in left if scores[i] == top]
        if len(left) == 1:
            return left[0], rule
    raise _ambiguous(prefix, sig, [t.mods[i][0] for i in left])


def _structure(t: Theirs, i: int, prefix: str, sig: tuple, feeds, placed) -> bool:
    """Whether their normalisation's conv (by name) is the match of the module ours reads."""
    if feeds is None or not is_norm(sig):
        return False
    source = feeds.get(prefix)
    return source in placed and t.partner.get(i) == placed[source]


def _name_score(ours_words: list, theirs_words: list) -> int:
    """How many components of our path are found among theirs: the words of one among the other's
    (`dense` in `z_dense`)."""
    return sum(any(a <= b or b <= a for b in theirs_words) for a in ours_words if a)


def _shortcut(path: str) -> bool:
    return bool(SHORTCUT_WORDS & {re.sub(r"\d+$", "", w) for w in re.split(r"[._]", path)})


def _explicit(t: Theirs, our_mods, layouts, explicit: dict):
    """[(their module, our module, names)] for `mapping={their prefix: our prefix}`: every module of
    theirs under a prefix goes to ours under its counterpart by relative path."""
    ours, targets = dict(our_mods), set()
    for their_prefix, our_prefix in explicit.items():
        under = [i for i, (p, _) in enumerate(t.mods) if p == their_prefix or p.startswith(their_prefix + ".")]
        if not under:
            raise CnnError(f"mapping: the checkpoint has no module {their_prefix!r}", usage=True,
                           hint=f"its modules include {_few([p for p, _ in t.mods])}")
        for i in under:
            p, sig = t.mods[i]
            target = our_prefix + p[len(their_prefix):]
            forms = dict(reversed(_forms(target, ours[target], layouts))) if target in ours else {}
            if sig not in forms:
                here = f"holds {fmt(ours[target])}" if target in ours else "is not a module here"
                raise CnnError(f"mapping: {p} {fmt(sig)} cannot go to {target}: {target} {here}", usage=True)
            if target in targets:
                raise CnnError(f"mapping: two of the checkpoint's modules go to {target}", usage=True)
            targets.add(target)
            yield i, target, forms[sig]


def _ambiguous(prefix, sig, names):
    leaf = names[0].rpartition(".")[2]
    label = f"label our layer with the checkpoint's name (`{leaf}: ...`), or " if not leaf.isdigit() else ""
    return CnnError(
        f"ambiguous foreign weights: cannot tell which of the checkpoint's modules {_few(names)} is our "
        f"{prefix}: they hold the same tensors {fmt(sig)}, and neither their order (a Sequential index, "
        f"conv1 < conv2), nor structure (the conv before a normalisation), nor names tell them apart",
        hint=f"{label}pass an explicit mapping: mapping={{{names[0]!r}: {prefix!r}}} (load_into, "
             f"to_torch(weights_mapping=...), cnndsl export --weights-map FILE.json)")


def bare(layouts) -> bool:
    """Whether a tensor of ours may be a bare parameter abroad: only then are their keys split so."""
    return any(f.bare for forms in layouts.values() for f in forms)


def fmt(sig):
    return "(" + ", ".join(f"{n} {'x'.join(map(str, s)) or 'scalar'}".strip() for n, s in sig) + ")"


def _few(keys, n=4):
    keys = list(keys)
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def module_feeds(graph) -> dict:
    """{our module: the module with tensors whose output it reads through layers without tensors
    and with one input, or None (the input, or a join)}, from the IR: the `structure` rule's view
    of our side."""
    with_tensors = set()
    for n in graph.nodes:
        if tuple(n.kind.tensors(n.attrs, [graph.shape_of(i) for i in n.inputs])):
            with_tensors.add(n.name)
    out = {}
    for n in graph.nodes:
        if n.name not in with_tensors:
            continue
        source = n.inputs[0] if len(n.inputs) == 1 else None
        while source is not None and source != "input" and source not in with_tensors:
            up = graph[source].inputs
            source = up[0] if len(up) == 1 else None
        out[n.name] = None if source == "input" else source
    return out
