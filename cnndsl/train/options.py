"""The training options, their defaults, and what a resumed run must keep (no torch).

    >>> o = resolve({"opt": "momentum"}, epochs_default=10)
    >>> o["lr"], o["momentum"], o["batch"], o["threads"]
    (0.01, 0.9, 32, 1)

An option left as None takes, in order: the checkpoint's value (on --resume), then the
default. Resolved values are stored in the checkpoint, so a resumed run continues with
the schedule it started with (a step size or decay computed from the first run's epochs).

`threads` (torch's intra-op threads) defaults to 1, not to torch's one per core: a small net gains
little from a second thread, and two threads on cores another process also uses spin against each
other (LeNet-5 on digits, 2-core machine: ~4,000 images/s with one thread, 24-1,000 with two,
depending on the other load; README, Training). One thread is also the same on every machine, and
results are bit-identical only for the same seed, device and thread count.
"""
from __future__ import annotations

from ..errors import CnnError

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "adadelta", "rmsprop", "adam", "adamw")
DEFAULT_LR = {"sgd": 0.01, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01, "adadelta": 1.0,
              "rmsprop": 0.001, "adam": 0.003, "adamw": 0.003}
WITH_MOMENTUM = {"momentum": 0.9, "nesterov": 0.9, "rmsprop": 0.0}
SCHEDULES = ("none", "step", "exp", "cosine", "plateau")
AUGMENTS = ("none", "flip", "crop", "flip+crop")
DEVICES = ("auto", "cpu", "cuda")

DEFAULTS = {"epochs": 10, "batch": 32, "opt": "adam", "lr": None, "momentum": None, "weight_decay": 0.0,
            "schedule": "none", "step_size": None, "gamma": None, "patience": 2, "warmup": 0, "augment": "none",
            "label_smoothing": 0.0, "device": "auto", "amp": False, "channels_last": False, "compile": False,
            "seed": 0, "workers": None, "val_fraction": 0.2, "freeze": None, "init": None, "threads": 1}
# what a resumed run must share with the run it continues (epochs may grow; device, workers, threads may change)
KEPT = ("batch", "opt", "lr", "momentum", "weight_decay", "schedule", "step_size", "gamma", "patience", "warmup",
        "augment", "label_smoothing", "seed", "val_fraction", "freeze", "amp", "data", "world_size")


def resolve(given: dict, saved: dict | None = None, epochs_default=10) -> dict:
    """Options with every None filled in (see the module docstring); a CnnError for a bad value, or
    for one that contradicts the checkpoint being resumed."""
    saved = saved or {}
    unknown = set(given) - set(DEFAULTS) - {"data", "world_size"}
    if unknown:
        raise CnnError(f"unknown training options: {', '.join(sorted(unknown))}", usage=True,
                       hint="known: " + ", ".join(DEFAULTS))
    clash = [k for k in KEPT if k in saved and given.get(k) is not None and _norm(given[k]) != _norm(saved[k])]
    if clash:
        raise CnnError("--resume continues the run in the checkpoint, which differs in " + "; ".join(
            f"{k} ({_show(saved[k])} there, {_show(given[k])} here)" for k in clash), usage=True,
            hint="leave these options out to keep the checkpoint's values, or train afresh in another --out "
                 "(--init CKPT starts from its weights)")
    o = {k: (given.get(k) if given.get(k) is not None else saved.get(k, v)) for k, v in DEFAULTS.items()}
    for k in ("data", "world_size"):
        o[k] = given.get(k) if given.get(k) is not None else saved.get(k)
    if o["epochs"] is None:
        o["epochs"] = epochs_default
    _check(o)
    if o["lr"] is None:
        o["lr"] = DEFAULT_LR[o["opt"]]
    if o["momentum"] is None:
        o["momentum"] = WITH_MOMENTUM.get(o["opt"], 0.0)
    if o["schedule"] == "step" and o["step_size"] is None:
        o["step_size"] = max(1, o["epochs"] // 3)
    if o["gamma"] is None:
        o["gamma"] = {"step": 0.1, "plateau": 0.1, "exp": 0.1 ** (1 / max(1, o["epochs"]))}.get(o["schedule"])
    return o


def _norm(v):
    return list(v) if isinstance(v, tuple) else v


def _show(v):
    return "none" if v is None else str(v)


def _check(o):
    def bad(msg, hint=None):
        raise CnnError(msg, usage=True, hint=hint)
    for k, choices in (("opt", OPTIMIZERS), ("schedule", SCHEDULES), ("augment", AUGMENTS), ("device", DEVICES)):
        if o[k] not in choices:
            bad(f"--{k.replace('_', '-')} {o[k]}: not one of {', '.join(choices)}")
    for k in ("epochs", "batch"):
        if not isinstance(o[k], int) or o[k] < 1:
            bad(f"--{k} must be a whole number of at least 1, not {o[k]}")
    if not isinstance(o["warmup"], int) or o["warmup"] < 0:
        bad(f"--warmup must be a whole number of steps (0: none), not {o['warmup']}")
    if not isinstance(o["threads"], int) or o["threads"] < 1:
        bad(f"--threads must be a whole number of at least 1, not {o['threads']}",
            hint="1 (the default) suits small nets and shared machines; more for a large net on idle cores")
    if o["workers"] is not None and (not isinstance(o["workers"], int) or o["workers"] < 0):
        bad(f"--workers must be 0 or more, not {o['workers']}")
    if o["lr"] is not None and not o["lr"] > 0:
        bad(f"--lr must be positive, not {o['lr']}")
    if o["momentum"] is not None:
        if o["opt"] not in WITH_MOMENTUM and o["momentum"]:
            bad(f"--momentum applies to momentum, nesterov and rmsprop, not to {o['opt']}",
                hint="adam and adamw take their momentum from betas (0.9, 0.999); choose --opt momentum for SGD with momentum")
        if not 0 <= o["momentum"] < 1 or (o["opt"] == "nesterov" and o["momentum"] == 0):
            bad(f"--momentum must be in [0, 1) (and above 0 for nesterov), not {o['momentum']}")
    if not o["weight_decay"] >= 0:
        bad(f"--weight-decay must be 0 or more, not {o['weight_decay']}")
    if not 0 <= o["label_smoothing"] < 1:
        bad(f"--label-smoothing must be in [0, 1), not {o['label_smoothing']}")
    if not 0 <= o["val_fraction"] < 1:
        bad(f"the validation fraction must be in [0, 1), not {o['val_fraction']}")
