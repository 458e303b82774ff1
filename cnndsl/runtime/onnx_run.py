"""`cnndsl run`: a model (.onnx, or a .net spec exported with random weights) in onnxruntime, timed.

    $ cnndsl run nets/resnet18.net --batch 1 --repeat 20
    model:    nets/resnet18.net (exported with random weights, opset 17)
    provider: CPUExecutionProvider
    input:    input 1x3x224x224 float32 (random)
    output:   fc 1x1000
    latency:  median 21.4 ms, p90 23.0 ms over 20 runs after 2 warm-up runs

The provider is CUDA (or TensorRT when asked) only where a GPU is really usable: the
onnxruntime-gpu wheel lists CUDAExecutionProvider on every machine, and asking for it
where there is no driver makes onnxruntime print loud load errors before it falls back.
So we ask the CUDA driver first (ctypes, no torch import) and never request CUDA without it.

    >>> choose_providers("cpu")
    ['CPUExecutionProvider']
"""
from __future__ import annotations

import os
import re
import statistics
import sys
import time

import numpy as np

from ..errors import CnnError

WARMUP = 2
RUN_COPIES = 4  # a spec run here holds its weights 6.2 times at its peak (maxrss: the model built, its bytes,
#                 onnxruntime's session): at least 4
CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


# ---- providers -------------------------------------------------------------------------------
def gpu_usable() -> bool:
    """True when the CUDA driver loads and sees at least one device (CUDA_VISIBLE_DEVICES honoured)."""
    import ctypes
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", "libcuda.so"]
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            if lib.cuInit(0) != 0:
                return False
            count = ctypes.c_int(0)
            return lib.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
        except AttributeError:
            return False
    return False


def choose_providers(provider="auto") -> list[str]:
    """The provider list to ask onnxruntime for; raises CnnError when an explicit GPU choice cannot work."""
    if provider == "cpu":
        return [CPU]
    import onnxruntime as ort
    available = ort.get_available_providers()
    if provider == "auto":
        return [CUDA, CPU] if CUDA in available and gpu_usable() else [CPU]
    want = {"cuda": [CUDA, CPU], "tensorrt": [TRT, CUDA, CPU]}[provider]
    if want[0] not in available:
        raise CnnError(f"{want[0]} is not in this onnxruntime build (it has {', '.join(available)})", usage=True,
                       hint="install onnxruntime-gpu, or use --provider cpu")
    if not gpu_usable():
        raise CnnError(f"--provider {provider}: no usable GPU (the CUDA driver is missing or sees no device)",
                       usage=True, hint="use --provider auto or cpu")
    return want


