"""`evaluate`: a trained checkpoint's accuracy on data, per class, and its confusion matrix.

    >>> import cnndsl, tempfile
    >>> from cnndsl.train import train
    >>> net = cnndsl.loads("input 8x8x1\\nCONV(4, 3) - RELU - FC(3)")
    >>> out = tempfile.mkdtemp()
    >>> _ = train(net, "synthetic:96", epochs=1, out=out)
    >>> r = evaluate(net, out + "/weights.safetensors", "synthetic:96")
    >>> r["split"], len(r["confusion"]), sum(map(sum, r["confusion"])) == r["n"]
    ('val', 3, True)

The data is prepared as training prepared it, from what the checkpoint records (its data source,
normalisation, seed and split): on the data it was trained on, the validation split is evaluated
(`split="all"` takes every sample); on other data, every sample, normalised with the checkpoint's
statistics. A checkpoint without that record (a .pt, a torchvision state_dict) is normalised with
the data's own statistics, and says so. When the data's raw values span a range far from the one
training saw (0..255 images against a net trained on 0..1), `warnings` says so: the checkpoint's
normalisation would be applied to values of another scale, and the accuracy would mean little.

With `out`, confusion.png and eval.json (the result) are written there. `text` and
`accuracy_text` are what `cnndsl eval` prints.
"""
from __future__ import annotations

import json
import os

import torch

from .. import weights as W
from ..errors import CnnError
from ..files import atomic_write
from . import checkpoint as C, data as D, plots


def evaluate(net, weights, data, split=None, batch=256, device="auto", out=None) -> dict:
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise CnnError(f"--batch must be a whole number of at least 1, not {batch}", usage=True)
    source = C.weights_source(weights, "--weights")
    info = C.recorded(source, "data")
    opts = C.recorded(source, "options") or {}
    data = os.fspath(data)
    same = D.same_source(info, data)  # imgs and imgs/ are one folder: its validation split is not new data
    split = split or ("val" if same else "all")
    if split not in ("val", "train", "all"):
        raise CnnError(f"split {split!r}: one of val, train, all", usage=True)
    if split != "all" and not same:
        raise CnnError(f"the {split} split is the one of the data the checkpoint was trained on "
                       f"({info.get('source') if info else 'not recorded'}), not {data}", usage=True,
                       hint="evaluate every sample (split all)")
    normalise = (info["mean"], info["std"]) if info else None
    seed, frac = opts.get("seed", 0), opts.get("val_fraction", 0.2)
    if split == "val" and frac == 0:
        raise CnnError(f"the checkpoint was trained on all of {data} (--val 0): it has no validation split", usage=True,
                       hint="--split train (or all) scores the samples it was trained on; evaluate it on other data")
    d = D.load(data, net.graph, seed=seed, val_fraction=frac if split != "all" else 0.0, normalise=normalise)
    _same_data(info, d, data, split)
    warnings = []
    if info is None:
        d.description.append("the checkpoint records no normalisation: the data's own statistics were used")
    else:
        far = D.range_mismatch(info.get("range"), d.range, f"its training data, {info['source']}")
        if far:
            warnings.append(f"{data}: {far}; the checkpoint's normalisation (mean {_few(info['mean'])}, std "
                            f"{_few(info['std'])}) was computed on that scale, so this accuracy says little: "
                            f"scale the data as training's was (e.g. 0..255 images / 255 for a net trained on 0..1)")
    x, y = {"val": (d.x_val, d.y_val), "train": (d.x_train, d.y_train), "all": (d.x_train, d.y_train)}[split]
    if split == "all":
        d.description = [f"evaluated: all {len(y)} samples" if line.startswith("split: ") else line
                         for line in d.description]
    model = net.to_torch(seed=0, logits=True)
    load_report = W.load_into(model, source, strict=True)
    dev = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    model.to(dev).eval()
    k = len(d.classes)
    conf = torch.zeros(k, k, dtype=torch.int64)
    with torch.no_grad():
        for i in range(0, len(y), batch):
            xb = torch.as_tensor(x[i:i + batch]).to(dev)
            pred = model(xb).flatten(1).argmax(1).cpu()
            yb = torch.as_tensor(y[i:i + batch])
            conf += torch.bincount(yb * k + pred, minlength=k * k).reshape(k, k)
    matrix = conf.tolist()
    correct = int(conf.diag().sum())
    per_class = [{"class": c, "n": sum(matrix[i]), "correct": matrix[i][i],
                  "acc": matrix[i][i] / sum(matrix[i]) if sum(matrix[i]) else None} for i, c in enumerate(d.classes)]
    result = {"accuracy": correct / len(y) if len(y) else None, "correct": correct, "n": len(y), "split": split,
              "classes": d.classes, "per_class": per_class, "confusion": matrix, "data": d.description,
              "weights": load_report, "warnings": warnings, "files": []}
    if out is not None:
        png = os.path.join(out, "confusion.png")
        atomic_write(png, plots.confusion(matrix, d.classes, f"{net.name}: accuracy {result['accuracy']:.4f}"))
        result["files"].append(png)
        path = os.path.join(out, "eval.json")  # the result itself, less the list of files
        atomic_write(path, (json.dumps({k: v for k, v in result.items() if k != "files"}, indent=1) + "\n").encode())
        result["files"].append(path)
    return result


