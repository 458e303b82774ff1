"""cnndsl: a declarative language for convolutional networks, with a shape checker and compilers.

    import cnndsl
    net = cnndsl.load("nets/vgg16.net")
    net.report()["totals"]["params"]      # 138357544
    model = net.to_torch()                # a torch.nn.Module
"""
from .errors import CnnError
from .net import Net, load, loads

__all__ = ["CnnError", "Net", "load", "loads"]
__version__ = "0.1.0"
