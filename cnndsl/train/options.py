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

import math

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


def check_recorded(saved, where) -> dict:
    """The options a checkpoint recorded (`where`), checked as given ones are: a CnnError naming the
    checkpoint for anything malformed (a hand-edited file)."""
    if not isinstance(saved, dict):
        raise CnnError(f"{where} records options that cannot be used: not a table of options, but {_show(saved)}",
                       usage=True, hint="was the file edited? train afresh into another --out")
    o = {**DEFAULTS, **{k: v for k, v in saved.items() if k in DEFAULTS}, "data": saved.get("data")}
    o["epochs"] = 1 if o["epochs"] is None else o["epochs"]
    _check(o, where)
    return saved


def _norm(v):
    return list(v) if isinstance(v, tuple) else v


def _show(v):
    return "none" if v is None else str(v)


# whole-number options: their least value (seed also has a most, MAX_SEED; the command line's
# cnndsl.options takes it from here: one definition)
WHOLE = {"epochs": 1, "batch": 1, "warmup": 0, "threads": 1, "workers": 0, "seed": 0, "patience": 0, "step_size": 1}
MAX_SEED = 2**32 - 1  # numpy's generators take no more (and no negative seed)
OPTIONAL = ("workers", "step_size", "gamma", "lr", "momentum")  # None: filled in by resolve


def _check(o, where=None):
    """The one place an option's value is checked: choices, whole numbers, and real numbers that must be
    finite and in range (`--lr inf` would train NaN weights, `--weight-decay nan` too). `where` names
    the checkpoint the options were recorded in, for options that come from one."""
    def bad(msg, hint=None):
        if where:
            raise CnnError(f"{where} records options that cannot be used: {msg}", usage=True,
                           hint="was the file edited? train afresh into another --out (--init takes its weights)")
        raise CnnError(msg, usage=True, hint=hint)
    for k, choices in (("opt", OPTIMIZERS), ("schedule", SCHEDULES), ("augment", AUGMENTS), ("device", DEVICES)):
        if not isinstance(o[k], str) or o[k] not in choices:
            bad(f"--{_flag(k)} {o[k]}: not one of {', '.join(choices)}")
    for k, least in WHOLE.items():
        v = o[k]
        if v is None and k in OPTIONAL:
            continue
        if not _whole(v) or v < least or (k == "seed" and v > MAX_SEED):
            what = {"warmup": "a whole number of steps (0: none)", "workers": "0 or more",
                    "seed": f"a whole number in [0, {MAX_SEED}]"}.get(k, f"a whole number of at least {least}")
            bad(f"--{_flag(k)} must be {what}, not {_show(v)}",
                hint="1 (the default) suits small nets and shared machines; more for a large net on idle cores"
                if k == "threads" else None)
    for k in ("freeze", "init", "data"):
        if o.get(k) is not None and not isinstance(o[k], str):
            bad(f"--{k} must be text, not {_show(o[k])}")
    for k in ("amp", "channels_last", "compile"):
        if not isinstance(o[k], bool):
            bad(f"--{_flag(k)} is on or off, not {_show(o[k])}")
    # real numbers: finite, and within (lo, hi) / [lo, hi)
    _real(o, "lr", bad, above=0, what="a finite number above 0")
    if o["momentum"] is not None:
        if o["opt"] not in WITH_MOMENTUM and o["momentum"]:
            bad(f"--momentum applies to momentum, nesterov and rmsprop, not to {o['opt']}",
                hint="adam and adamw take their momentum from betas (0.9, 0.999); choose --opt momentum for SGD with momentum")
        _real(o, "momentum", bad, least=0, below=1, what="in [0, 1) (and above 0 for nesterov)")
        if o["opt"] == "nesterov" and o["momentum"] == 0:
            bad("--momentum must be in [0, 1) (and above 0 for nesterov), not 0")
    _real(o, "weight_decay", bad, least=0, what="a finite number, 0 or more")
    _real(o, "gamma", bad, above=0, what="a finite number above 0")
    _real(o, "label_smoothing", bad, least=0, below=1, what="in [0, 1)")
    if not _number(o["val_fraction"]) or not 0 <= o["val_fraction"] < 1:
        bad(f"the validation fraction must be in [0, 1), not {_show(o['val_fraction'])}")


def _real(o, k, bad, least=None, above=None, below=None, what=""):
    v = o[k]
    if v is None and k in OPTIONAL:
        return
    if not _number(v) or (least is not None and v < least) or (above is not None and not v > above) \
            or (below is not None and not v < below):
        bad(f"--{_flag(k)} must be {what}, not {_show(v)}")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _whole(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _flag(k):
    return k.replace("_", "-")
