"""`cnndsl train` (cnndsl.train.train: its events printed as they come) and `cnndsl eval`
(cnndsl.train.evaluate: train/evaluation.py renders its tables)."""
from __future__ import annotations

import os
import sys

from .. import options as O
from .common import Events, load, print_warnings, print_weights, refuse_overwrite, spec_options, threads_text


def add_train(sub):
    p = sub.add_parser("train", help="train a spec's network on data (one process, or each of torchrun's)",
                       description="Options left out take the checkpoint's values with --resume, else the defaults.")
    spec_options(p)
    p.add_argument("--data", required=True, help="digits, synthetic[:N], a FOLDER with a sub-folder per class, "
                   "or FILE.npz with arrays x and y")
    training_options(p)
    p.add_argument("--out", metavar="DIR", help="write metrics.jsonl, curves.png, checkpoints and the spec here")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out (without it, or --resume, "
                   "a folder holding a run is refused)")
    p.add_argument("--init", metavar="CKPT", help="start from a checkpoint's tensors whose names and shapes match "
                   "(a torchvision state_dict is mapped); prints what it skipped")
    p.add_argument("--freeze", metavar="NAMES", help="layers or groups that do not train, comma-separated; "
                   "..NAME: everything up to NAME")


def training_options(p, batch_seed=True):
    """The options of `cnndsl train` that `search --train` passes on too (search has its own --batch
    and --seed, which serve both)."""
    from ..train.options import AUGMENTS, DEVICES, OPTIMIZERS, SCHEDULES
    p.add_argument("--epochs", type=O.whole(1, O.MAX_REPEAT), help="epochs in all (with --resume: to train up to; default 10)")
    if batch_seed:
        p.add_argument("--batch", type=O.batch, help="batch size per process (default 32)")
    p.add_argument("--opt", choices=OPTIMIZERS, help="optimizer (default adam)")
    p.add_argument("--lr", type=O.real(0, lo_open=True), help="learning rate (default: adam/adamw 0.003, rmsprop 0.001, "
                   "sgd/momentum/nesterov/adagrad 0.01, adadelta 1.0)")
    p.add_argument("--momentum", type=O.fraction, help="for momentum and nesterov (default 0.9) and rmsprop (0)")
    p.add_argument("--weight-decay", type=O.real(0), help="L2 penalty (default 0)")
    p.add_argument("--schedule", choices=SCHEDULES, help="step: x0.1 every third of the run; exp: x0.1 over "
                   "the run; cosine; plateau: x0.1 when val accuracy stalls 2 epochs (default none)")
    p.add_argument("--warmup", type=O.whole(0, O.MAX_BATCH), metavar="STEPS", help="linear warm-up over the first STEPS batches")
    p.add_argument("--augment", choices=AUGMENTS, help="random horizontal flips, random crops (default none)")
    p.add_argument("--label-smoothing", type=O.fraction, metavar="S")
    p.add_argument("--device", choices=DEVICES, help="default auto: cuda when there is one")
    p.add_argument("--amp", action="store_true", default=None, help="mixed precision (bf16, or fp16 with loss scaling)")
    p.add_argument("--channels-last", action="store_true", default=None)
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    if batch_seed:
        p.add_argument("--seed", type=O.seed, help="initialisation, split, order, augmentation (default 0)")
    p.add_argument("--workers", type=O.workers, help="DataLoader worker processes (default 0: the data is in memory)")
    p.add_argument("--threads", type=O.whole(1, 1024), help="torch threads (default 1: a second thread gains little on "
                   "small nets and collapses on a shared CPU; same seed, device and threads give the same bits)")
    p.add_argument("--val", type=O.fraction, dest="val_fraction", metavar="FRACTION",
                   help="validation share of each class (default 0.2)")


TRAIN_OPTIONS = ("epochs", "batch", "opt", "lr", "momentum", "weight_decay", "schedule", "warmup", "augment",
                 "label_smoothing", "device", "amp", "channels_last", "compile", "seed", "workers", "val_fraction",
                 "init", "freeze", "threads")


def cmd_train(args):
    from ..train import train
    net = load(args)
    print_warnings(net)
    progress = _Progress()
    given = {k: getattr(args, k) for k in TRAIN_OPTIONS}
    try:
        result = train(net, args.data, out=args.out, resume=args.resume, overwrite=args.overwrite,
                       callback=progress, **given)
    finally:
        progress.close()
    if result["rank"] != 0:
        return 0
    for f in result["files"]:
        print(f"wrote {f}", file=sys.stderr)
    sys.stderr.flush()
    final = result["final"]
    if final is None:
        print(f"nothing to train: the checkpoint has {result['resumed_from']} epochs already")
    elif final["val_acc"] is None:
        print(f"final training accuracy: {final['train_acc']:.4f} (epoch {final['epoch']}; no validation split)")
    else:
        print(f"final validation accuracy: {final['val_acc']:.4f} (epoch {final['epoch']})")
    return 0


