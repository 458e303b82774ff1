"""Checkpoints: save and load weights safely, by name, and bring torchvision-style state_dicts to cnndsl names.

    >>> import cnndsl, cnndsl.weights as W, tempfile, os
    >>> m = cnndsl.loads("input 8x8x3\\nCONV(4, 3) - BN - RELU").to_torch(seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.safetensors")
    >>> W.save(m, path)
    >>> W.read(path)[1]["format"]
    'cnndsl.checkpoint/1'
    >>> r = W.load_into(m, path)
    >>> r["source"], r["loaded"], r["skipped"]
    ('cnndsl', 7, [])

Formats: `.safetensors` (preferred: plain tensors, nothing executes on load) or a
`torch.save`d state_dict (`.pt`/`.pth`), read with `torch.load(weights_only=True)`, which
refuses anything but tensors and plain containers: an untrusted file is never unpickled.
Writes are atomic (cnndsl.files.atomic_write).

Metadata: a safetensors checkpoint written by `save` records, as strings, `format`
(cnndsl.checkpoint/1), `spec_sha256` (the spec's text and its includes), `spec_name`,
`spec_path`, `bindings` (the -D values, JSON), `input` (HxWxC) and `cnndsl_version`; taken
from `net=`, `meta=`, or the `cnndsl_meta` of a module built by `to_torch()`. `.pt` files
carry none.

Resolution (`resolve`: the one function behind `load_into`, `to_torch(weights=...)`,
`to_onnx(weights=...)` and `cnndsl export --weights`): a checkpoint is *cnndsl* when its
metadata says so, or when its keys look like ours (no numeric path component such as
`layer1.0.conv1`, and at least half of them are names here); it then loads **by name**,
and any name or shape that differs is an error listing both sides, unless `strict=False`,
which loads every tensor whose name and shape match and reports the rest (`skipped`,
`resized`, `missing`). Any other state_dict is *foreign* and is mapped module by module
(`map_state_dict`). `num_batches_tracked` counters load when both sides have them and are
never reported. The report is a JSON-able dict:
    source     "cnndsl" (by name) or "mapped" (foreign keys)
    loaded     how many tensors were loaded
    skipped    checkpoint keys not loaded (unexpected + resized)
    resized    keys present on both sides with other shapes (in `shapes`: checkpoint, here)
    missing    our keys the checkpoint has nothing for (left as initialised)
    unexpected checkpoint keys with no counterpart here
    mapping    {checkpoint key: our key} for what was loaded
    matched_by {checkpoint module: how it was placed}: "name" (by name), or for a foreign state_dict
               "shape", "position", "structure", "name" or "explicit" (cnndsl.weights_map)
    checkpoint the checkpoint's metadata ({} for a .pt or a plain state_dict)
    same_spec  whether it was saved from this very spec text (None when either side can't tell)

Foreign key mapping (`map_state_dict`, cnndsl.weights_map), for nets whose structure matches a
torchvision or timm twin: keys are grouped by module (`layer1.0.conv1.weight` -> module
`layer1.0.conv1`); each of our modules, in execution order, takes one of their unused modules
with the same tensors (names and shapes), singled out by evidence that depends only on the set
of their keys and shapes, never on their order: the only one (shape), the first by their paths'
Sequential indices and numbered names (position), the BN that follows the conv ours reads, or the
group its siblings went to (structure), our path's words in theirs (name). Where candidates remain
interchangeable it raises a CnnError naming them; `mapping={their prefix: our prefix}` places
modules explicitly. A leading `module.` (DataParallel) is dropped. Anything left unmatched on
either side is an error that lists it, unless `strict=False` (then unmatched twin tensors, such as
GoogLeNet's auxiliary heads, are skipped and unmatched modules of ours keep their values); an
ambiguity is refused either way.

Foreign layouts: a kind may say that another framework stores one of its tensors in another
shape holding the same numbers in the same order (`kinds.Tensor.foreign`, a `kinds.Foreign`
each; `foreign_layouts(net.graph.tensors())` collects them, and a to_torch() module carries
them as `cnndsl_layouts`). A module of ours then also matches a twin module whose tensors are
in those layouts, and the tensor is reshaped to ours on loading: a 1x1 CONV's weight
(out, in, 1, 1) from nn.Linear's (out, in) (torchvision's ConvNeXt applies its pointwise
layers as Linear over an NHWC view), LAYERSCALE's (C, 1, 1) from a *bare* parameter of the
block (`features.1.0.layer_scale`: a parameter of a module that also has submodules is then
a module of its own, named by its whole key), as (C, 1, 1) (torchvision) or (C,) (timm).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re

from .errors import CnnError
from .files import atomic_write, descriptor_path, size_of, user_file
from .memory import require
from .weights_map import COUNTER, bare, match, module_feeds, split
from .weights_map import shape_of as _shape

FORMAT = "cnndsl.checkpoint/1"
__all__ = ["save", "read", "load", "resolve", "load_into", "map_state_dict", "foreign_layouts", "module_feeds",
           "mapping_digest"]


# ---- files ---------------------------------------------------------------------------------------
def _state_dict(obj) -> dict:
    sd = obj.state_dict() if hasattr(obj, "state_dict") else obj
    return {k: v.detach().cpu().contiguous() for k, v in sd.items()}


def save(module_or_state_dict, path, meta=None, net=None) -> None:
    """Write a checkpoint: safetensors unless `path` ends with .pt/.pth (torch.save of the state_dict).

    A safetensors file records the spec it comes from (see the module docstring): `net.spec_info`,
    else `meta` ({str: str}), else the module's `cnndsl_meta` (set by to_torch())."""
    import torch
    sd = _state_dict(module_or_state_dict)
    path = os.fspath(path)
    if path.endswith((".pt", ".pth")):
        buf = io.BytesIO()
        torch.save(sd, buf)
        data = buf.getvalue()
    else:
        from safetensors.torch import save as st_save
        info = dict(net.spec_info if net is not None else meta if meta is not None
                    else getattr(module_or_state_dict, "cnndsl_meta", None) or {})
        metadata = {"format": FORMAT, **{str(k): str(v) for k, v in info.items()}}
        data = st_save({k: v.clone() for k, v in sd.items()}, metadata=metadata)  # no shared storages
    atomic_write(path, data)


