"""Optimizers and learning-rate schedules by name: torch.optim and torch.optim.lr_scheduler, nothing hand-written.

    >>> import torch
    >>> p = [torch.nn.Parameter(torch.zeros(2))]
    >>> o = {"opt": "nesterov", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0, "schedule": "step",
    ...      "step_size": 3, "gamma": 0.1, "patience": 2, "warmup": 0, "epochs": 9}
    >>> opt = optimizer(p, o); type(opt).__name__, opt.defaults["nesterov"], type(schedule(opt, o)).__name__
    ('SGD', True, 'StepLR')

Schedules step once an epoch: `step` multiplies the rate by gamma (0.1) every step_size
epochs (a third of the run), `exp` by gamma every epoch (0.1 over the whole run), `cosine`
anneals to 0 over the run, `plateau` divides it by 10 when the validation accuracy has not
improved for `patience` (2) epochs. `warmup` N ramps the rate up linearly over the first N
optimizer steps (LinearLR, stepped every batch), before and on top of the schedule.
"""
from __future__ import annotations

import torch


def optimizer(params, o) -> torch.optim.Optimizer:
    lr, wd, m = o["lr"], o["weight_decay"], o["momentum"]
    name = o["opt"]
    if name in ("sgd", "momentum", "nesterov"):
        return torch.optim.SGD(params, lr=lr, momentum=0.0 if name == "sgd" else m, nesterov=name == "nesterov",
                               weight_decay=wd)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=wd)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, weight_decay=wd)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=m, weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    return torch.optim.AdamW(params, lr=lr, weight_decay=wd)


def schedule(opt, o):
    """The per-epoch scheduler, or None."""
    s = o["schedule"]
    S = torch.optim.lr_scheduler
    if s == "step":
        return S.StepLR(opt, step_size=o["step_size"], gamma=o["gamma"])
    if s == "exp":
        return S.ExponentialLR(opt, gamma=o["gamma"])
    if s == "cosine":
        return S.CosineAnnealingLR(opt, T_max=o["epochs"])
    if s == "plateau":
        return S.ReduceLROnPlateau(opt, mode="max", factor=o["gamma"], patience=o["patience"])
    return None


def warmup(opt, o):
    """The per-step warmup scheduler, or None."""
    if not o["warmup"]:
        return None
    return torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / (o["warmup"] + 1), total_iters=o["warmup"])


def step_epoch(sched, val_acc):
    if sched is None:
        return
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        sched.step(val_acc)
    else:
        sched.step()
