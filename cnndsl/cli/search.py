"""`cnndsl search` (cnndsl.search.run; search/render.py renders its result) and `cnndsl match`."""
from __future__ import annotations

import sys

from .. import options as O
from .common import DTYPES, MEMORY_OPTIMIZERS, Events, bindings, threads_text
from .train import training_options


def add_search(sub):
    p = sub.add_parser("search", help="search a family (ranged variables, free optionals) under budgets")
    p.add_argument("file", help="a .net spec with ranges (let N = 2 in 1..5) or -D ranges")
    p.add_argument("-D", dest="defines", metavar="NAME=VALUES", action="append", default=[],
                   help="a range (N=1..5), a list (K=0,1,2; pool=on,off), pool=each (every occurrence on its own) "
                        "or a fixed value (N=3); repeatable")
    p.add_argument("--input", metavar="HxWxC")
    p.add_argument("--strict", action="store_true", help="drop members whose windows leave input rows unread")
    p.add_argument("--max-params", metavar="X", type=O.amount())
    p.add_argument("--max-macs", metavar="X", type=O.amount())
    p.add_argument("--max-memory", metavar="BYTES", type=O.size_in_bytes, help="training memory at --batch (24GiB)")
    p.add_argument("--batch", type=O.batch, default=None, help="the batch of the memory estimate, and of training "
                   "with --train (default 1; 32 with --train)")
    p.add_argument("--dtype", choices=DTYPES, default="fp32")
    p.add_argument("--optimizer", choices=MEMORY_OPTIMIZERS, default="adam")
    p.add_argument("--min-rf", type=O.whole(0, 2**53), metavar="N")
    p.add_argument("--where", metavar="EXPR", help="a condition on the variables and measures: 'N >= M and params < 1e6'")
    p.add_argument("--sort", default="params", help="params, macs, memory, depth or rf (default params)")
    p.add_argument("--top", type=O.whole(0, O.MAX_BATCH), default=10, help="members listed (default 10; 0: all)")
    p.add_argument("--pareto", default="params,macs", metavar="A,B", help="the front's two measures (default params,macs)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--emit", metavar="DIR", help="write the listed members as concrete .net files")
    p.add_argument("--plot", metavar="PNG", help="scatter of the kept members with the Pareto front (matplotlib)")
    p.add_argument("--sample", type=O.whole(1, O.MAX_BATCH), metavar="N", help="measure N members drawn at random (--seed)")
    p.add_argument("--seed", type=O.seed, default=0, help="of --sample, and of training with --train (default 0)")
    p.add_argument("--limit", type=O.whole(1, O.MAX_BATCH), default=200_000, help="refuse spaces larger than this without --sample")
    p.add_argument("--jobs", type=O.whole(1, O.MAX_WORKERS), default=None, help="worker processes (default: one per core)")
    p.add_argument("--symbolic", metavar="VARS", help="also print the totals as formulas in these variables")
    t = p.add_argument_group("accuracy, not only cost (--train DATA: cnndsl train's data and options)")
    t.add_argument("--train", metavar="DATA", help="train the members one after another and add their validation "
                   "accuracy: digits, synthetic[:N], a FOLDER with a sub-folder per class, or FILE.npz")
    t.add_argument("--train-on", choices=("front", "top"), default=None,
                   help="front: the Pareto front's members (default); top: the listed best --top")
    t.add_argument("--resume", action="store_true", help="continue the members' runs in --emit DIR (a finished "
                   "member is read back, not retrained)")
    t.add_argument("--overwrite", action="store_true", help="replace the members' runs in --emit DIR (without it, "
                   "or --resume, a member folder holding a run is refused before anything trains)")
    training_options(t, batch_seed=False)


# the training options `search --train` passes on (its --batch and --seed serve the search too)
SEARCH_TRAIN_OPTIONS = ("epochs", "opt", "lr", "momentum", "weight_decay", "schedule", "warmup", "augment",
                        "label_smoothing", "device", "amp", "channels_last", "compile", "workers", "val_fraction",
                        "threads")


def cmd_search(args):
    from ..search import render, run
    progress = _SearchProgress(args)
    try:
        result = run(args.file, bindings=bindings(args.defines), input=args.input, strict=args.strict,
                     max_params=args.max_params, max_macs=args.max_macs, max_memory=args.max_memory,
                     min_rf=args.min_rf, where=args.where, batch=args.batch, dtype=args.dtype,
                     optimizer=args.optimizer, sort=args.sort, top=args.top, pareto=args.pareto,
                     sample=args.sample, seed=args.seed, limit=args.limit, jobs=args.jobs, symbolic=args.symbolic,
                     emit=args.emit, plot=args.plot, train=args.train, train_on=args.train_on, resume=args.resume,
                     overwrite=args.overwrite, training={k: getattr(args, k) for k in SEARCH_TRAIN_OPTIONS},
                     events=progress)
    finally:
        progress.close()
    print(render.render(result, args.format), end="")
    training = result.get("training")
    if training is None:
        return 0
    return 130 if training["interrupted"] else 1 if training["failed"] else 0


