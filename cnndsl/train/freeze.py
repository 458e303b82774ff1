"""Which layers a `--freeze` names, and what that leaves trainable (no torch: `cnndsl report --freeze`).

    >>> import cnndsl
    >>> net = cnndsl.loads("input 8x8x1\\nfeatures: [CONV(4, 3) - RELU - CONV(4, 3)] - head: FC(10)")
    >>> frozen_layers(net.graph, "features")
    ['features.conv1', 'features.relu1', 'features.conv2']
    >>> frozen_layers(net.graph, "..features.conv1")
    ['features.conv1']
    >>> trainable_params(net.report(), ["features.conv1"])
    (798, 838)

A name is a layer (`c1`), or a labelled group or block instance (`features`: every layer in it);
`..NAME` is every layer from the input up to and including NAME (the fixed feature
extractor). Names are separated by commas.
"""
from __future__ import annotations

import difflib

from ..errors import CnnError


def parse_names(spec) -> list[str]:
    """"c1, c3" or ["c1", "c3"] -> ["c1", "c3"]."""
    if spec is None:
        return []
    items = spec.split(",") if isinstance(spec, str) else [p for s in spec for p in str(s).split(",")]
    return [s.strip() for s in items if s.strip()]


def _matches(layer: str, name: str) -> bool:
    return layer == name or layer.startswith(name + ".")


def frozen_layers(graph, spec) -> list[str]:
    """The layer names (in execution order) that `spec` freezes; a CnnError names an unknown one."""
    names = [n.name for n in graph.nodes]
    chosen = set()
    for item in parse_names(spec):
        upto = item.startswith("..")
        target = item[2:].strip() if upto else item
        hits = [i for i, layer in enumerate(names) if _matches(layer, target)]
        if not hits:
            raise CnnError(f"--freeze {item}: this network has no layer or group `{target}`", usage=True,
                           hint=_suggest(target, names))
        chosen.update(range(hits[-1] + 1) if upto else hits)
    return [names[i] for i in sorted(chosen)]


def _suggest(target, names) -> str:
    groups = sorted({n.split(".")[0] for n in names})
    close = difflib.get_close_matches(target, names + groups, n=3)
    known = ", ".join(groups[:12]) + (" ..." if len(groups) > 12 else "")
    return (f"did you mean {', '.join(close)}? " if close else "") + \
        f"names are the report's layer names or their groups ({known}); `..NAME` freezes everything up to NAME"


def trainable_params(rep: dict, frozen) -> tuple[int, int]:
    """(trainable, total) parameters of a report when `frozen` layers do not train."""
    frozen = set(frozen)
    total = rep["totals"]["params"]
    return total - sum(r["params"] for r in rep["layers"] if r["name"] in frozen), total


def annotate(rep: dict, graph, spec) -> dict:
    """The report with `frozen` (layer names) and `totals.trainable_params` for a --freeze."""
    frozen = frozen_layers(graph, spec)
    rep["frozen"] = frozen
    rep["totals"]["trainable_params"] = trainable_params(rep, frozen)[0]
    return rep
