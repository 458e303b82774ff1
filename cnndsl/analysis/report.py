"""The report: the analysis as a versioned JSON-able dict, and as a table, markdown or CSV.

The dict is a contract (`schema: cnndsl.report/1`) that scripts and tests rely
on: fields are only ever added under this version. Shapes are [H, W, C] for
volumes and [N] for vectors; `rf` and `jump` are a number for square windows and
[h, w] otherwise, and null once the volume is flat. Each number is an int where whole and otherwise
the exact fraction as a string, "7/2" (after an upsampling layer the jump is 1/2).

The text formats add what the lecture's tables show: the table and markdown start
with an INPUT row and end with a totals row; the CSV's first row is the input, so
its rows with `inplace` false sum to `totals.act_elems`.
"""
from __future__ import annotations


from .analyze import DTYPE_BYTES, analyze, max_batch
from ..errors import CnnError
from ..ir import Graph
from ..kinds import fmt_shape

SCHEMA = "cnndsl.report/1"


def build(graph: Graph, dtype="fp32", batch=1, optimizer="adam", memory=None) -> dict:
    totals = analyze(graph, dtype=dtype, batch=batch, optimizer=optimizer)
    layers, defaulted = _layers(graph.nodes, DTYPE_BYTES[dtype])
    rep = {
        "schema": SCHEMA, "source": graph.source, "input": list(graph.input_shape), "output": graph.output,
        "dtype": dtype, "batch": batch, "optimizer": optimizer,
        "layers": layers,
        "totals": totals,
        "optionals": [{"name": o.name, "line": o.span.line, "col": o.span.col, "included": o.included,
                       "source": o.source, "uses": o.uses} for o in graph.optionals],
        "defaults": _defaults_used(defaulted),
        "warnings": [w.to_dict() for w in graph.warnings],
    }
    if memory is not None:
        rep["memory"] = {"budget_bytes": memory, "max_batch": max_batch(totals, memory)}
    return rep


def _layers(nodes, nbytes) -> tuple[list, list]:
    """(a row per node, the nodes with defaults applied). The report's inner loop: a dict per layer,
    with what is the same for many layers looked up (a kind's description of the same attrs object,
    the block of the same frames) and the common rf/jump (whole and square) written inline."""
    layers, defaulted = [], []
    append = layers.append
    descs = _DESCS if len(_DESCS) < 50_000 else _DESCS.clear() or _DESCS
    blocks = {}  # id(frames) -> the innermost block or label path: a scope's nodes share their frames
    for n in nodes:
        m, attrs, frames, span, defaults = n.meta, n.attrs, n.frames, n.span, n.defaults
        desc = descs.get(id(attrs))
        # the attrs object itself (a freed one's id may be reused), of the same kind
        if desc is None or desc[0] is not attrs or desc[1] != n.op:
            desc = descs[id(attrs)] = (attrs, n.op, n.kind.describe(attrs))
        block = blocks.get(id(frames), blocks)
        if block is blocks:
            block = blocks[id(frames)] = next((f.path for f in reversed(frames) if f.kind != "repeat"), None)
        if span is None:
            line = col = None
        else:
            line, col = span.line, span.col
        if defaults:
            defaulted.append(n)
        rf, jump, elems, warnings = m["rf"], m["jump"], m["act_elems"], m.get("warnings")
        append({
            "name": n.name, "op": n.op, "desc": desc[2], "line": line, "col": col,
            "inputs": list(n.inputs), "out": list(n.out_shape),
            "params": m["params"], "macs": m["macs"], "flops": m["flops"],
            "act_elems": elems, "act_bytes": elems * nbytes,
            "inplace": m["inplace"],  # shares its input's memory at inference (not in totals.act_bytes)
            # _square, inline for the common case (whole and square); a Fraction goes through exact()
            "rf": rf[0] if rf is not None and rf[0].__class__ is int and rf[0] == rf[1] else _square(rf),
            "jump": jump[0] if jump is not None and jump[0].__class__ is int and jump[0] == jump[1] else _square(jump),
            "implicit": n.implicit,
            "block": block,
            "defaults": {k: _jsonable(v) for k, (v, _) in defaults.items()} if defaults else {},
            "warnings": [w.message + (f" ({w.arithmetic})" if w.arithmetic else "") for w in warnings]
            if warnings else [],
        })
    return layers, defaulted


# id(attrs) -> (attrs, op, description), kept across calls: attrs objects are shared by every
# call site and elaboration that writes the same arguments (lang/memo.py)
_DESCS: dict = {}