class _Progress(Events):
    """The train callback: the set-up, a progress bar per epoch (tqdm, on stderr), a line per epoch."""

    def __call__(self, e):
        if e["rank"] == 0:  # one process of torchrun's speaks
            super().__call__(e)

    def on_start(self, e):
        for n in e["notes"]:
            print(f"cnndsl: note: {n}", file=sys.stderr)
        for w in e["warnings"]:
            print(f"cnndsl: warning: {w}", file=sys.stderr)
        for line in e["data"]:
            print(f"data: {line}")
        o = e["options"]
        where = f"{e['device']}" + (f", {e['world_size']} processes ({e['backend']})" if e["world_size"] > 1 else "")
        print(f"train: {o['opt']} lr {o['lr']:g}" + (f" momentum {o['momentum']:g}" if o["momentum"] else "")
              + (f" weight decay {o['weight_decay']:g}" if o["weight_decay"] else "")
              + f", schedule {o['schedule']}" + (f", warm-up {o['warmup']} steps" if o["warmup"] else "")
              + f", batch {o['batch']}" + (f" x {e['world_size']}" if e["world_size"] > 1 else "")
              + f", {o['epochs']} epochs, seed {o['seed']}, on {where}, {threads_text(e['threads'])}"
              + (f", amp {e['amp']}" if e["amp"] else ""))
        if e["init"] is not None:
            print_weights(e["init"], o["init"])
        frozen = ""
        if e["frozen"]:
            from ..analysis.report import frozen_text
            from ..train.freeze import parse_names
            frozen = f" (frozen: {frozen_text(parse_names(o['freeze']), e['frozen'])})"
        print(f"parameters: {e['trainable_params']:,} trainable of {e['params']:,}{frozen}")
        if e["resumed_from"] is not None:
            print(f"resumed after epoch {e['resumed_from']}")

    def on_epoch(self, e):
        self.new_bar(e["steps"], desc=f"epoch {e['epoch']}/{e['epochs']}", unit="step", dynamic_ncols=True)

    def on_progress(self, e):
        if self.bar is not None:
            self.bar.update(e["step"] - self.bar.n)
            self.bar.set_postfix(loss=f"{e['loss']:.4f}", acc=f"{e['acc']:.4f}",
                                 img_s=f"{e['images_per_s']:.0f}" if e["images_per_s"] else "-", refresh=False)

    def on_epoch_end(self, e):
        self.close()
        r = e["row"]
        val = f"val loss {r['val_loss']:.4f} acc {r['val_acc']:.4f}" if r["val_acc"] is not None else "no validation"
        print(f"epoch {r['epoch']}: lr {r['lr']:.3g}  train loss {r['train_loss']:.4f} acc {r['train_acc']:.4f}  "
              f"{val}  {r['images_per_s']:.0f} img/s  {r['seconds']:.1f} s", flush=True)


def add_eval(sub):
    p = sub.add_parser("eval", help="accuracy, per-class accuracy and confusion matrix of a checkpoint")
    spec_options(p)
    p.add_argument("--weights", required=True, help="weights.safetensors or checkpoint.safetensors of cnndsl "
                   "train, or any checkpoint of this spec")
    p.add_argument("--data", required=True, help="as for train")
    p.add_argument("--split", choices=("val", "train", "all"),
                   help="default: val on the data it was trained on, else all")
    p.add_argument("--batch", type=O.batch, default=256, help="images per forward pass (default 256)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--out", metavar="DIR", help="write confusion.png and eval.json here")


def cmd_eval(args):
    from ..train import evaluate
    net = load(args)
    if args.out:
        refuse_overwrite(net, *(os.path.join(args.out, f) for f in ("eval.json", "confusion.png")), flag="--out")
    print_warnings(net)
    r = evaluate(net, args.weights, args.data, split=args.split, batch=args.batch, device=args.device, out=args.out)
    from ..train.evaluation import accuracy_text, text
    for line in r["data"]:
        print(f"data: {line}")
    print(text(r), end="")
    for f in r["files"]:
        print(f"wrote {f}", file=sys.stderr)
    print(accuracy_text(r), end="")
    sys.stdout.flush()
    for w in r["warnings"]:  # after the accuracy, which it qualifies
        print(f"cnndsl: warning: {w}", file=sys.stderr)
    return 0
