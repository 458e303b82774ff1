"""A search's result as text: the table `cnndsl search` prints, its CSV and its JSON (`render`), and
what `cnndsl match` says (`match_text`).

    >>> import cnndsl
    >>> from cnndsl.search.enumerate import search
    >>> from cnndsl.search.space import Space
    >>> prog = cnndsl.parse("input 8x8x3\\nlet N = 1 in 1..4\\n[CONV(8, 3, p=1) - POOL]*N - FC(10)")
    >>> print(table(search(Space(prog), max_params=1500)).splitlines()[1])
      dropped 1 member: a layer does not accept its input's shape (E301); e.g. N=4: 2x2 window does not fit a height of 1 (input 1x1x8)

The table shows figures as a reader takes them in (memory with its unit); the CSV and the JSON
keep the plain numbers (memory in bytes).
"""
from __future__ import annotations

from ..analysis.report import binary

COLUMNS = ("depth", "params", "macs", "memory", "rf")
TRAIN_COLS = ("val_acc", "val_loss", "train_acc", "train_loss", "epochs_trained", "train_seconds", "train_error")


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'s' * (n != 1)}"


def bindings_text(r) -> str:
    return " ".join(f"{k}={v}" for k, v in r["bindings"].items()) or "(no choices)"


def _cell(r, c):
    v = r.get(c)
    if v is None:
        return ""
    return binary(v) if c == "memory" else f"{v:,}" if isinstance(v, int) else str(v)  # an rf may be 7/2


def _rows(r, acc=None):
    return [bindings_text(r)] + [_cell(r, c) for c in COLUMNS] + ([_acc_cell(r, acc)] if acc else [])


def _acc_cell(r, key):
    if "train_error" in r:
        return "failed"
    return "" if r.get(key) is None else f"{r[key]:.4f}"


def drop_lines(res) -> list:
    """A line per group of dropped members: how many, what the group is, and its first member."""
    out = []
    for why, n in res["dropped"].items():
        ex = res.get("drop_examples", {}).get(why)
        tail = f"; e.g. {bindings_text(ex)}: {ex['message']}" if ex else ""
        out.append(f"  dropped {plural(n, 'member')}: {why}{tail}")
    return out


def table(res) -> str:
    out = [f"{res['source']}: {plural(res['count'], 'member')}, {res['measured']:,} measured, {res['kept']:,} kept "
           f"({plural(res['distinct'], 'distinct net')})"]
    out += drop_lines(res)
    from .train import accuracy_key
    acc = accuracy_key(res) if "training" in res else None
    head = ["bindings", *COLUMNS] + ([acc.replace("_acc", " acc")] if acc else [])
    head[head.index("memory")] = "train memory"
    m = res.get("memory_options")
    at = f" (train memory: {m['optimizer']}, batch {m['batch']}, {m['dtype']})" if m else ""
    out.append(_grid(head, [_rows(r, acc) for r in res["members"]], f"best {len(res['members'])} by {res['sort']}{at}"))
    a, b = res["pareto_measures"]
    out.append(_grid(head, [_rows(r, acc) for r in res["pareto"]],
                     f"Pareto front ({a}, {b}): {plural(len(res['pareto']), 'member')}"))
    if acc:
        out += _training_lines(res, acc)
    if "symbolic" in res:
        out.append("closed form (totals):")
        out += [f"  {k} = {v}" for k, v in res["symbolic"].items()]
    return "\n".join(out) + "\n"


def _training_lines(res, acc):
    from .train import trained_records
    t, o = res["training"], res["training"]["options"]
    rows = trained_records(res)
    out = [f"\ntrained {t['trained']} of {plural(t['selected'], 'member')} on {t['data']} ({o['epochs']} epoch"
           f"{'s' * (o['epochs'] != 1)} each, batch {o['batch']}, seed {o['seed']})"
           + (f", {t['failed']} failed" if t["failed"] else "")]
    done = [r for r in rows if r.get(acc) is not None]
    if done:
        best = max(done, key=lambda r: (r[acc], -r["macs"]))
        out.append(f"  most accurate: {bindings_text(best)}  {acc.replace('_', ' ')} {best[acc]:.4f}  "
                   f"({best['params']:,} params, {best['macs']:,} MACs)")
    out += [f"  failed: {bindings_text(r)}: {r['train_error']}" for r in rows if "train_error" in r]
    if t["interrupted"]:
        out.append(f"  interrupted: {plural(t['left'], 'member')} left untrained"
                   + (" (the same command with --resume continues)" if res.get("emit") or any("train_dir" in r for r in rows)
                      else ""))
    return out


def _grid(head, rows, title):
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([f"\n{title}", line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def csv_text(res) -> str:
    """A row per listed member; with --train, also the trained members not listed (the front beyond --top)
    and the training columns (empty where a member was not trained). Memory in bytes."""
    import csv
    import io
    from .train import trained_records
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    trained = "training" in res
    listed = {r["index"] for r in res["members"]}
    rows = res["members"] + ([r for r in trained_records(res) if r["index"] not in listed] if trained else [])
    names = list(rows[0]["bindings"]) if rows else []
    w.writerow(["index", *names, *COLUMNS, "flops", "pareto"] + (list(TRAIN_COLS) if trained else []))
    front = {r["index"] for r in res["pareto"]}
    for r in rows:
        w.writerow([r["index"], *(r["bindings"][n] for n in names), *(r.get(c) for c in COLUMNS), r["flops"],
                    str(r["index"] in front).lower()] + ([r.get(c) for c in TRAIN_COLS] if trained else []))
    return buf.getvalue()


FORMATS = ("table", "json", "csv")


def render(res, fmt: str = "table") -> str:
    """The result of cnndsl.search.run as `cnndsl search --format` prints it."""
    if fmt == "json":
        import json
        return json.dumps(res, indent=1, default=str) + "\n"
    if fmt not in FORMATS:
        from ..errors import CnnError
        raise CnnError(f"unknown search format {fmt!r}", usage=True, hint="choose " + ", ".join(FORMATS))
    return csv_text(res) if fmt == "csv" else table(res)


def match_text(net: str, family: str, found: list, tried: int) -> str:
    """`cnndsl match`'s answer: a line per way `net` is a member of `family` (match.match's list of
    choices), or why not (`tried`: the members compared)."""
    from .enumerate import _show
    if not found:
        return f"{net} is not a member of {family} ({tried:,} members tried)\n"
    return "".join(f"{net} is a member of {family}: " + " ".join(f"{k}={v}" for k, v in _show(c).items()) + "\n"
                   for c in found)