def open_session(model, providers, quiet=True):
    """An InferenceSession from a path or serialized bytes; onnxruntime's failures become CnnError."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: no "nodes not assigned to the preferred provider" chatter
    if CUDA in providers and hasattr(ort, "preload_dlls"):
        try:  # CUDA/cuDNN from the nvidia-* wheels, where installed; harmless otherwise
            ort.preload_dlls()
        except Exception:
            pass
    try:  # a path: _load_model checked it is a regular file (onnxruntime takes a name, to find external data)
        return ort.InferenceSession(model, sess_options=opts, providers=providers)
    except Exception as e:
        if isinstance(model, (bytes, bytearray)):
            raise
        raise _diagnose(model, e) from None


def _diagnose(path, err) -> CnnError:
    """Why onnxruntime could not open `path`, in a sentence."""
    size = os.path.getsize(path)
    if size == 0:
        return CnnError(f"{path} is empty, not an ONNX model")
    import onnx
    from google.protobuf.message import DecodeError
    from ..files import user_file
    try:
        with user_file(path, "the model") as f:
            model = onnx.load(f, load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, Exception) as e:
        return CnnError(f"{path} is not an ONNX model (it does not parse: {type(e).__name__})",
                        hint="give a file written by `cnndsl export` or another ONNX exporter, or a cnndsl spec")
    if not model.graph.node and not model.opset_import:
        return CnnError(f"{path} is not an ONNX model (no graph, no opset)")
    hint = _too_new_hint(model, err) or \
        "check it with python -c \"import onnx; onnx.checker.check_model('MODEL', full_check=True)\""
    return CnnError(f"onnxruntime cannot load {path}: {_ort_message(err)}", hint=hint)


def _too_new_hint(model, err) -> str | None:
    """When onnxruntime refused the model for its opset or IR version: the opset to export with."""
    from ..backends.onnx_graph import runtime_max_opset
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)
    found = runtime_max_opset()
    if opset is None or found is None or found[1] is None:
        return None
    version, newest = found
    text = str(err).lower()
    if opset <= newest and "ir version" not in text and "opset" not in text:
        return None
    return (f"this onnxruntime ({version}) loads opsets up to {newest}: re-export with "
            f"`cnndsl export SPEC.net -o MODEL.onnx --opset {newest}`, or upgrade onnxruntime")


def _ort_message(err) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    # "[ONNXRuntimeError] : 10 : INVALID_GRAPH : Load model from x failed:..." -> the part after the codes
    parts = text.split(" : ", 3)
    text = parts[3] if len(parts) == 4 else text
    # "Load model from x failed:/onnxruntime_src/core/graph/model.cc:256 onnxruntime::Model::Model(...) Unsupported
    # model IR version: 14, ..." -> "Unsupported model IR version: 14, ...": the path is said already, the C++
    # source position and signature say nothing to a user
    text = re.sub(r"^Load model from .*? failed:\s*", "", text)
    text = re.sub(r"^/\S+\.(?:h|cc|cpp):\d+ .*?\) (?=[A-Z])", "", text)
    return text[:400]


# ---- inputs ----------------------------------------------------------------------------------
def _fmt(shape) -> str:
    return "x".join(str(d) if d is not None else "?" for d in shape)


def make_input(session, data="random", batch=None, seed=0):
    """(name, array, how) for the model's single float input: random, or from a .npy file checked
    against it, or an image file (pixel values 0..255, resized to the input: preprocess.read_image).

    `batch`: the batch asked for (--batch), None when not asked: a random input then takes the
    model's fixed batch or 1, and a .npy array its own."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise CnnError(f"the model takes {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                       "cnndsl run feeds exactly one image tensor")
    spec = inputs[0]
    if spec.type != "tensor(float)":
        raise CnnError(f"the model's input {spec.name} is {spec.type}; cnndsl run feeds float32 tensors")
    dims = [d if isinstance(d, int) and d > 0 else None for d in spec.shape]
    if batch is not None and batch < 1:
        raise CnnError("--batch must be at least 1", usage=True)
    if data in (None, "random"):
        if not dims:
            raise CnnError(f"the model's input {spec.name} is a scalar; cnndsl run feeds a batch of tensors")
        if dims[0] is not None and dims[0] != batch:
            if batch not in (None, 1):  # 1 is the CLI's default: it stands for "not asked" there
                raise CnnError(f"the model has a fixed batch of {dims[0]}; --batch {batch} does not fit",
                               usage=True, hint="export with --batch dynamic")
            batch = dims[0]
        batch = batch or 1
        if any(d is None for d in dims[1:]):
            raise CnnError(f"the model's input {spec.name} has shape {_fmt(spec.shape)} with unknown sizes; "
                           "cnndsl run cannot make a random input for it", hint="give --input x.npy")
        shape = [batch, *dims[1:]]
        return spec.name, np.random.default_rng(seed).standard_normal(shape, dtype=np.float32), "random"
    from .preprocess import is_image, read_image
    x = read_image(data, dims) if is_image(data) else _read_npy(data, spec.name, dims)
    # an explicit --batch that the array contradicts is a mistake to report, not a choice to override;
    # batch 1 is the CLI's default, indistinguishable from "not asked" until it defaults to None
    if batch not in (None, 1) and batch != x.shape[0]:
        raise CnnError(f"--batch {batch} does not match {data}, which holds a batch of {x.shape[0]}", usage=True,
                       hint=f"leave out --batch (the array's batch is used) or give --batch {x.shape[0]}")
    return spec.name, x, data


