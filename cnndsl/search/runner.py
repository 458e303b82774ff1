"""`cnndsl search` as one library call: a family in, the search's result out (data; render.py
turns it into the table, CSV or JSON the command prints).

    >>> import cnndsl
    >>> from cnndsl.search import run
    >>> r = run(cnndsl.parse("input 8x8x3\\nlet N = 1 in 1..4\\n[CONV(8, 3, p=1) - POOL]*N - FC(10)"),
    ...         max_params="1.5k", top=1)
    >>> r["count"], r["kept"], [m["bindings"] for m in r["members"]]
    (4, 2, [{'N': 2}])

The steps, in the order the command takes them: every option is checked before the first member
is measured (a bad --emit, --plot, --where, --pareto or training option is known at once, not
after the search); the members are measured (enumerate.search); the listed ones are cut to `top`;
then the closed form (`symbolic`), the members written (`emit`), trained (`train`) and plotted
(`plot`), each when asked. Nothing prints: `events(e)` receives "space" (the family's size, before
measuring), "measured" (members done, as they are), "searched", "emitted", every event of
search.train.train_members ("plan" with the selection's description added), "interrupted" and
"wrote" (the plot).
"""
from __future__ import annotations

import os

from ..errors import CnnError
from .enumerate import DEFAULT_LIMIT, MEASURES


def family(source, bindings=None, input=None, include_dirs=()):
    """(program, Space): a family's spec (a path, or a Program from cnndsl.parse) and its -D
    bindings ({NAME: text}: ranges, lists or values, as search.space.parse_choices reads them)."""
    from ..lang.program import parse_file
    from .space import Space
    prog = parse_file(source, include_dirs) if isinstance(source, (str, os.PathLike)) else source
    return prog, Space(prog, dict(bindings or {}), input=input)


def closed_form(program, space, names, input=None, strict=False, batch=1, dtype="fp32", optimizer="adam") -> dict:
    """The family's default member as formulas in `names` (a list, or "C,N"): search.symbolic, with
    the family's ranges and fixed bindings (needs sympy)."""
    from . import symbolic as S
    if batch < 1:
        raise CnnError("--batch must be at least 1", usage=True)
    names = names.split(",") if isinstance(names, str) else list(names)
    return S.symbolic(program, names, bindings=dict(space.fixed), input=input, ranges=dict(space.ranges),
                      options=dict(batch=batch, dtype=dtype, optimizer=optimizer), strict=strict)


def run(source, *, bindings=None, input=None, include_dirs=(), strict=False, max_params=None, max_macs=None,
        max_memory=None, min_rf=None, where=None, batch=None, dtype="fp32", optimizer="adam", sort="params", top=10,
        pareto=("params", "macs"), sample=None, seed=0, limit=DEFAULT_LIMIT, jobs=None, symbolic=None, emit=None,
        plot=None, train=None, train_on=None, resume=False, overwrite=False, training=None, events=None) -> dict:
    """Search the family `source` (a path or a Program) and return enumerate.search's result with
    `top` members listed (0 or None: all), and "symbolic" (the totals' closed forms in the names
    `symbolic` gives), "training" (search.train's summary) when asked. Budgets: `max_params`,
    `max_macs` (counts, or text such as "2.5M"), `max_memory` (bytes, or "24GiB", at `batch`),
    `min_rf`, `where` (a condition's text). `emit` (a folder): write the listed members there;
    `plot` (a file): their scatter and the Pareto front; `train` (data, as cnndsl.train takes it):
    train `train_on` ("front", the default, or "top") with `training`'s options (cnndsl.train's:
    epochs, opt, lr, ...), `resume` or `overwrite` the runs in `emit`. `batch` is the memory
    estimate's, and training's (default 1; 32 with `train`)."""
    from . import enumerate as E
    from .where import Where
    say = events or (lambda e: None)
    _check_outputs(emit, plot)  # before the search: a bad --emit or --plot is known at once, not after it
    prog, space = family(source, bindings, input, include_dirs)
    where = Where(where, set(space.names) | set(space.each)) if where else None
    pareto_text = pareto if isinstance(pareto, str) else ",".join(pareto)
    pareto = tuple(m.strip() for m in pareto_text.split(","))
    if len(pareto) != 2 or any(m not in MEASURES for m in pareto):
        raise CnnError(f"--pareto {pareto_text}: name two of {', '.join(MEASURES)}", usage=True)
    batch, training = _training(train, batch, seed, train_on, resume, overwrite, training)  # known at once too
    train_on = train_on or "front"
    if plot:
        from ..outputs import check_target, spec_files
        check_target(plot, spec_files(prog), flag="--plot")
    measuring = min(sample, space.count) if sample else space.count if space.count <= limit else None
    say({"event": "space", "source": prog.path, "count": space.count, "sample": sample, "measuring": measuring})
    try:
        result = E.search(space, batch=batch, dtype=dtype, optimizer=optimizer, max_params=_count(max_params, "--max-params"),
                          max_macs=_count(max_macs, "--max-macs"), max_memory=_bytes(max_memory), min_rf=min_rf,
                          where=where, strict=strict, limit=limit, sample=sample, seed=seed, sort=sort, top=None,
                          workers=jobs, progress=lambda n: say({"event": "measured", "members": n}), pareto=pareto)
    finally:
        say({"event": "searched"})
    everything = result["members"]
    result["members"] = everything[:top] if top else everything
    if symbolic:
        from .symbolic import text_totals
        result["symbolic"] = text_totals(closed_form(prog, space, symbolic, input=input, strict=strict, batch=batch,
                                                     dtype=dtype, optimizer=optimizer))
    if train and emit:  # the members' run folders, before any file is written
        from .train import check_folders, select
        check_folders(space, select(result, train_on), emit, resume, overwrite)
    if emit:
        _emit_members(prog, space, result["members"], emit)
        say({"event": "emitted", "members": len(result["members"]), "folder": emit})
    if train:
        result["training"] = _train_members(space, result, train, train_on, emit, resume, overwrite, include_dirs,
                                            training, say)
    if plot:
        from .plot import plot as draw
        draw(result, plot, everything=everything)
        say({"event": "wrote", "path": plot})
    return result


