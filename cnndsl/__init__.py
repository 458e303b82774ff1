"""cnndsl: a declarative language for convolutional networks, with a shape checker and compilers.

    import cnndsl
    net = cnndsl.load("nets/vgg16.net")
    prog = cnndsl.parse(text)             # parse once ...
    net = prog.bind(bindings={"N": 3})    # ... bind many
    net.report()["totals"]["params"]      # 138357544
    model = net.to_torch()                # a torch.nn.Module
"""
from .errors import CnnError, Diagnostic
from .net import Net, Program, load, loads, parse
from .version import __version__

__all__ = ["CnnError", "Diagnostic", "Net", "Program", "load", "loads", "parse"]
