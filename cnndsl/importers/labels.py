"""Pass: the source's names for its layers, kept as labels where they are names of the language.

A reader puts the source's path of a layer into `meta["path"]` (an fx module path such as
`layer1.0.conv1`, a Caffe layer name, the module an ONNX file's weights are named after: `c1`
for `c1.weight`); its last part becomes the layer's label when it is a name (`conv1`, not `0`)
and no keyword. Caffe's names (`conv1/7x7_s2`) are meant to be read: characters a name cannot hold
become `_` there.

    >>> label_of("layer1.0.conv1"), label_of("features.0"), label_of("conv1/7x7_s2", loose=True)
    ('conv1', None, 'conv1_7x7_s2')
"""
from __future__ import annotations

import re

KEYWORDS = frozenset({"input", "let", "def", "default", "include", "in", "on", "off", "true", "false"})
_PARAM = re.compile(r"^(.+)\.(weight|bias|running_mean|running_var|gamma|beta)$")


def assign(graph) -> None:
    """Label the layers. An fx module path is a name a person chose for every module; a Caffe file
    names even its in-place ReLUs (`conv1/relu_7x7`), so there, and in ONNX, only layers with weights
    are labelled: the names a reader looks for."""
    from ..kinds import KINDS
    loose = graph.format == "prototxt"
    made = graph.by_name()
    for n in graph.nodes:
        path = n.meta.get("path") or _from_weights(n) or _scope(n)
        if path:
            n.meta["path"] = path  # the module hierarchy: groups.py labels runs of one container
        if graph.format != "fx" and not KINDS[n.op].tensors(n.attrs, [graph.shape_of(i, made) for i in n.inputs]):
            continue
        path = path or _plain_name(n, graph)
        label = label_of(path, loose) if path else None
        if label:
            n.meta["label"] = label


def _from_weights(n):
    """The module an ONNX node's weights are named after (a parameter's name: `fc.weight`)."""
    for name in n.meta.get("const_names", {}).values():
        m = _PARAM.match(name)
        if m and not name.startswith("onnx::"):
            return m.group(1)
    return None


def _scope(n):
    """The module a node of torch.onnx.export ran in, from its name: `/features/features.10/Relu` is in
    `features.10` (a path only where it has a container: cnndsl's own modules give `/relu8/Relu`)."""
    parts = n.meta.get("node_name", "").split("/")
    return parts[-2] if len(parts) >= 4 and parts[0] == "" and "." in parts[-2] else None


def _plain_name(n, graph):
    """An ONNX node's own name where it is a plain name (`conv1`, as onnx.helper's users write them;
    not torch's scopes `/layer1/conv1_1/Conv`, whose suffixes are the exporter's, not the author's)."""
    name = n.meta.get("node_name", "")
    return name if graph.format == "onnx" and name.isidentifier() else None


def label_of(path: str, loose: bool = False) -> str | None:
    last = path.split(".")[-1] if not loose else path
    if loose:
        last = re.sub(r"\W", "_", last, flags=re.ASCII).strip("_")
    if last.isidentifier() and last.isascii() and last not in KEYWORDS and not last.startswith("_"):
        return last
    return None
