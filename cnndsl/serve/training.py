"""Live training for the page: one run at a time, on a thread, through the trainer of `cnndsl train`.

The run is `cnndsl.train.train(net, data, out=..., callback=...)` itself, with the options and
the output folder of `cnndsl train --out` (metrics.jsonl, checkpoint.safetensors,
weights.safetensors, curves.png, spec.net, run.json), so a run started here resumes from the
command line and the other way round. The callback turns the trainer's events into what the page
draws, published to every listener (server-sent events, app.py):

    run        the run's state: idle, running, stopping, stopped, done, failed (with the error's text)
    start      the run as set up: parameters, data preparation, device, options
    progress   running loss and accuracy, images/s, steps done, the time left (ETA)
    epoch_end  the epoch's row of metrics.jsonl
    visuals    the first layer's filters and a sample's activation maps (visuals.py), at most
               every VISUAL_EVERY_S seconds and after each epoch
    end        the final row and the files written

Stop asks the callback to raise at the trainer's next event (a few dozen times an epoch): the run
ends with the last finished epoch's checkpoint on disk, and resume continues it (`train(...,
resume=True)`, as `cnndsl train --resume`). A second start while one runs is refused (Busy).
"""
from __future__ import annotations

import json
import os
import threading
import time

from ..errors import CnnError

VISUAL_EVERY_S = 2.5
MAX_LOG = 4000            # events replayed to a page that connects during a run; progress is thinned past it
OPTIONS = ("epochs", "batch", "opt", "lr", "momentum", "weight_decay", "schedule", "warmup", "augment",
           "label_smoothing", "device", "seed", "val_fraction", "threads")
NAMED_DATA = ("digits", "synthetic")


class Busy(Exception):
    pass


class _Stopped(Exception):
    """Raised from the trainer's callback when the page asked the run to stop."""


