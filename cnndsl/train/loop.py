"""`train`: a spec's network trained on data, with checkpoints that resume exactly.

    >>> import cnndsl
    >>> net = cnndsl.loads("input 8x8x1\\nCONV(4, 3) - RELU - FC(3)")
    >>> r = train(net, "synthetic:96", epochs=2, batch=32, seed=0)
    >>> [row["epoch"] for row in r["history"]], sorted(r["history"][0])[:4]
    ([1, 2], ['epoch', 'images_per_s', 'lr', 'seconds'])

`train(net, data, out=None, resume=False, callback=None, **options)` (options: cnndsl.train.options)
returns {"history": [one row per epoch], "final": the last row, "module": the trained module,
"files": what it wrote, "data": how the data was prepared, "init": the --init load report, "frozen",
"params", "trainable_params", "resumed_from", "notes", "rank", "world_size"}. Each row holds epoch, lr,
train_loss, train_acc, val_loss, val_acc, images_per_s (training images a second, all ranks),
train_seconds, seconds (the epoch with its validation).

Nothing prints. `callback(event)` receives dicts: "start" (the run as set up; its "module" is the
model being trained and "sample" one prepared input, NCHW, for a live view such as `cnndsl serve`'s
filters and activation maps), "epoch" (its number,
steps, this rank's sample indices), "progress" (running loss, accuracy and images/s, a few dozen times
an epoch), "epoch_end" (the row, after its checkpoint is written) and "end"; on every rank, each with
its "rank". An exception from the callback stops the run (the last epoch's checkpoint stays).

Exactness: the global torch RNG is seeded (dropout draws from it) and checkpointed with the optimizer,
schedules and weights after every epoch; batches and augmentation are seeded by (seed, epoch), so on
one CPU a run resumed after epoch k ends with the same bits as one never interrupted. What is
reproducible: the same weights, bit for bit, for the same seed, device and thread count (`threads`,
default 1; torch's thread count is set for the run and restored after it); run.json and the
checkpoint record all three, with the torch version (`reproducibility`).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time

import torch
from torch import nn

from .. import weights as W
from ..errors import CnnError
from ..files import atomic_write
from ..analysis.analyze import analyze
from ..memory import OPTIMIZER_STATES, require, tensor_sizes
from ..outputs import check_run_folder, clear_run, folder_lock, same_file, spec_files
from . import checkpoint as C, data as D, distributed, freeze as F, loaders, optim, options as O, plots

# curves.png is redrawn after the last epoch and after any epoch ending this long after the last drawing: a
# drawing costs ~0.25-0.35 s, as much as a whole LeNet-5 epoch on digits (metrics.jsonl is written every epoch)
PLOT_EVERY_S = 30.0


def train(net, data, out=None, resume=False, callback=None, overwrite=False, **given):
    out = os.fspath(out) if out is not None else None
    for flag, on in (("--resume", resume), ("--overwrite", overwrite)):
        if on and out is None:
            raise CnnError(f"{flag} needs --out DIR, the folder of the run to " + ("continue" if resume else "replace"),
                           usage=True)
    with _out_folder(net, out, resume, overwrite) as clear:
        return _train(net, data, out, resume, callback, clear, given)


@contextlib.contextmanager
def _out_folder(net, out, resume, overwrite):
    """The run folder, on rank 0 (the rank that writes): locked for the whole run (a second training
    into it is refused with this one's pid), then refused if it holds another run and neither
    `resume` nor `overwrite` was given (cnndsl.outputs). Yields what clears the previous run under
    `overwrite`, called just before the first file is written: a run that fails to start (bad data)
    leaves the old one as it was."""
    if out is None or distributed.env_rank() != 0:
        yield None
        return
    sources = spec_files(net)
    check_run_folder(out, sources, resume=True)  # a file where the folder goes: refused before the lock makes it
    with folder_lock(out, "another training"):
        check_run_folder(out, sources, resume=resume, overwrite=overwrite)
        yield (lambda: clear_run(out, sources)) if overwrite else None


def _train(net, data, out, resume, callback, clear, given):
    emit = callback or (lambda event: None)
    ck = None
    notes = []
    if resume:
        if out is None:
            raise CnnError("--resume needs --out DIR, the folder of the run to continue", usage=True)
        path = C.find(out)
        if path is None:
            notes.append(f"--resume: no checkpoint in {out} yet, so the run starts from the beginning")
        else:
            ck = C.resume_from(path)
            notes += C.check_same_spec(ck, net)
    ctx = distributed.context(given.get("device") or (ck.info("options").get("device") if ck else None) or "auto")
    before = torch.get_num_threads()
    try:
        o = O.resolve({**given, "data": os.fspath(data), "world_size": ctx.world},
                      ck.info("options") if ck else None)
        torch.set_num_threads(o["threads"])  # for this run only: the caller's count comes back below
        return _run(net, o, out, ck, ctx, emit, notes, clear)
    finally:
        torch.set_num_threads(before)
        ctx.close()


def reproducibility(o, ctx) -> dict:
    """What a run's bits depend on besides its options and data: the same seed, device, thread count
    (and torch version) give the same weights; another thread count may sum in another order."""
    return {"seed": o["seed"], "device": str(ctx.device), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def _run(net, o, out, ck, ctx, emit, notes, clear=None):
    if ctx.device.type == "cpu":  # before the module and the data: the report's estimate must fit
        require_training(net.graph, o["batch"], o["opt"])
    torch.manual_seed(o["seed"])  # dropout's RNG; restored from the checkpoint on resume
    model = net.to_torch(seed=o["seed"], logits=True)
    init_report, init_source, warnings = None, None, []
    if o["init"] and ck is None:
        init_source = C.weights_source(o["init"], "--init")
        init_report = W.load_into(model, init_source, strict=False)
    frozen = F.frozen_layers(net.graph, o["freeze"])
    frozen_bn = _freeze(model, frozen)
    d = D.load(o["data"], net.graph, seed=o["seed"], val_fraction=o["val_fraction"])
    if init_source is not None:
        warnings += _init_range_warning(init_source, o["init"], d)
    params = sum(p.numel() for p in model.parameters())
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise CnnError(f"--freeze {o['freeze']} leaves nothing to train", usage=True,
                       hint="freeze fewer layers (..NAME freezes everything up to NAME)")
    model.to(ctx.device)
    if o["channels_last"]:
        model.to(memory_format=torch.channels_last)
    opt = optim.optimizer(trainable, o)
    sched, warm = optim.schedule(opt, o), optim.warmup(opt, o)
    amp_dtype, scaler = _amp(o, ctx)
    history, start = [], 0
    if ck is not None:
        start, history = _restore(ck, model, opt, sched, warm, scaler, ctx)
    run_model = distributed.wrap(model, ctx)
    if o["compile"]:
        run_model = torch.compile(run_model)
    workers = o["workers"] if o["workers"] is not None else 0
    pin = ctx.device.type == "cuda"
    files = []
    repro = reproducibility(o, ctx)
    meta = {"epoch": start, "options": o, "data": d.info(), "layers": C.layer_rows(net), "reproducibility": repro}
    if ctx.main and out is not None:
        gone = clear() if clear else []
        if gone:
            notes.append(f"--overwrite: the previous run in {out} was removed ({', '.join(gone)})")
        files += _write_spec(out, net, o, d, repro)
    emit({"event": "start", "rank": ctx.rank, "world_size": ctx.world, "device": str(ctx.device), "threads": repro["threads"],
          "backend": ctx.backend, "data": d.description, "options": o, "params": params,
          "trainable_params": sum(p.numel() for p in trainable), "frozen": frozen, "init": init_report,
          "resumed_from": start if ck is not None else None, "notes": notes, "warnings": warnings,
          "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else None,
          "train_samples": len(d.y_train), "val_samples": len(d.y_val),
          "module": model, "sample": d.x_val[:1] if len(d.y_val) else d.x_train[:1]})
    last_plot = time.perf_counter()
    crit = nn.CrossEntropyLoss(label_smoothing=o["label_smoothing"])
    plain = nn.CrossEntropyLoss(reduction="sum")
    for epoch in range(start, o["epochs"]):
        t0 = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
        indices = []
        batches = loaders.loader(d.x_train, d.y_train, o["batch"], o["seed"], epoch, True, o["augment"],
                                 ctx.rank, ctx.world, workers, pin, indices)
        emit({"event": "epoch", "rank": ctx.rank, "epoch": epoch + 1, "epochs": o["epochs"],
              "steps": len(batches), "indices": indices})
        run_model.train()
        for m in frozen_bn:
            m.eval()
        try:
            tl, tc, tn = _train_epoch(run_model, batches, opt, crit, warm, scaler, amp_dtype, o, ctx, emit, epoch)
        except _Diverged as e:
            raise _diverged(e, epoch, lr, out, history) from None
        train_s = time.perf_counter() - t0
        if not all(bool(torch.isfinite(v).all()) for v in model.state_dict().values() if v.is_floating_point()):
            raise _diverged(_Diverged(None, "the weights hold NaN or inf"), epoch, lr, out, history)
        vl, vc, vn = _validate(run_model, d, o, ctx, plain, amp_dtype)
        if vn and not math.isfinite(vl):
            raise _diverged(_Diverged(None, f"the validation loss is {vl}"), epoch, lr, out, history)
        val_acc = vc / vn if vn else None
        optim.step_epoch(sched, val_acc if val_acc is not None else tc / max(1, tn))
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": tl / max(1, tn), "train_acc": tc / max(1, tn),
               "val_loss": vl / vn if vn else None, "val_acc": val_acc,
               "images_per_s": tn / train_s if train_s > 0 else None, "train_seconds": train_s,
               "seconds": time.perf_counter() - t0}
        history.append(row)
        if ctx.main and out is not None:
            state = _state(opt, sched, warm, scaler, history, epoch + 1)
            plot = epoch + 1 == o["epochs"] or time.perf_counter() - last_plot >= PLOT_EVERY_S
            last_plot = time.perf_counter() if plot else last_plot
            files = sorted(set(files) | set(_write_epoch(out, model, net, state, {**meta, "epoch": epoch + 1,
                                                                                   "val_acc": val_acc}, history, plot)))
        emit({"event": "epoch_end", "rank": ctx.rank, "row": row})
    result = {"history": history, "final": history[-1] if history else None, "module": model, "files": files,
              "data": d.description, "classes": d.classes, "init": init_report, "frozen": frozen,
              "params": params, "trainable_params": sum(p.numel() for p in trainable),
              "resumed_from": start if ck is not None else None, "notes": notes, "rank": ctx.rank,
              "world_size": ctx.world, "device": str(ctx.device)}
    emit({"event": "end", "rank": ctx.rank, "final": result["final"], "files": files})
    ctx.barrier()  # no rank leaves the process group while rank 0 still writes (gloo aborts a peer that does)
    return result


# ---- one epoch ---------------------------------------------------------------------------------------
def _train_epoch(model, batches, opt, crit, warm, scaler, amp_dtype, o, ctx, emit, epoch):
    dev = ctx.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.int64, device=dev)
    n, steps = 0, len(batches)
    every = max(1, steps // 40)
    t0 = time.perf_counter()
    # a loss that is NaN or inf stops the run before anything of the epoch is written: one process on the
    # CPU looks at every step's loss (3 us); a GPU or torchrun at the running sum, read with the progress
    # (a sync it makes anyway) and summed over the ranks, so that every rank stops at the same step
    exact, checked = ctx.world == 1 and dev.type == "cpu", 0
    for step, (xb, yb) in enumerate(batches):
        xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
        if o["channels_last"] and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(xb).flatten(1)
            loss = crit(logits, yb)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        if warm is not None and warm.last_epoch < o["warmup"]:
            warm.step()
        b = len(yb)
        n += b
        loss_sum += loss.detach() * b
        correct += (logits.detach().argmax(1) == yb).sum()
        if exact and not math.isfinite(loss.item()):
            raise _Diverged(f"{step + 1} of {steps}", f"the loss became {loss.item()}")
        if (step + 1) % every == 0 or step + 1 == steps:
            if not exact:
                _check_sum(loss_sum, checked, step, steps, ctx)
            checked = step + 1
            dt = time.perf_counter() - t0
            emit({"event": "progress", "rank": ctx.rank, "epoch": epoch + 1, "step": step + 1, "steps": steps,
                  "loss": loss_sum.item() / n, "acc": correct.item() / n,
                  "images_per_s": n * ctx.world / dt if dt > 0 else None})
    return tuple(ctx.sum([loss_sum.item(), correct.item(), n]))


class _Diverged(Exception):
    """A loss or weights no longer finite: `what`, at `step` ("3 of 40", "21..30 of 400"; None: at the
    end of the epoch)."""

    def __init__(self, step, what):
        super().__init__(step, what)
        self.step, self.what = step, what


def _check_sum(loss_sum, checked, step, steps, ctx):
    """The running loss summed over the ranks: NaN or inf since step `checked` stops every rank."""
    total = ctx.sum([loss_sum.item()])[0]
    if not math.isfinite(total):
        within = f"{step + 1}" if checked == step else f"{checked + 1}..{step + 1}"
        raise _Diverged(f"{within} of {steps}", f"the loss became {total}")


def _diverged(e, epoch, lr, out, history) -> CnnError:
    """The error that stops a run whose loss or weights stopped being finite; nothing of the epoch is written."""
    where = f"{e.what} at epoch {epoch + 1}" + (f", step {e.step}" if e.step else "")
    kept = (f"{os.path.join(out, C.CHECKPOINT)} still holds epoch {history[-1]['epoch']}" if out is not None and history
            else "no checkpoint was written" if out is not None else "the run stopped")
    return CnnError(f"training diverged: {where}; {kept}",
                    hint=f"lower --lr (it was {lr:g}), ramp it up with --warmup, or look for extreme values in the data")


@torch.no_grad()
def _validate(model, d, o, ctx, plain, amp_dtype):
    if not len(d.y_val):
        return 0.0, 0, 0
    model.eval()
    dev = ctx.device
    loss_sum, correct, n = 0.0, 0, 0
    for xb, yb in loaders.loader(d.x_val, d.y_val, max(o["batch"], 256), o["seed"], 0, False,
                                 rank=ctx.rank, world=ctx.world):
        xb, yb = xb.to(dev), yb.to(dev)
        if o["channels_last"] and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(xb).flatten(1).float()
        loss_sum += plain(logits, yb).item()
        correct += int((logits.argmax(1) == yb).sum())
        n += len(yb)
    loss_sum, correct, n = ctx.sum([loss_sum, correct, n])
    return loss_sum, int(correct), int(n)


# ---- set-up pieces ---------------------------------------------------------------------------------------
def _freeze(model, frozen) -> list:
    """Stop gradients of the frozen layers; return their BN modules (kept in eval mode while training)."""
    bns = []
    for name in frozen:
        m = model.get_submodule(name)
        for p in m.parameters(recurse=False):
            p.requires_grad_(False)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            bns.append(m)
    return bns


def _init_range_warning(source, o_init, d) -> list[str]:
    """--init from a cnndsl checkpoint: a note when the new data's raw values span another range than
    the data it was trained on (its filters were learnt on inputs of that scale)."""
    info = C.recorded(source, "data") or {}
    far = D.range_mismatch(info.get("range"), d.range, f"{o_init}'s training data ({info.get('source')})")
    return [f"{d.source}: {far}: is it the same kind of data? Its own statistics normalise it, which absorbs a "
            f"plain change of scale (0..255 against 0..1), not other content"] if far else []


def _amp(o, ctx):
    if not o["amp"]:
        return None, None
    if ctx.device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, None
        return torch.float16, torch.amp.GradScaler("cuda")
    return torch.bfloat16, None


def _state(opt, sched, warm, scaler, history, epoch) -> dict:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {"epoch": epoch, "optimizer": opt.state_dict(), "schedule": sched.state_dict() if sched else None,
            "warmup": warm.state_dict() if warm else None, "scaler": scaler.state_dict() if scaler else None,
            "rng": rng, "history": history}


def _restore(ck, model, opt, sched, warm, scaler, ctx):
    s = ck.state
    W.load_into(model, ck, strict=True)  # by name: a tensor of another shape or dtype is a CnnError naming it
    try:
        opt.load_state_dict(s["optimizer"])
        for obj, key in ((sched, "schedule"), (warm, "warmup"), (scaler, "scaler")):
            if obj is not None and s.get(key) is not None:
                obj.load_state_dict(s[key])
        torch.set_rng_state(s["rng"]["torch"])
        if "cuda" in s["rng"] and ctx.device.type == "cuda":
            torch.cuda.set_rng_state_all(s["rng"]["cuda"])
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as e:
        raise CnnError(f"{ck.path}: its training state does not fit this run ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:120] if str(e) else ''})", hint=C.EDITED) from None
    _check_optimizer_state(opt, ck.path)
    return s["epoch"], list(s["history"])


def _check_optimizer_state(opt, path):
    """load_state_dict takes any tensors: a momentum or moment buffer must be finite floats of its
    parameter's shape, else the first step fails (or trains NaN) long after the resume was accepted."""
    for p, state in opt.state.items():
        for k, v in state.items():
            if not isinstance(v, torch.Tensor):
                continue
            fits = v.dim() == 0 if k == "step" else v.shape == p.shape  # a step count is a scalar
            if not fits or not v.is_floating_point() or not bool(torch.isfinite(v).all()):
                raise CnnError(f"{path}: its optimizer state does not fit this run: `{k}` is "
                               f"{'x'.join(map(str, v.shape)) or 'a scalar'} {str(v.dtype).replace('torch.', '')} "
                               f"for a parameter of {'x'.join(map(str, p.shape))}", hint=C.EDITED)


# ---- files (rank 0) ---------------------------------------------------------------------------------------
def _write_spec(out, net, o, d, repro) -> list[str]:
    _discard_temporaries(out)
    run = {"spec": net.spec_info, "includes": _includes(net), "options": o, "reproducibility": repro,
           "data": d.info(), "data_preparation": d.description}
    paths = [os.path.join(out, "run.json")]  # first: a spec.net without a run.json beside it is nobody's run's
    atomic_write(paths[-1], (json.dumps(run, indent=1) + "\n").encode("utf-8"))
    text = _spec_text(net)
    spec = os.path.join(out, "spec.net")
    if text is not None and not any(same_file(spec, f) for f in spec_files(net)[:1]):  # the spec itself stays
        paths.append(spec)
        atomic_write(paths[-1], text.encode("utf-8"))
    return paths


def _discard_temporaries(out):
    """A kill -9 during an atomic write leaves its temporary file (never the target): remove ours."""
    ours = ("checkpoint.safetensors", "weights.safetensors", "metrics.jsonl", "curves.png", "run.json", "spec.net")
    if not os.path.isdir(out):
        return
    for f in os.listdir(out):
        if f.endswith(".tmp") and any(f.startswith(f".{name}.") for name in ours):
            try:
                os.unlink(os.path.join(out, f))
            except OSError:
                pass


def _spec_text(net):
    program = getattr(net, "_program", None)
    for node in (*getattr(program, "statements", ()), getattr(program, "net", None)):
        span = getattr(node, "span", None)
        if span is not None:
            return span.source.text
    return None


def _includes(net):
    program = getattr(net, "_program", None)
    return [getattr(st, "path") for st in getattr(program, "statements", ()) if type(st).__name__ == "Include"]


def _write_epoch(out, model, net, state, info, history, plot) -> list[str]:
    paths = C.save(out, model, net, state, info)
    metrics = os.path.join(out, "metrics.jsonl")
    atomic_write(metrics, "".join(json.dumps(r) + "\n" for r in history).encode("utf-8"))
    if not plot:
        return paths + [metrics]
    png = os.path.join(out, "curves.png")
    atomic_write(png, plots.curves(history, f"{net.name}"))
    return paths + [metrics, png]


def require_training(graph, batch: int, optimizer: str) -> None:
    """Refuse to train where the report's training estimate (weights, gradients, optimizer state, and
    the activations a backward pass keeps, at `batch`) cannot fit."""
    t = analyze(graph, batch=batch, optimizer=OPTIMIZER_STATES.get(optimizer, "adam"))
    if t["train_bytes"] <= 2**20:
        return
    heaviest = tensor_sizes(graph)[3]
    require(t["train_bytes"], f"training this network ({t['params']:,} parameters, batch {batch}, {optimizer}; "
                              f"as `cnndsl report --batch {batch}` estimates)",
            hint=f"train a smaller network (`{heaviest.name}` holds the most parameters) or a smaller --batch "
                 f"(cnndsl report --memory SIZE gives the largest batch that fits)", usage=False,
            span=heaviest.span if heaviest is not None else graph.input_span)