class _SearchProgress(Events):
    """search's events on stderr: the family's size, a bar while members are measured (on a
    terminal, for a large family or a sample), what was written, and with --train what will train,
    a bar per epoch and a line per member."""

    def __init__(self, args):
        super().__init__()
        self.args, self.data_shown, self.resumed = args, False, None

    def on_space(self, e):
        print(f"{self.args.file}: {e['count']:,} member{'s' * (e['count'] != 1)}"
              + (f", sampling {e['measuring']:,}" if e["sample"] else ""), file=sys.stderr)
        if e["measuring"] and (e["measuring"] >= 2000 or e["sample"]):
            self.new_bar(e["measuring"], unit="member")

    def on_measured(self, e):
        if self.bar is not None:
            self.bar.update(e["members"])

    def on_searched(self, e):
        self.close()

    def on_emitted(self, e):
        print(f"wrote {e['members']} members to {e['folder']}", file=sys.stderr)

    def on_wrote(self, e):
        print(f"wrote {e['path']}", file=sys.stderr)

    def on_interrupted(self, e):
        print(f"interrupted: {e['done']} of {e['selected']} members done"
              + ("; the same command with --resume continues" if e["resumable"] else ""), file=sys.stderr)

    # ---- search --train: search.train.train_members's events
    def on_plan(self, e):
        o = e["options"]
        which = (f"the Pareto front ({', '.join(e['pareto_measures'])})" if e["on"] == "front"
                 else f"the best {e['listed']} by {e['sort']}")
        print(f"training {e['members']} member{'s' * (e['members'] != 1)}, {which}, on {e['data']}: {o['opt']} lr "
              f"{o['lr']:g}, batch {o['batch']}, {o['epochs']} epoch{'s' * (o['epochs'] != 1)}, seed {o['seed']}, "
              f"{threads_text(o['threads'])}, validation {o['val_fraction']:.0%}", file=sys.stderr)

    def on_start(self, e):
        self.resumed = e["resumed_from"]
        if not self.data_shown:
            self.data_shown = True
            for n in e["notes"]:
                print(f"cnndsl: note: {n}", file=sys.stderr)
            for line in e["data"]:
                print(f"data: {line}", file=sys.stderr)
            print(f"device: {e['device']}", file=sys.stderr)

    def on_epoch(self, e):
        self.new_bar(e["steps"], desc=f"[{e['member']}/{e['members']}] epoch {e['epoch']}/{e['epochs']}", unit="step",
                     dynamic_ncols=True)

    def on_progress(self, e):
        if self.bar is not None:
            self.bar.update(e["step"] - self.bar.n)
            self.bar.set_postfix(loss=f"{e['loss']:.4f}", acc=f"{e['acc']:.4f}", refresh=False)

    def on_member_end(self, e):
        self.close()
        r = e["record"]
        from ..search.render import bindings_text
        head = f"[{e['member']}/{e['members']}] {bindings_text(r)} ({r['params']:,} params, {r['macs']:,} MACs)"
        if e.get("error"):
            print(f"{head}: failed to train\n{e['error']}", file=sys.stderr, flush=True)
            return
        acc = f"val acc {r['val_acc']:.4f}" if r["val_acc"] is not None else "no validation split"
        acc += f", train acc {r['train_acc']:.4f}" if r["train_acc"] is not None else ""
        done = self.resumed if self.resumed else 0
        again = (", trained before (--resume)" if done >= r["epochs_trained"] else
                 f", resumed after epoch {done}" if done else "")
        self.resumed = None
        print(f"{head}: {acc}, {r['epochs_trained']} epoch{'s' * (r['epochs_trained'] != 1)}, "
              f"{r['train_seconds']:.1f} s{again}", file=sys.stderr, flush=True)


def add_match(sub):
    p = sub.add_parser("match", help="whether a concrete .net is a member of a family, and with which bindings")
    p.add_argument("net", help="a concrete .net")
    p.add_argument("family", help="a .net with ranges")
    p.add_argument("-D", dest="defines", metavar="NAME=VALUES", action="append", default=[])
    p.add_argument("--input", metavar="HxWxC")
    p.add_argument("--limit", type=O.whole(1, O.MAX_BATCH), default=200_000)


def cmd_match(args):
    from ..lang.program import parse_file
    from ..search.match import match
    from ..search.render import match_text
    from ..search.runner import family
    net = parse_file(args.net)
    _, space = family(args.family, bindings(args.defines), args.input)
    found = match(net, space, input=args.input, limit=args.limit)
    print(match_text(args.net, args.family, found, space.count), end="")
    return 0 if found else 1