def _read_npy(path, name, dims):
    from ..files import npy_header, size_of, user_file
    from ..memory import require
    with user_file(path, "--input") as f:
        shape, dtype, nbytes = npy_header(f, f"--input {path}", size_of(f))
        # the array, then its float32 copy (the one fed)
        require(nbytes + 4 * nbytes // max(1, dtype.itemsize), f"--input {path} ({'x'.join(map(str, shape))} {dtype})")
        f.seek(0)
        try:
            x = np.load(f, allow_pickle=False)
        except Exception as e:
            raise CnnError(f"cannot read {path} as a .npy array: {type(e).__name__}: {str(e)[:200]}",
                           usage=True) from None
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise CnnError(f"{path} holds {getattr(x, 'dtype', type(x).__name__)} data; the model takes float32",
                       usage=True, hint="save it with x.astype('float32')")
    want = "x".join("N" if i == 0 and d is None else (str(d) if d else "?") for i, d in enumerate(dims))
    if x.ndim != len(dims) or any(d is not None and d != s for d, s in zip(dims, x.shape)):
        hint = "add a batch axis: np.save(path, x[None])" if x.ndim == len(dims) - 1 else \
            "the layout is NCHW (batch, channels, height, width)"
        raise CnnError(f"{path} has shape {_fmt(x.shape)}, but the model takes {want} (input {name!r})",
                       usage=True, hint=hint)
    if x.shape[0] < 1:
        raise CnnError(f"{path} holds an empty batch", usage=True)
    return np.ascontiguousarray(x, dtype=np.float32)


# ---- the library call -------------------------------------------------------------------------
def _load_model(model, bindings):
    """(model for onnxruntime: a path or bytes, description, warnings of the spec). A spec comes as
    the Net its caller loaded (the runtime stands beside the backends, below the API that loads)."""
    if hasattr(model, "to_onnx"):
        from ..backends.onnx_graph import DEFAULT_OPSET
        from ..memory import require_network
        require_network(model.graph, "running this network in onnxruntime", copies=RUN_COPIES)
        onnx_model = model.to_onnx(batch="dynamic")
        return (onnx_model.SerializeToString(), f"{model.path} (exported with random weights, opset {DEFAULT_OPSET})",
                model.warnings)
    path = os.fspath(model)
    if path.endswith(".net"):
        raise CnnError(f"{path} is a spec: load it first, benchmark(cnndsl.load(path, bindings=...))", usage=True)
    from ..files import size_of, user_file
    with user_file(path, "the model") as f:  # a pipe or a device is refused before a byte is read
        head, size = f.read(4096), size_of(f)
    if _is_spec(head):
        raise CnnError(f"{path} is a spec: load it first, benchmark(cnndsl.load(path, bindings=...))", usage=True)
    if bindings:
        raise CnnError("-D binds variables of a .net spec; an .onnx model has none", usage=True)
    from ..memory import require
    require(size + _external_bytes(path, size), f"the model {path}")  # onnxruntime reads it and its weights
    return path, path, []


SMALL_MODEL = 64 * 2**20  # a model whose weights are in files of their own is small itself


def _external_bytes(path, size) -> int:
    """The size of the weights files a small model names (ONNX external data), each opened as the model
    was: onnxruntime would block on a FIFO there. The names are found in the protobuf bytes themselves
    (an external_data entry is `key: "location", value: NAME`), without importing onnx (seconds)."""
    from ..files import user_file, size_of
    if size > SMALL_MODEL:
        return 0
    with user_file(path, "the model") as f:
        data = f.read(SMALL_MODEL + 1)
    total, key = 0, b"\x0a\x08location\x12"
    for name in {_string_at(data, i + len(key)) for i in _finds(data, key)} - {None}:
        where = os.path.join(os.path.dirname(os.path.abspath(path)), name)
        if os.path.lexists(where):  # a missing one is onnxruntime's to report, with its own message
            with user_file(where, f"the weights file of {path}:") as w:
                total += size_of(w)
    return total


def _finds(data: bytes, key: bytes):
    i = data.find(key)
    while i >= 0:
        yield i
        i = data.find(key, i + 1)


def _string_at(data: bytes, i: int) -> str | None:
    """The protobuf length-delimited string at `i` (a varint length, then UTF-8), or None."""
    n = shift = 0
    while i < len(data) and shift < 35:
        b = data[i]
        n |= (b & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if not b & 0x80:
            try:
                return data[i:i + n].decode("utf-8") if 0 < n <= 4096 and i + n <= len(data) else None
            except UnicodeDecodeError:
                return None
    return None


SPEC_STARTS = re.compile(r"(input|let|def|default|include)\b")


def is_spec(path) -> bool:
    """Whether a file is a cnndsl spec: named *.net, or UTF-8 text whose first statement (after
    comments and blank lines) is one that a spec opens with. A file that cannot be read as a plain
    file (missing, a pipe, a device) is not: the model's own read then says why."""
    if os.fspath(path).endswith(".net"):
        return True
    from ..files import user_file
    try:
        with user_file(path, "the model") as f:
            return _is_spec(f.read(4096))
    except (OSError, CnnError):
        return False


def _is_spec(head: bytes) -> bool:
    """Whether the first 4 KiB of a file, `head`, hold a cnndsl spec. An ONNX model is protobuf: its
    first byte is a field tag (0x08, ir_version), never text like this."""
    if b"\0" in head:
        return False
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return bool(SPEC_STARTS.match(line))
    return False


def benchmark(model, data="random", batch=None, repeat=20, provider="auto", bindings=None, top=5,
              normalize=True) -> dict:
    """Run `model` (a .onnx path, or a Net: a spec, exported with random weights) in onnxruntime and
    time it: {model, provider, asked, input, input_shape, source, output, output_shape, median_ms,
    p90_ms, repeat, warmup, warnings (CnnErrors of the spec), preprocessing, notes, top}. `data`:
    "random", an .npy path or an image file; given data is normalised as the model's metadata
    records (unless not `normalize`), said in `preprocessing`, with a warning in `notes` when it is
    far from the training data, and `top` holds the `top` classes of each sample (preprocess.py)."""
    if repeat < 1:
        raise CnnError("--repeat must be at least 1", usage=True)
    if batch is not None and batch < 1:
        raise CnnError("--batch must be at least 1", usage=True)
    from . import preprocess as P
    providers = choose_providers(provider)
    model, what, warnings = _load_model(model, bindings or {})
    session = open_session(model, providers)
    name, x, how = make_input(session, data, batch)
    record, names = P.record_of(session)
    line, note = None, None
    if how != "random":
        x, line, note = P.prepare(x, record, P.is_image(data), normalize)
    out = session.get_outputs()[0].name
    try:
        for _ in range(WARMUP):
            y = session.run([out], {name: x})[0]
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            session.run([out], {name: x})
            times.append(time.perf_counter() - t)
    except Exception as e:
        raise CnnError(f"onnxruntime failed to run the model: {_ort_message(e)}") from None
    ms = np.array(times) * 1e3
    return {"model": what, "provider": session.get_providers()[0], "asked": providers[0], "input": name,
            "input_shape": tuple(x.shape), "source": how, "output": out, "output_shape": tuple(y.shape),
            "median_ms": float(statistics.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "repeat": repeat, "warmup": WARMUP, "warnings": warnings, "preprocessing": line,
            "notes": [note] if note else [], "top": P.top_classes(y, names, top) if line and top else None}


def format_benchmark(r: dict) -> str:
    """The lines `cnndsl run` prints for a benchmark() result."""
    note = "" if r["provider"] == r["asked"] else f" ({r['asked']} was asked for but did not load)"
    return "\n".join([f"model:    {r['model']}",
                      f"provider: {r['provider']}{note}",
                      f"input:    {r['input']} {_fmt(r['input_shape'])} float32 ({r['source']})",
                      f"output:   {r['output']} {_fmt(r['output_shape'])}",
                      f"latency:  median {r['median_ms']:.2f} ms, p90 {r['p90_ms']:.2f} ms "
                      f"over {r['repeat']} runs after {r['warmup']} warm-up runs",
                      *([f"normalised: {r['preprocessing']}"] if r.get("preprocessing") else []),
                      *_format_top(r.get("top"), r["output_shape"][0])])


def _format_top(top, batch):
    """`top 3: 7 0.981, 1 0.012, 9 0.003`, a line per sample (numbered when there are several)."""
    if not top:
        return []
    lines = []
    for i, row in enumerate(top):
        where = f" [{i}]" if batch > 1 else ""
        lines.append(f"top {len(row)}{where}: " + ", ".join(f"{label} {p:.3f}" for label, p in row))
    if batch > len(top):
        lines.append(f"(the first {len(top)} of {batch} samples)")
    return lines
