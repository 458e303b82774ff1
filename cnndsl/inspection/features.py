"""A layer's feature space: nearest neighbours in it against nearest neighbours in pixel space, and a
t-SNE map of it coloured by class (scikit-learn's TSNE), as the lecture shows for the last hidden layer.

    >>> import cnndsl
    >>> s = Subject(cnndsl.loads("input 8x8x1\\nCONV(4, 3) - RELU - FC(8) - RELU - FC(2)"), weights=None)
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(40, 1, 8, 8)).astype("f4"), np.arange(40) % 2
    >>> r = neighbours(s, x[:4], y[:4], x[4:], y[4:], k=3)
    >>> r["feature_neighbours"].shape, r.values["layer"]
    ((4, 3), 'relu2')

Distances are Euclidean, on the layer's output flattened (features) and on the normalised input
(pixels). `agreement` is the share of a query's k neighbours that have its class, over all queries:
the lecture's point is that it is higher in the feature space of a trained net than in pixel space.
The t-SNE plane's `knn_accuracy` is leave-one-out 5-nearest-neighbour accuracy there.
"""
from __future__ import annotations

from inspect import signature

import numpy as np
import torch

from . import figures as F
from .result import Result
from .subject import Subject

SHOWN = 5  # query rows drawn
ITERATIONS = 500  # t-SNE's


def features(s: Subject, x, layer, progress=None) -> np.ndarray:
    """(N, D) flattened outputs of `layer` for normalised samples `x` (numpy)."""
    parts, done = [], 0
    for xb in s.batches(x):
        parts.append(s.capture(xb, [layer])[layer].flatten(1).float().cpu().numpy())
        done += len(xb)
        if progress:
            progress(done, len(x))
    return np.concatenate(parts)


def _knn(q, base, k):
    d = torch.cdist(torch.as_tensor(q, dtype=torch.float64), torch.as_tensor(base, dtype=torch.float64))
    dist, idx = d.topk(k, dim=1, largest=False)
    return idx.numpy(), dist.numpy()


def neighbours(s: Subject, xq, yq, xb, yb, layer=None, k=6, shown=SHOWN, notes=(), progress=None) -> Result:
    name = s.layer(layer) if layer else s.last_hidden()
    fq, fb = features(s, xq, name), features(s, xb, name, progress)
    fi, fd = _knn(fq, fb, k)
    pi, pd = _knn(xq.reshape(len(xq), -1), xb.reshape(len(xb), -1), k)
    yb = np.asarray(yb)
    values = {"layer": name, "feature_dims": int(fq.shape[1]), "pixel_dims": int(np.prod(xq.shape[1:])), "k": k,
              "queries": int(len(xq)), "base": int(len(xb)),
              "feature_agreement": float((yb[fi] == np.asarray(yq)[:, None]).mean()),
              "pixel_agreement": float((yb[pi] == np.asarray(yq)[:, None]).mean()),
              "shown": min(shown, len(xq)), "class_names": [s.class_name(i) for i in range(s.n_classes)]}
    n = values["shown"]
    to_raw = lambda a: s.raw(torch.as_tensor(a, device=s.device)).cpu().numpy()  # noqa: E731
    arrays = {"feature_neighbours": fi, "feature_distances": fd, "pixel_neighbours": pi, "pixel_distances": pd,
              "query_labels": np.asarray(yq), "feature_labels": yb[fi], "pixel_labels": yb[pi],
              "query_images": to_raw(xq[:n]), "feature_images": to_raw(xb[fi[:n].ravel()]).reshape(n, k, *xq.shape[1:]),
              "pixel_images": to_raw(xb[pi[:n].ravel()]).reshape(n, k, *xq.shape[1:])}
    values["value_range"] = s.display_range(arrays["query_images"])
    return Result("neighbours", arrays, values, [*s.notes, *notes], _draw_nn, _table_nn)


