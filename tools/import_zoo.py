"""Import every shipped net back into the language and print how the import compares with the spec.

Each net of nets/ is built with `to_torch(seed=0)` and imported through torch.fx (the default) or
through torch.onnx.export at opset 13 (`--onnx`, as the acceptance check does); the table gives the
import's figures against the spec's (parameters and MACs: `=` where equal), the largest output
difference relative to the outputs' scale, the lines of the import against the spec's with its includes
(comments and blank lines left out), its defs, and the time of the import and its check:

    PYTHONPATH=. python tools/import_zoo.py                   # every net up to 100M parameters, fx
    PYTHONPATH=. python tools/import_zoo.py --onnx resnet50   # named nets, through ONNX
    PYTHONPATH=. python tools/import_zoo.py --input 64x64x3   # smaller inputs: faster, the same params

Nets over --max-params (default 100M) are left out unless named.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import sys
import tempfile
import time
import warnings

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def lines(text):
    return len([l for l in text.splitlines() if l.strip() and not l.strip().startswith("#")])


def spec_lines(path, seen=None) -> int:
    """A spec's lines with those of the files it includes (each once): what the shipped net is written in."""
    seen = set() if seen is None else seen
    path = os.path.realpath(path)
    if path in seen:
        return 0
    seen.add(path)
    text = open(path).read()
    included = re.findall(r'^\s*include\s+"([^"]+)"', text, re.M)
    return lines(text) - len(included) + sum(spec_lines(os.path.join(os.path.dirname(path), p), seen) for p in included)


class Unexported(Exception):
    pass


def one(name, onnx, input):
    import torch
    import cnndsl
    net = cnndsl.load(os.path.join(ROOT, "nets", f"{name}.net"), input=input)
    rep = net.report()["totals"]
    model = net.to_torch(seed=0).eval()
    start = time.perf_counter()
    if onnx:
        path = os.path.join(tempfile.mkdtemp(), f"{name}.onnx")
        shape = net.graph.input_shape
        x = torch.randn(1, shape[2], shape[0], shape[1]) if len(shape) == 3 else torch.randn(1, shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(model, (x,), path, opset_version=13, dynamo=False)
            except Exception as e:  # torch's exporter refuses some modules (uneven adaptive pooling)
                raise Unexported(str(e).splitlines()[0][:120]) from None
        start = time.perf_counter()
        imp = cnndsl.import_onnx(path)
    else:
        imp = cnndsl.import_torch(model)
    took = time.perf_counter() - start
    result = imp.check()
    shipped = spec_lines(os.path.join(ROOT, "nets", f"{name}.net"))
    return {"params": "=" if result["params"] == rep["params"] else f"{result['params']:,} vs {rep['params']:,}",
            "macs": "=" if result["macs"] == rep["macs"] else f"{result['macs']:,} vs {rep['macs']:,}",
            "diff": result["max_abs_diff"] / max(1.0, result["output_scale"]),
            "lines": f"{lines(imp.text)}/{shipped}", "defs": len(re.findall(r"^def ", imp.text, re.M)),
            "time": f"{took:.1f}+{time.perf_counter() - start - took:.1f} s"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="nets of nets/ (default: all)")
    p.add_argument("--onnx", action="store_true", help="through torch.onnx.export at opset 13, not torch.fx")
    p.add_argument("--input", help="an input size for every net (HxWxC)")
    p.add_argument("--max-params", type=float, default=100e6)
    args = p.parse_args(argv)
    import torch
    import cnndsl
    torch.set_num_threads(1)
    names = args.names or sorted(os.path.basename(f)[:-4] for f in glob.glob(os.path.join(ROOT, "nets", "*.net")))
    print(f"{'net':<22} {'params':>6} {'MACs':>6} {'rel diff':>9} {'lines':>7} {'defs':>4}  time (import+check)")
    failed = 0
    for name in names:
        if not args.names:
            try:
                if cnndsl.load(os.path.join(ROOT, "nets", f"{name}.net")).report()["totals"]["params"] > args.max_params:
                    continue
            except cnndsl.CnnError:
                continue
        try:
            r = one(name, args.onnx, args.input)
            print(f"{name:<22} {r['params']:>6} {r['macs']:>6} {r['diff']:>9.1e} {r['lines']:>7} {r['defs']:>4}  {r['time']}")
            failed += r["params"] != "=" or r["macs"] != "="
        except cnndsl.CnnError as e:
            failed += 1
            print(f"{name:<22} refused: {e.message[:150]}")
        except Unexported as e:
            print(f"{name:<22} torch.onnx.export refused: {e}")
        except Exception as e:  # a bug of the importer: name it and go on
            failed += 1
            print(f"{name:<22} BUG {type(e).__name__}: {str(e)[:150]}")
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