def _square(pair):
    if pair is None:
        return None
    return exact(pair[0]) if pair[0] == pair[1] else [exact(v) for v in pair]


def exact(v):
    """A receptive field or jump for JSON: an int where whole, else the exact fraction as a string
    (`"7/2"`: never a float, and never a pair, which `[h, w]` already means)."""
    return v if v.__class__ is int else str(v) if v.denominator != 1 else int(v)


def _jsonable(v):
    return list(v) if isinstance(v, tuple) else v


def _defaults_used(nodes) -> list[dict]:
    """One entry per (layer kind, argument, value, origin): what bare names and `default` supplied
    (`nodes`: those with defaults, in graph order)."""
    seen = {}
    for n in nodes:
        for arg, (value, origin) in n.defaults.items():
            key = (n.op, arg, repr(value), origin)
            if key not in seen:
                seen[key] = {"op": n.op, "arg": arg, "value": _jsonable(value), "origin": origin, "layers": 0}
            seen[key]["layers"] += 1
    return list(seen.values())


# ---- text formats ---------------------------------------------------------------------
def si(n: float, unit: str = "") -> str:
    for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= size:
            return f"{n / size:.2f}{suffix}{unit}"
    return f"{n:g}{unit}"


def binary(n: float) -> str:
    for size, suffix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(n) >= size:
            return f"{n / size:.1f} {suffix}"
    return f"{n:g} B"


def _rf(v):
    return "" if v is None else (f"{v[0]}x{v[1]}" if isinstance(v, list) else str(v))


COLUMNS = ("#", "name", "op", "volume", "values", "memory", "params", "MACs", "RF")
_RIGHT = {0, 4, 5, 6, 7, 8}


def input_row(rep: dict) -> dict:
    """The input as a row of the layer columns: the lecture's `INPUT: [224x224x3] memory: 150K weights: 0`.
    It holds memory of its own, so the rows with `inplace` false sum to `totals.act_elems`."""
    elems = 1
    for v in rep["input"]:
        elems *= v
    volume = len(rep["input"]) == 3
    return {"name": "input", "op": "INPUT", "desc": "", "line": None, "col": None, "out": list(rep["input"]),
            "params": 0, "macs": 0, "flops": 0, "act_elems": elems, "act_bytes": elems * DTYPE_BYTES[rep["dtype"]],
            "rf": 1 if volume else None, "jump": 1 if volume else None, "inplace": False, "implicit": False}


def _rows(rep):
    """The table's rows: the input, every layer (numbered), then the totals."""
    for i, l in enumerate([input_row(rep), *rep["layers"]]):
        op = l["op"] + (f" {l['desc']}" if l["desc"] else "") + (" (implicit)" if l["implicit"] else "")
        memory = "in place" if l["inplace"] else binary(l["act_bytes"])
        yield (str(i) if i else "", l["name"], op, fmt_shape(l["out"]), si(l["act_elems"]), memory,
               f"{l['params']:,}", si(l["macs"]) if l["macs"] else "", _rf(l["rf"]))


def _total_row(rep):
    """Values and memory: the input and the outputs with memory of their own (in-place rows not counted)."""
    t, n = rep["totals"], len(rep["layers"])
    return ("", "total", f"{n} layer{'s' * (n != 1)}", "", si(t["act_elems"]), binary(t["act_bytes"]),
            f"{t['params']:,}", si(t["macs"]) if t["macs"] else "", "")