class Runner:
    def __init__(self, tree):
        self.tree = tree
        self._lock = threading.RLock()
        self._thread = None
        self._stop = threading.Event()
        self._log: list = []          # (seq, name, json text) of the current run
        self._visuals = None          # the latest visuals event (replayed alone)
        self._seq = 0
        self._subs: list = []         # (event loop, asyncio.Queue) of each listener
        self.status = {"id": 0, "state": "idle"}
        self._runs = 0
        self._clock = {}
        self._graph = self._module = self._sample = None

    # ---- control ------------------------------------------------------------------------------------
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, net, rel, out, data, options, resume=False) -> dict:
        """Start training `net` (the editor's text of `rel`) on `data` into `out` (under DIR)."""
        given = _options(options)
        data_arg = self._data(data)
        out_full = self.tree.resolve(out)
        with self._lock:
            if self.running():
                s = self.status
                raise Busy(f"a training run is in progress ({s.get('out')}, epoch {s.get('epoch') or 0} of "
                           f"{s.get('epochs') or '?'}); stop it first, or wait for it to finish")
            self._stop.clear()
            self._log, self._visuals, self._clock = [], None, {}
            self._graph, self._module, self._sample = net.graph, None, None
            self._runs += 1
            self.status = {"id": self._runs, "state": "running", "path": rel, "out": self.tree.relative(out_full), "data": data,
                           "options": given, "resume": bool(resume), "epoch": None, "epochs": given.get("epochs"),
                           "error": None, "files": []}
            self._thread = threading.Thread(target=self._main, args=(net, data_arg, out_full, given, resume),
                                            name="cnndsl-train", daemon=True)
            self._thread.start()
        self._publish("run", self.status)
        return dict(self.status)

    def stop(self) -> dict:
        with self._lock:
            if self.running() and not self._stop.is_set():
                self._stop.set()
                self.status = {**self.status, "state": "stopping"}
                self._publish("run", self.status)
            return dict(self.status)

    def join(self, timeout=None):
        t = self._thread
        if t is not None:
            t.join(timeout)

    def _data(self, data):
        if not isinstance(data, str) or not data:
            raise CnnError("no data chosen", usage=True, hint="digits, synthetic, or a folder or .npz under the folder")
        if data in NAMED_DATA or (data.startswith("synthetic:") and data[10:].isdigit()):
            return data
        return self.tree.resolve(data.rstrip("/"))

    def _main(self, net, data, out, given, resume):
        from ..train import train
        try:
            r = train(net, data, out=out, resume=resume, callback=self._event, **given)
            state, error = "done", None
            files = [self.tree.relative(f) for f in r["files"]]
        except _Stopped:
            state, error, files = "stopped", None, self.status.get("files", [])
        except CnnError as e:
            state, error, files = "failed", e.render().replace(self.tree.root + os.sep, ""), []
        except Exception as e:  # a bug of ours: said in a line, as the CLI says it
            state, error, files = "failed", f"internal error: {type(e).__name__}: {e} (a bug in cnndsl)", []
        with self._lock:
            self._module = self._sample = None  # the model's memory goes back once the run is over
            self.status = {**self.status, "state": state, "error": error, "files": files}
            self._publish("run", self.status)

    # ---- the trainer's events -------------------------------------------------------------------------
    def _event(self, e):
        if self._stop.is_set():
            raise _Stopped()
        if e.get("rank", 0) != 0:
            return
        getattr(self, "_on_" + e["event"], lambda e: None)(e)

    def _on_start(self, e):
        self._module, self._sample = e.get("module"), e.get("sample")
        c = self._clock
        c.update(t0=time.perf_counter(), first=e["resumed_from"] or 0, epochs=e["options"]["epochs"], last_visual=0.0)
        self.status = {**self.status, "epochs": e["options"]["epochs"], "epoch": e["resumed_from"] or 0}
        keep = ("device", "data", "options", "params", "trainable_params", "resumed_from", "notes", "warnings",
                "train_samples", "val_samples", "threads", "amp")
        self._publish("start", {k: e.get(k) for k in keep})

    def _on_epoch(self, e):
        self._clock.update(steps=e["steps"], epoch=e["epoch"])
        self.status = {**self.status, "epoch": e["epoch"]}

    def _on_progress(self, e):
        c = self._clock
        done = (e["epoch"] - 1 - c["first"]) * e["steps"] + e["step"]
        total = (c["epochs"] - c["first"]) * e["steps"]
        elapsed = time.perf_counter() - c["t0"]
        eta = elapsed / done * (total - done) if done else None
        self._publish("progress", {"epoch": e["epoch"], "epochs": c["epochs"], "step": e["step"], "steps": e["steps"],
                                   "x": e["epoch"] - 1 + e["step"] / e["steps"], "loss": e["loss"], "acc": e["acc"],
                                   "images_per_s": e["images_per_s"], "eta_s": eta, "elapsed_s": elapsed})
        if time.perf_counter() - c["last_visual"] >= VISUAL_EVERY_S:
            self._look(e["epoch"], e["step"] / e["steps"])

    def _on_epoch_end(self, e):
        self._publish("epoch_end", e["row"])
        self._look(e["row"]["epoch"], 1.0)

    def _on_end(self, e):
        self._publish("end", {"final": e["final"], "files": [self.tree.relative(f) for f in e["files"]]})

    def _look(self, epoch, fraction):
        """The filters and activation maps now (a forward pass of one sample, in eval mode)."""
        if self._module is None or self._sample is None:
            return
        from . import visuals
        graph = self._graph
        self._visuals = self._publish("visuals", {
            "epoch": epoch, "x": epoch - 1 + fraction, "filters": visuals.filters(self._module, graph),
            "activations": visuals.activations(self._module, graph, self._sample)}, log=False)
        self._clock["last_visual"] = time.perf_counter()

    # ---- listeners ------------------------------------------------------------------------------------------
    def subscribe(self, loop, queue):
        """Add a listener; returns what it missed (the run's state, its events so far, the latest visuals)."""
        with self._lock:
            self._subs.append((loop, queue))
            state = (self._seq, "run", json.dumps(self.status))
            return [state, *self._log] + ([self._visuals] if self._visuals else [])

    def unsubscribe(self, queue):
        with self._lock:
            self._subs = [(lo, q) for lo, q in self._subs if q is not queue]

    def _publish(self, name, data, log=True):
        with self._lock:
            self._seq += 1
            item = (self._seq, name, json.dumps(data, default=str))
            if log:
                self._log.append(item)
                if len(self._log) > MAX_LOG:
                    self._thin()
            for loop, q in list(self._subs):
                try:
                    loop.call_soon_threadsafe(_put, q, item)
                except RuntimeError:  # its loop is closed: the page is gone
                    self._subs.remove((loop, q))
            return item

    def _thin(self):
        """Every other progress event dropped: the curve keeps its shape, the log its bound."""
        odd = [False]

        def keep(item):
            if item[1] != "progress":
                return True
            odd[0] = not odd[0]
            return odd[0]
        self._log = [i for i in self._log if keep(i)]


def _put(queue, item):
    try:
        queue.put_nowait(item)
    except Exception:  # a listener that stopped reading: it gets the replay when it reconnects
        pass


def _options(options) -> dict:
    """The page's training options, checked as `cnndsl train` checks its own (cnndsl.train.options)."""
    from ..train.options import resolve
    if not isinstance(options, dict):
        raise CnnError("the training options must be an object", usage=True)
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise CnnError(f"unknown training options: {', '.join(unknown)}", usage=True, hint="known: " + ", ".join(OPTIONS))
    given = {k: v for k, v in options.items() if v is not None and v != ""}
    resolve({**given, "data": "digits", "world_size": 1})  # raises the CLI's error for a bad value
    return given