def _count(v, flag):
    from ..analysis.quantity import parse_count
    return parse_count(v, what=flag) if isinstance(v, str) else v


def _bytes(v):
    from ..analysis.quantity import parse_bytes
    return parse_bytes(v, what="--max-memory") if isinstance(v, str) else v


def _check_outputs(emit, plot):
    """--emit DIR (a folder, or a name not taken) and --plot FILE (in a folder that exists, with a
    suffix matplotlib writes)."""
    if emit:
        above = os.path.abspath(emit)
        while not os.path.exists(above):  # the folder is made with its parents: the first that exists
            above = os.path.dirname(above)
        if not os.path.isdir(above):
            raise CnnError(f"--emit {emit}: {above} is a file, not a folder", usage=True,
                           hint="--emit names a folder to write the members' .net files into")
    if plot:
        from .plot import check_path
        check_path(plot)


def _training(train, batch, seed, train_on, resume, overwrite, options):
    """(the batch, the training options resolved with it and the seed, or None without `train`),
    checked before any member is measured."""
    given = {k: v for k, v in (options or {}).items() if v is not None}
    if not train:
        stray = list(given) + [k for k, v in (("resume", resume), ("overwrite", overwrite), ("train_on", train_on)) if v]
        if stray:
            flag = "--" + {"val_fraction": "val"}.get(stray[0], stray[0]).replace("_", "-")
            raise CnnError(f"{flag} is a training option: it needs --train DATA", usage=True,
                           hint="e.g. cnndsl search FAMILY.net --train digits --epochs 5")
        if batch is None:
            batch = 1
    if batch is None:
        from ..train.options import DEFAULTS
        batch = DEFAULTS["batch"]
    if batch < 1:
        raise CnnError("--batch must be at least 1", usage=True)
    if not train:
        return batch, None
    from .train import check_options
    given.update(batch=batch, seed=seed)
    check_options(train, **given)
    return batch, given


def _emit_members(prog, space, records, folder):
    from . import emit as W
    os.makedirs(folder, exist_ok=True)
    for r, path in zip(records, W.write_members(folder, prog, space, [r["index"] for r in records])):
        r["file"] = path


def _train_members(space, result, data, train_on, emit, resume, overwrite, include_dirs, options, say) -> dict:
    from .train import select, train_members
    records = select(result, train_on)

    def relay(e):  # the plan says which members these are: the front of two measures, or the best by one
        say({**e, "on": train_on, "pareto_measures": result["pareto_measures"], "sort": result["sort"],
             "listed": len(result["members"])} if e["event"] == "plan" else e)

    summary = train_members(space, records, data, out=emit, resume=resume, overwrite=overwrite, callback=relay,
                            include_dirs=include_dirs, **options)
    summary["on"] = train_on
    if summary["interrupted"]:
        say({"event": "interrupted", "done": summary["trained"] + summary["failed"], "selected": summary["selected"],
             "resumable": bool(emit)})
    return {k: v for k, v in summary.items() if k not in ("members", "files")}  # the records hold the members'