def _draw_nn(r):
    n, k = r["feature_images"].shape[:2]
    vr = r["value_range"]
    blank = np.full(F.rgb(r["query_images"][0], vr).shape, np.nan)
    tiles = []
    for i in range(n):
        tiles += [F.rgb(r["query_images"][i], vr), blank]
        tiles += [F.rgb(im, vr) for im in r["feature_images"][i]] + [blank]
        tiles += [F.rgb(im, vr) for im in r["pixel_images"][i]]
    h, w = blank.shape[:2]
    cols = 2 * k + 3
    canvas, corners = F.mosaic(tiles, cols, max(2, round(max(h, w) * 0.35)))
    fig = F.figure((13.33, min(13.33, 1.6 + 13.0 * canvas.shape[0] / canvas.shape[1])))
    ax = fig.subplots()
    F.show_mosaic(ax, canvas)
    names = r["class_names"]
    label = lambda c: names[c] if c < len(names) else str(c)  # noqa: E731
    for i in range(n):
        q = int(r["query_labels"][i])
        row = corners[i * cols:(i + 1) * cols]
        ax.text(row[0][1] + w / 2, row[0][0] - 0.6, f"query: {label(q)}", ha="center", va="bottom", fontsize=11)
        for j in range(k):
            for col, kind in ((2 + j, "feature"), (3 + k + j, "pixel")):
                c = int(r[f"{kind}_labels"][i, j])
                t, l = row[col]
                ax.text(l + w / 2, t - 0.6, label(c), ha="center", va="bottom", fontsize=11,
                        color="#2a7d2a" if c == q else "#c0392b")
    fig.suptitle(f"{k} nearest neighbours among {r['base']} samples; the share of the query's class over "
                 f"{r['queries']} queries\nleft: in {r['layer']}'s features ({r['feature_dims']} values), "
                 f"{r['feature_agreement']:.1%}        right: in pixel space ({r['pixel_dims']} values), "
                 f"{r['pixel_agreement']:.1%}")
    return fig


def _table_nn(r):
    lines = [f"{r['k']} nearest neighbours of {r['queries']} queries among {r['base']} samples: the query's class "
             f"in {r['feature_agreement']:.1%} of them in {r['layer']}'s features ({r['feature_dims']} values), "
             f"{r['pixel_agreement']:.1%} in pixel space ({r['pixel_dims']} values)"]
    names = r["class_names"]
    label = lambda c: names[c] if c < len(names) else str(c)  # noqa: E731
    for i in range(r["shown"]):
        lines.append(f"  query {i} ({label(int(r['query_labels'][i]))}): features "
                     + " ".join(label(int(c)) for c in r["feature_labels"][i]) + " | pixels "
                     + " ".join(label(int(c)) for c in r["pixel_labels"][i]))
    return "\n".join(lines) + "\n"


# ---- t-SNE ---------------------------------------------------------------------------------------------
def embed(s: Subject, x, y, layer=None, perplexity=30.0, seed=0, notes=(), progress=None) -> Result:
    from sklearn.manifold import TSNE
    name = s.layer(layer) if layer else s.last_hidden()
    f = features(s, x, name, progress)
    perplexity = min(perplexity, max(2.0, (len(f) - 1) / 3))
    # 500 iterations, not scikit-learn's 1,000: digits' 5-NN accuracy in the plane is the same (99.8%), in half the time
    steps = {"max_iter" if "max_iter" in signature(TSNE).parameters else "n_iter": ITERATIONS}  # n_iter before 1.5
    plane = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed,
                 **steps).fit_transform(f.astype(np.float64))
    y = np.asarray(y)
    idx, _ = _knn(plane, plane, min(6, len(plane)))
    votes = y[idx[:, 1:]]  # leave one out: the point itself is its own nearest neighbour
    pred = np.array([np.bincount(v, minlength=y.max() + 1).argmax() for v in votes])
    values = {"layer": name, "feature_dims": int(f.shape[1]), "samples": int(len(f)), "perplexity": perplexity,
              "iterations": ITERATIONS, "seed": seed, "knn_accuracy": float((pred == y).mean()),
              "class_names": [s.class_name(i) for i in range(int(y.max()) + 1)]}
    return Result("embed", {"plane": plane.astype(np.float32), "labels": y}, values, [*s.notes, *notes],
                  _draw_tsne, _table_tsne)


def _draw_tsne(r):
    import matplotlib
    fig = F.figure((11.0, 8.5))
    ax = fig.subplots()
    p, y, names = r["plane"], r["labels"], r["class_names"]
    cmap = matplotlib.colormaps["tab10" if len(names) <= 10 else "tab20"]
    for c in range(len(names)):
        m = y == c
        if m.any():
            ax.scatter(p[m, 0], p[m, 1], s=14, color=cmap(c % cmap.N), label=names[c], alpha=0.8, linewidths=0)
            if len(names) <= 20:
                cx, cy = np.median(p[m], axis=0)
                ax.text(cx, cy, names[c], fontsize=16, weight="bold", ha="center", va="center",
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.7, "lw": 0})
    F.bare(ax)
    if len(names) <= 20:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=2.5, title="class")
    ax.set_title(f"t-SNE of {r['layer']} ({r['feature_dims']} values) for {r['samples']} samples: "
                 f"5-NN accuracy in the plane {r['knn_accuracy']:.1%}")
    return fig


def _table_tsne(r):
    return (f"t-SNE of {r['layer']} ({r['feature_dims']} values) for {r['samples']} samples (perplexity "
            f"{r['perplexity']:g}, seed {r['seed']}): leave-one-out 5-NN accuracy in the plane {r['knn_accuracy']:.1%}\n")