def text(r: dict) -> str:
    """`cnndsl eval`'s tables: the accuracy of each class, and the confusion matrix."""
    classes = r["classes"]
    width = max(5, *(len(str(c)) for c in classes))
    out = [f"\nper class ({r['split']} split):", f"  {'class':<{width}}  {'n':>5}  {'correct':>7}  {'acc':>6}"]
    for c in r["per_class"]:
        acc = f"{c['acc']:.4f}" if c["acc"] is not None else "-"
        out.append(f"  {c['class']:<{width}}  {c['n']:>5}  {c['correct']:>7}  {acc:>6}")
    cell = max(3, *(len(str(v)) for row in r["confusion"] for v in row), *(len(str(c)) for c in classes))
    out += ["\nconfusion matrix (rows: true class, columns: predicted):",
            " " * (width + 2) + " ".join(f"{c:>{cell}}" for c in classes)]
    out += [f"  {c:<{width}}" + " ".join(f"{v:>{cell}}" for v in row) for c, row in zip(classes, r["confusion"])]
    return "\n".join(out) + "\n"


def accuracy_text(r: dict) -> str:
    return f"\naccuracy: {r['accuracy']:.4f} ({r['correct']}/{r['n']}, {100 * r['accuracy']:.2f}%)\n"


def _same_data(info, d, data, split):
    """Refuse a split that cannot be the one training made, and classes that are not the checkpoint's."""
    n = len(d.y_train) + len(d.y_val)
    if split != "all" and info and info.get("samples") is not None and n != info["samples"]:
        raise CnnError(f"{data} holds {n} samples now, {info['samples']} when the checkpoint was trained: its "
                       f"{split} split cannot be rebuilt", usage=True, hint="evaluate every sample (--split all)")
    if info is not None and list(d.classes) != list(info["classes"]):
        raise CnnError(f"{data}'s classes ({_names(d.classes)}) are not the ones the checkpoint was trained on "
                       f"({_names(info['classes'])}): its outputs would be scored against other classes", usage=True,
                       hint="name the classes as training did (class folders, or the labels in y)")
    if not len(d.y_val if split == "val" else d.y_train):
        raise CnnError(f"the {split} split of {data} is empty: there is nothing to evaluate", usage=True,
                       hint="evaluate every sample (--split all)")


def _names(classes):
    return ", ".join(map(str, classes[:6])) + (" ..." if len(classes) > 6 else "")


def _few(values):
    return ", ".join(f"{v:.4g}" for v in values[:3]) + (" ..." if len(values) > 3 else "")