def read(path, what: str = "checkpoint") -> tuple[dict, dict]:
    """({key: tensor} on the CPU, {metadata}) from a checkpoint file; a CnnError for anything else.
    Only a regular file is opened (cnndsl.files.user_file: `what` names it in errors), and only after
    the tensors it declares are known to fit in memory; a safetensors file is read tensor by tensor
    into memory once (never its whole bytes first, which would hold it twice)."""
    import torch
    path = os.fspath(path)
    with user_file(path, what) as f:
        size, head = size_of(f), f.read(9)
        if _is_safetensors(head, size):
            return _read_safetensors(f, path, what, size, int.from_bytes(head[:8], "little"))
        f.seek(0)
        require(_declared_pt(f, size), f"{what} {path}", hint=BIG_CHECKPOINT)
        f.seek(0)
        try:
            obj = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CnnError(f"{path}: not a safetensors file nor a plain torch state_dict",
                           hint=f"torch.load(weights_only=True) refused it: "
                                f"{(str(e).splitlines() or [type(e).__name__])[0][:200]}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]  # a training checkpoint that wraps the weights
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CnnError(f"{path}: holds no state_dict of tensors")
    return dict(obj), {}


def load(path) -> dict:
    """Read a checkpoint into a {key: tensor} dict (CPU); a CnnError for anything else."""
    return read(path)[0]


def read_metadata(path, what: str = "checkpoint") -> dict:
    """The metadata of a safetensors checkpoint from its header alone: no tensor is read (a command
    that wants the record and then the weights reads the weights once). {} for any other file (a
    torch.save file has none; `read` refuses what is neither)."""
    path = os.fspath(path)
    with user_file(path, what) as f:
        size, head = size_of(f), f.read(9)
        if not _is_safetensors(head, size):
            return {}
        return _read_safetensors(f, path, what, size, int.from_bytes(head[:8], "little"), tensors=False)[1]


BIG_CHECKPOINT = "its tensors are read into memory whole: load it on a machine with more memory"
MAX_HEADER = 100 * 2**20  # safetensors' own bound on the JSON header


def _is_safetensors(head: bytes, size: int) -> bool:
    """The first 9 bytes of a file of `size` bytes: a little-endian header length, then `{`."""
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8 and head[8:9] == b"{"


def _read_safetensors(f, path, what, size, header, tensors=True):
    """Its tensors (safe_open, read with pread into memory once: no mapping that a truncation elsewhere
    could turn into SIGBUS) and its metadata; without `tensors`, ({}, its metadata): the header alone."""
    from safetensors import safe_open
    if header > MAX_HEADER:
        raise CnnError(f"{path}: not a readable safetensors file (its header declares over {MAX_HEADER:,} bytes)")
    if tensors:
        require(size, f"{what} {path}", hint=BIG_CHECKPOINT)
    try:
        try:
            opened = safe_open(descriptor_path(f, path), framework="pt", backend="pread")
        except TypeError:  # safetensors before 0.6 has one backend (a mapping)
            opened = safe_open(descriptor_path(f, path), framework="pt")
        with opened as st:
            meta = st.metadata() or {}
            read = {k: st.get_tensor(k) for k in st.keys()} if tensors else {}
    except Exception as e:  # SafetensorError, or a dtype torch lacks
        raise CnnError(f"{path}: not a readable safetensors file ({str(e)[:300]})") from None
    return read, {str(k): str(v) for k, v in meta.items()}


def _declared_pt(f, size) -> int:
    """The bytes a torch.save file declares: its zip members' uncompressed sizes (a small zip may declare
    terabytes), else its own size."""
    import zipfile
    try:
        with zipfile.ZipFile(f) as z:
            return sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return size


def _open(source) -> tuple[dict, dict, str]:
    """(state_dict, metadata, what to call it) from a path, a module or a state_dict."""
    if isinstance(source, tuple) and len(source) == 3:  # read already (the ONNX backend's, without torch)
        return source
    if isinstance(source, (str, os.PathLike)):
        sd, meta = read(source, "weights")  # to_torch(weights=), to_onnx(weights=), export --weights
        return sd, meta, os.fspath(source)
    if hasattr(source, "state_dict") and callable(source.state_dict):
        return dict(source.state_dict()), dict(getattr(source, "cnndsl_meta", None) or {}), "the module"
    if isinstance(source, dict):
        return dict(source), {}, "the state_dict"
    raise CnnError(f"weights must be a module, a state_dict or a checkpoint path, not {type(source).__name__}",
                   usage=True)


# ---- resolution: which checkpoint tensor goes where ---------------------------------------------------
def resolve(source, ours: dict, strict: bool = True, here: dict | None = None,
            layouts: dict | None = None, feeds: dict | None = None, mapping: dict | None = None) -> tuple[dict, dict]:
    """({our key: tensor}, report) for loading `source` into a network whose tensors are `ours`
    ({key: shape or tensor}); `here` is that network's spec_info, for the error message and
    `same_spec`; `layouts` ({our key: (kinds.Foreign, ...)}, `foreign_layouts`) the other layouts a
    foreign state_dict may hold our tensors in; `feeds` (`module_feeds(graph)`) what each of our
    modules reads, for the mapping's `structure` rule; `mapping` ({their module prefix: ours}) places
    foreign modules explicitly. Raises CnnError when `strict` and anything differs, and whenever a
    foreign mapping is ambiguous (see the module docstring)."""
    sd, meta, what = _open(source)
    sd = _without_data_parallel(_without_training_state(sd))
    shapes = {k: _shape(v) for k, v in ours.items()}
    same = _same_spec(meta, here)
    by_name = meta.get("format", "").startswith("cnndsl.checkpoint/") or "spec_sha256" in meta
    if not mapping and (by_name or _cnndsl_style(sd, shapes)):
        tensors, report = _by_name(sd, shapes, strict, what, meta, here, same)
    else:
        tensors, report = _mapped(sd, shapes, strict, layouts or {}, feeds, mapping)
    _check_values(tensors, report["mapping"], what)
    report.update(checkpoint=meta, same_spec=same)
    return tensors, report


def _check_values(tensors, mapping, what):
    """Every tensor loaded into a parameter or a running statistic (all float here) must hold finite
    floats: an int8 or bool tensor would be cast silently (its numbers are not weights), NaN or inf
    would compute NaN. BN's integer counter (`num_batches_tracked`) is the one integer we hold."""
    theirs = {ours: key for key, ours in mapping.items()}
    for k, v in tensors.items():
        if k.endswith(COUNTER):
            continue
        name = k if theirs.get(k, k) == k else f"{theirs[k]} (for {k})"
        if not _is_float(v):
            raise CnnError(f"{what}: {name} holds {_dtype(v)} values, not floats: it is not a weight of a float network",
                           hint="a quantised or boolean checkpoint cannot be loaded as it is: dequantise it to "
                                "float32 first")
        bad = _count_not_finite(v)
        if bad:
            raise CnnError(f"{what}: {name} holds {bad} NaN or inf value{'s' if bad > 1 else ''}",
                           hint="the run that saved it diverged: take an earlier checkpoint")


def _is_float(v) -> bool:
    if hasattr(v, "is_floating_point"):
        return bool(v.is_floating_point())
    return getattr(getattr(v, "dtype", None), "kind", "f") == "f"


def _dtype(v) -> str:
    return str(getattr(v, "dtype", type(v).__name__)).replace("torch.", "")


def _count_not_finite(v) -> int:
    if hasattr(v, "is_floating_point"):
        import torch
        return 0 if v.is_meta else int((~torch.isfinite(v)).sum())  # a meta tensor has shapes, no values
    import numpy as np
    return int((~np.isfinite(np.asarray(v))).sum())


TRAINING_STATE = "train/"  # a training checkpoint's optimizer, schedule and RNG state (cnndsl.train.checkpoint)


def _without_training_state(sd):
    """The model's tensors of a training checkpoint: its `train/...` state is not a layer's."""
    if any(k.startswith(TRAINING_STATE) for k in sd):
        return {k: v for k, v in sd.items() if not k.startswith(TRAINING_STATE)}
    return sd


def _without_data_parallel(sd):
    """A state_dict saved from DataParallel without its `module.` prefix."""
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _numeric_part(key: str) -> bool:
    return any(p.isdigit() for p in key.split("."))


def _cnndsl_style(sd: dict, shapes: dict) -> bool:
    """Keys as cnndsl writes them: layer names never have a numeric part (torchvision's `layer1.0`)."""
    keys = [k for k in sd if not k.endswith(COUNTER)]
    if not keys or any(_numeric_part(k) for k in keys):
        return False
    return 2 * sum(k in shapes for k in keys) >= len(keys)


def _same_spec(meta, here):
    a, b = meta.get("spec_sha256"), (here or {}).get("spec_sha256")
    return a == b if a and b else None


def _by_name(sd, shapes, strict, what, meta, here, same):
    loaded, resized = _name_split(sd, shapes)
    unexpected, missing = _unnamed(sd, shapes)
    sizes = _sizes(sd, shapes, resized)
    if strict and (unexpected or missing or resized):
        raise CnnError(_name_error(what, unexpected, missing, sizes, meta, here, same),
                       hint=_name_hint(renamed=bool(unexpected or missing)))
    layers = {k.rpartition(".")[0]: "name" for k in loaded}
    return loaded, _report("cnndsl", loaded, unexpected, resized, sizes, missing, {k: k for k in loaded}, layers)


def _name_split(sd, shapes):
    """({key: tensor} whose name and shape match, in our order; our keys it holds in another shape)."""
    loaded = {k: sd[k] for k in shapes if k in sd and _shape(sd[k]) == shapes[k]}
    return loaded, [k for k in shapes if k in sd and k not in loaded]


def _unnamed(sd, shapes):
    """(checkpoint keys with no name here, our keys with none in the checkpoint), BN counters aside."""
    unexpected = [k for k in sd if k not in shapes and not k.endswith(COUNTER)]
    unexpected = _layer_order(unexpected)  # safetensors keeps keys sorted: fc.bias before fc.weight
    return unexpected, [k for k in shapes if k not in sd and not k.endswith(COUNTER)]


def _name_hint(renamed):
    if renamed:
        return ("rename the layers back to the checkpoint's names, or load with strict=False (--partial-weights) "
                "to load every tensor whose name and shape match; the rest keeps its initialisation")
    return ("it was saved from a different spec or other -D / --input values; strict=False (--partial-weights) "
            "loads the tensors whose shapes match, e.g. all but a resized head")


def _sizes(sd, shapes, resized):
    return {k: {"checkpoint": list(_shape(sd[k])), "here": list(shapes[k])} for k in resized}


def _report(source, loaded, unexpected, resized, sizes, missing, mapping, matched_by):
    return {"source": source, "loaded": len(loaded), "skipped": unexpected + resized, "resized": resized,
            "shapes": sizes, "missing": missing, "unexpected": unexpected, "mapping": mapping,
            "matched_by": matched_by}


def _name_error(what, unexpected, missing, sizes, meta, here, same):
    parts = []
    if unexpected:
        parts.append(f"{_few(unexpected)} in the checkpoint {'has' if len(unexpected) == 1 else 'have'} no layer here")
    if missing:
        parts.append(f"{_few(missing)} here {'has' if len(missing) == 1 else 'have'} none in the checkpoint")
    if sizes:
        parts.append(f"{_few(sizes)} {'has' if len(sizes) == 1 else 'have'} another shape here")
    lines = [f"{what} does not match this network: " + "; ".join(parts)]
    if unexpected:
        lines.append(f"  layers only in the checkpoint: {_few(_layers(unexpected), 8)}")
    if missing:
        lines.append(f"  layers only here: {_few(_layers(missing), 8)}")
    for k, s in list(sizes.items())[:8]:
        lines.append(f"  {k}: checkpoint {_dims(s['checkpoint'])}, here {_dims(s['here'])}")
    if same is False:
        lines.append(f"  the checkpoint was saved from another spec ({meta.get('spec_name', '?')}, "
                     f"sha256 {meta['spec_sha256'][:12]}; this is {here.get('spec_name', '?')}, "
                     f"sha256 {here['spec_sha256'][:12]})")
    return "\n".join(lines)


LEAF_ORDER = {"weight": 0, "bias": 1, "running_mean": 2, "running_var": 3}


def _layer_order(keys):
    """Keys grouped by layer (in order of first appearance), each layer's as PyTorch registers them."""
    first = {}
    for k in keys:
        first.setdefault(k.rpartition(".")[0], len(first))
    return sorted(keys, key=lambda k: (first[k.rpartition(".")[0]], LEAF_ORDER.get(k.rpartition(".")[2], 9)))


def _layers(keys):
    return list(dict.fromkeys(k.rpartition(".")[0] or k for k in keys))


def _dims(shape):
    return "x".join(map(str, shape)) or "scalar"


def _few(keys, n=4):
    keys = list(keys)
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def _mapped(sd, shapes, strict, layouts, feeds, explicit):
    # matched without BN's counters, which one side may lack (ONNX, an older torch); they follow their module
    how = {}
    pairs, missing, extra = match(_no_counters(sd), _no_counters(shapes), layouts, feeds, explicit, how)
    if strict and (missing or extra):
        raise _mismatch(missing, extra)
    mapping = {k: ours for k, ours in _mapping(sd, pairs, layouts).items() if ours in shapes}
    # a tensor held in a foreign layout (kinds.Foreign) holds our numbers in our order: a reshape
    loaded = {mapping[k]: _relaid(sd[k], shapes[mapping[k]]) for k in mapping}
    resized = _resized_unmapped(sd, shapes, mapping, loaded)
    unexpected, missing = _unmapped(sd, shapes, mapping, loaded, resized)
    return loaded, _report("mapped", loaded, unexpected, resized, _sizes(sd, shapes, resized), missing, mapping,
                           {p: how[p] for p in sorted(how)})


def _relaid(v, shape):
    return v if _shape(v) == tuple(shape) else v.reshape(shape)


def _no_counters(tensors):
    return {k: v for k, v in tensors.items() if not k.endswith(COUNTER)}


def _resized_unmapped(sd, shapes, mapping, loaded):
    """Our keys nothing was mapped to that the checkpoint holds under the same name in another shape."""
    return [k for k in shapes if k not in loaded and k in sd and k not in mapping and _shape(sd[k]) != shapes[k]]


def _unmapped(sd, shapes, mapping, loaded, resized):
    """(checkpoint keys not mapped, our keys not loaded), the resized and BN counters aside."""
    unexpected = [k for k in sd if k not in mapping and k not in resized and not k.endswith(COUNTER)]
    return unexpected, [k for k in shapes if k not in loaded and k not in resized and not k.endswith(COUNTER)]


# ---- mapping (cnndsl.weights_map) ---------------------------------------------------------------------
def foreign_layouts(tensors: dict) -> dict:
    """{our key: (kinds.Foreign, ...)} for the tensors whose kind names other layouts, from
    {key: kinds.Tensor} (`net.graph.tensors()`): what `resolve` and `map_state_dict` may match."""
    return {k: t.foreign for k, t in tensors.items() if getattr(t, "foreign", ())}


def _mapping(theirs, pairs, layouts) -> dict:
    """{their key: our key}, in their keys' order (what mapping_digest hashes); its content is the
    match's, which does not depend on that order."""
    out = {}
    for key, (p, leaf) in split(theirs, bare(layouts)).items():
        if p in pairs:
            prefix, names = pairs[p]
            leaf = names.get(leaf, leaf)  # BN's counter is not matched: it keeps its name
            out[key] = f"{prefix}.{leaf}" if prefix else leaf
    return out


def map_state_dict(theirs: dict, ours: dict, strict: bool = True, layouts: dict | None = None,
                   feeds: dict | None = None, mapping: dict | None = None) -> dict:
    """{their key: our key}, matching module by module (cnndsl.weights_map). `ours` holds
    tensors or shapes; `layouts` as for `resolve`; `feeds` (`module_feeds(net.graph)`) lets a
    normalisation follow its conv; `mapping` {their prefix: our prefix} places modules explicitly."""
    theirs = _without_data_parallel(theirs)
    pairs, missing, extra = match(theirs, ours, layouts or {}, feeds, mapping)
    if missing or (extra and strict):
        raise _mismatch(missing, extra)
    return _mapping(theirs, pairs, layouts or {})


def _mismatch(missing, extra):
    lines = [f"  ours, unmatched: {m}" for m in missing[:8]] + [f"  theirs, unmatched: {e}" for e in extra[:8]]
    more = len(missing) + len(extra) - len(lines)
    return CnnError(f"the state_dict does not match this network: {len(missing)} of our modules and "
                    f"{len(extra)} of its modules have no counterpart\n" + "\n".join(lines)
                    + (f"\n  ... and {more} more" if more > 0 else ""),
                    hint="the structure must match module by module (same tensors and shapes); "
                         "strict=False loads the modules that match and reports the rest")


def mapping_digest(mapping: dict) -> str:
    """A short fingerprint of a key mapping, for committed test data."""
    text = "\n".join(f"{a}\t{b}" for a, b in mapping.items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ---- loading into a module --------------------------------------------------------------------------
def load_into(module, source, strict: bool = True, net=None, mapping: dict | None = None) -> dict:
    """Load a checkpoint path, state_dict or module into `module` (a to_torch() or compiled-source
    module) and return the report (see the module docstring); with strict=False what does not
    match by name and shape is left as it is. A foreign state_dict's tensors in other layouts
    (kinds.Foreign) are placed by the kinds' facts, and its normalisations follow their convs by
    the graph: a to_torch() module carries both; for a compiled-source module pass the `net` it was
    generated from. `mapping` ({their module prefix: ours}) places foreign modules explicitly."""
    tensors, report = resolve(source, module.state_dict(), strict=strict,
                              here=getattr(module, "cnndsl_meta", None), layouts=_layouts_of(module, net),
                              feeds=_feeds_of(module, net), mapping=mapping)
    module.load_state_dict(tensors, strict=False)  # every key is ours; completeness was resolve's to decide
    return report


def _layouts_of(module, net):
    if net is not None:
        return foreign_layouts(net.graph.tensors())
    return getattr(module, "cnndsl_layouts", None) or {}


def _feeds_of(module, net):
    if net is not None:
        return module_feeds(net.graph)
    return getattr(module, "cnndsl_feeds", None)


def report_lines(report: dict, path) -> list[str]:
    """A load's report (resolve, load_into) as the lines `cnndsl export --weights` and `train --init`
    print: how it matched, what it mapped, what it left out."""
    how = "by name" if report["source"] == "cnndsl" else "mapped module by module from foreign keys"
    out = [f"weights: {report['loaded']} tensors from {path}, {how}"]
    if report["same_spec"] is False:
        ck = report["checkpoint"]
        out.append(f"  saved from another spec: {ck.get('spec_name', '?')} (sha256 {ck['spec_sha256'][:12]})")
    if report["source"] == "mapped":
        modules = {}
        for theirs, ours in report["mapping"].items():
            modules.setdefault(theirs.rpartition(".")[0], ours.rpartition(".")[0])
        by = report.get("matched_by", {})
        out += [f"  {theirs} -> {ours}" + (f" (by {by[theirs]})" if theirs in by else "") for theirs, ours in modules.items()]
    for k in report["resized"]:
        s = report["shapes"][k]
        out.append(f"  resized, not loaded: {k} (checkpoint {_dims(s['checkpoint'])}, here {_dims(s['here'])})")
    out += [f"  skipped, no layer here: {k}" for k in report["unexpected"]]
    out += [f"  not in the checkpoint, random: {k}" for k in report["missing"]]
    return out


def read_mapping(path) -> dict:
    """A file of explicit module placements (`export --weights-map`): a JSON object {their module
    prefix: our module prefix}, as `mapping=` takes it."""
    from .files import MAX_JSON, read_user_bytes
    try:
        m = json.loads(read_user_bytes(path, "--weights-map", MAX_JSON))
    except ValueError as e:
        raise CnnError(f"{path}: not JSON ({e})", usage=True) from None
    if not isinstance(m, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in m.items()):
        raise CnnError(f"{path}: must be a JSON object of strings, {{their module prefix: ours}}", usage=True)
    return m