def _summary(rep) -> list[str]:
    t = rep["totals"]
    lines = [
        f"params {t['params']:,} ({binary(t['param_bytes'])} as {rep['dtype']} weights); "
        f"MACs {si(t['macs'])}; FLOPs {si(t['flops'])} per image (a training step: ~{si(t['train_flops'])})",
        f"forward activations {binary(t['act_bytes'])} per image: the input and every output with memory of its "
        f"own ({t['act_elems']:,} values; an inference run frees most of them early)",
        f"training estimate ({rep['optimizer']}, batch {rep['batch']}, activations in {rep['dtype']}): "
        f"{binary(t['train_bytes'])} = weights+grads+{rep['optimizer']}"
        f"{'+' + rep['dtype'] + ' weight copy' if rep['dtype'] != 'fp32' else ''} {binary(t['train_fixed_bytes'])} "
        f"+ {rep['batch']} x {binary(t['train_per_image_bytes'])} per image",
    ]
    if "memory" in rep:
        m = rep["memory"]
        lines.append(f"largest batch for {binary(m['budget_bytes'])}: {m['max_batch']:,}"
                     + (" (an upper bound: leave room for the CUDA context, ~0.5-1 GiB, and allocator slack)"
                        if m["max_batch"] else " (the weights and optimizer state alone do not fit)"))
    for o in rep["optionals"]:
        state = "on" if o["included"] else "off"
        how = {"default": f"default; -D {o['name']}=off drops it", "-D": "set with -D", "let": "set with let",
               "parameter": f"block parameter, {o['uses']} use{'s' * (o['uses'] != 1)}"}[o["source"]]
        lines.append(f"optional `{o['name']}` (line {o['line']}): {state} ({how})")
    by_origin = {}
    for d in rep["defaults"]:
        by_origin.setdefault((d["op"], d["origin"]), []).append(f"{d['arg']}={_show(d['value'])}")
    for (op, origin), args in by_origin.items():
        lines.append(f"defaults applied: {op} {', '.join(args)} (from {origin})")
    flat = [l["name"] for l in rep["layers"] if l["implicit"]]
    if flat:
        lines.append(f"implicit flatten before FC: {', '.join(flat)}")
    return lines


def _show(v):
    return "x".join(map(str, v)) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else str(v)


def table(rep: dict) -> str:
    total = _total_row(rep)
    rows = [COLUMNS, *_rows(rep), total]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    fmt = lambda r: "  ".join(c.rjust(w) if i in _RIGHT else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    rule = fmt(["-" * w for w in widths])
    out = [f"{rep['source']}: input {fmt_shape(rep['input'])}", fmt(rows[0]), rule]
    out += [fmt(r).rstrip() for r in rows[1:-1]]
    out += [rule, fmt(total).rstrip(), ""]
    out += _summary(rep)
    return "\n".join(out) + "\n"


def markdown(rep: dict) -> str:
    out = [f"**{rep['source']}**: input {fmt_shape(rep['input'])}", "",
           "| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---:" if i in _RIGHT else "---"
                                                           for i in range(len(COLUMNS))) + "|"]
    cells = lambda r: "| " + " | ".join(c.replace("|", "\\|") for c in r) + " |"
    out += [cells(r) for r in _rows(rep)]
    out.append(cells(f"**{c}**" if c else c for c in _total_row(rep)))
    out += [""] + [f"- {line}" for line in _summary(rep)]
    return "\n".join(out) + "\n"


CSV_FIELDS = ("name", "op", "desc", "line", "col", "out", "params", "macs", "flops", "act_elems", "act_bytes",
              "rf", "jump", "inplace")


def csv_text(rep: dict) -> str:
    """A row per layer under a header, the first row the input (op INPUT): summing `act_elems` over the rows
    whose `inplace` is false gives `totals.act_elems`. Columns are only ever appended."""
    import csv
    import io
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for l in [input_row(rep), *rep["layers"]]:
        w.writerow([_csv_cell(f, l[f]) for f in CSV_FIELDS])
    return buf.getvalue()


def _csv_cell(field, v):
    if field == "out":
        return fmt_shape(v)
    if field in ("rf", "jump"):
        return _rf(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else v


# ---- what `cnndsl report` prints ------------------------------------------------------
FORMATS = ("table", "markdown", "json", "csv")


def render(rep: dict, fmt: str = "table", notes=(), frozen=None) -> str:
    """The report in one of FORMATS, as `cnndsl report --format` prints it. The table ends with the
    spec's `# note:` lines (`Net.notes`: under the figures they are about); after a --freeze
    (train.freeze.annotate), `frozen` (the names it gave) ends the table and markdown with the
    trainable parameters."""
    if fmt == "json":
        import json
        return json.dumps(rep, indent=1) + "\n"
    if fmt not in FORMATS:
        raise CnnError(f"unknown report format {fmt!r}", usage=True, hint="choose " + ", ".join(FORMATS))
    text = {"table": table, "markdown": markdown, "csv": csv_text}[fmt](rep)
    if fmt == "table":
        text += "".join(f"note: {n}\n" for n in notes)
    if frozen and fmt in ("table", "markdown"):
        t = rep["totals"]
        text += (f"trainable parameters: {t['trainable_params']:,} of {t['params']:,} "
                 f"(frozen: {frozen_text(frozen, rep['frozen'])})\n")
    return text


def frozen_text(names, frozen) -> str:
    """What a --freeze named, as the user wrote it, and how many layers that is (never cut short)."""
    return f"{', '.join(names)}: {len(frozen)} layer{'s' * (len(frozen) != 1)}"
