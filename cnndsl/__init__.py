"""cnndsl: a declarative language for convolutional networks, with a shape checker and compilers.

    import cnndsl
    net = cnndsl.load("nets/vgg16.net")
    prog = cnndsl.parse(text)             # parse once ...
    net = prog.bind(bindings={"N": 3})    # ... bind many
    net.report()["totals"]["params"]      # 138357544
    model = net.to_torch()                # a torch.nn.Module
    imp = cnndsl.import_onnx("r18.onnx")  # a foreign model as a spec: imp.text, imp.program, imp.net
"""
from .errors import CnnError, Diagnostic
from .net import Net, Program, load, loads, parse
from .version import __version__

__all__ = ["CnnError", "Diagnostic", "Net", "Program", "load", "loads", "parse", "import_model", "import_onnx",
           "import_torch", "import_prototxt"]


def import_model(source, input=None, partial=False):
    """An ONNX file, a Caffe prototxt or a PyTorch module (`package.module:callable`, or the module) as a
    spec: an `Imported` (cnndsl.importers) with `.text`, `.program`, `.net`, `.tensors`, `.check()`, `.save()`."""
    from .importers import import_model as run
    return run(source, input=input, partial=partial)


def import_onnx(path, input=None, partial=False):
    """An ONNX file as a spec (see import_model)."""
    from .importers import import_onnx as run
    return run(path, input=input, partial=partial)


def import_torch(module, input=None, partial=False):
    """A PyTorch module, traced with torch.fx, as a spec (see import_model)."""
    from .importers import import_torch as run
    return run(module, input=input, partial=partial)


def import_prototxt(path, input=None, partial=False):
    """A Caffe prototxt as a spec, without weights (see import_model)."""
    from .importers import import_prototxt as run
    return run(path, input=input, partial=partial)
