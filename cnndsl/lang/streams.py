"""Several live streams (HRNet's resolutions, NASNet's two previous cells): the elaborator's part.

What flows through a network expression is one tensor (an IR node's name) or, after a tuple
`(a, b, c)`, a tuple of them: the streams. `$k` picks stream k; a layer reads one tensor, so a
layer given streams is an error (E305); a join's branches each start from the streams and give
one tensor each. Streams exist only here: the IR is the same DAG of one-output nodes, so the
analysis, the backends and the diagrams read a net with streams as any other.

    >>> import cnndsl
    >>> g = cnndsl.loads("input 8x8x4\\n(ID, CONV(8, 3, s=2, p=1)) - { $0 + $1 - CONV(4, 1) - UPSAMPLE(2) }").graph
    >>> [(n.name, n.inputs) for n in g.nodes]
    [('conv1', ['input']), ('conv2', ['conv1']), ('upsample1', ['conv2']), ('add1', ['input', 'upsample1'])]
"""
from __future__ import annotations

from . import astnodes as A
from ..errors import CnnError
from ..kinds import fmt_shape
from .values import show


class Streams:
    """Needs the elaborator: `expr`, `copies`, `count`, `recover` and `graph`."""

    def streams(self, e: A.Streams, x, sc):
        """`(a, b, c)`: each element from x; their outputs side by side. An element that gives
        streams gives them all in its place: `(ID, b)` adds b's output to the streams flowing in."""
        outs = []
        for b in e.items:
            made = self.copies(b, x, sc) if isinstance(b, A.Copies) else [self.expr(b, x, sc)]
            for o in made:
                outs += o if type(o) is tuple else [o]
        if not outs:  # `((b)**0)`
            self.recover(CnnError("the tuple gives no streams", e.span, code="E305",
                                  hint="a tuple of copies needs a count of at least 1"), sc)
            return x
        return outs[0] if len(outs) == 1 else tuple(outs)

    def stream(self, e: A.Stream, x, sc):
        """`$k`: stream k of x (one tensor is stream 0 of itself)."""
        live = x if type(x) is tuple else (x,)
        k = self.value(e.index, sc)
        if isinstance(k, float) and k.is_integer():
            k = int(k)
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise CnnError(f"a stream is numbered by a whole number from 0, not {show(k)}", e.index.span, code="E305",
                           hint="`$0` is the first stream, `$(i + 1)` the one after stream i")
        if k >= len(live):
            shown = "one tensor flows in here, `$0`" if len(live) == 1 else \
                f"{len(live)} streams flow in here, `$0` to `${len(live) - 1}`"
            raise CnnError(f"there is no stream `${k}`: {shown}", e.span, code="E305",
                           hint="streams come from a tuple before this point, `(a, b)`, or from the streams "
                                "a block is called with; they count from $0")
        return live[k]

    def one_tensor(self, x, what: str, span) -> str:
        """x, when it is one tensor. Like a shape error, streams where one tensor belongs end the
        elaboration: any stream taken in their place would give errors that only echo this one."""
        if type(x) is not tuple:
            return x
        raise CnnError(f"{what} reads one tensor, but {len(x)} streams flow in here", span, code="E305",
                       hint="pick one (`$0 - ...`), run one on each (`($0 - a, $1 - b)`) or join them (`{ $0 + $1 }`)")

    def join_error(self, e: A.Branches, outs, notes, err):
        """The notes, arithmetic and hint of a join whose branches do not fit: the notes point at the
        two branches that disagree; a fuse of streams (a branch starting with `$k`) whose sizes
        differ by a whole factor says how to bring one to the other."""
        shapes = [self.graph.shape_of(o) for o in outs]
        pair = getattr(err, "shapes", None)
        if pair and pair[0] in shapes and pair[1] in shapes:
            notes = (notes[shapes.index(pair[0])], notes[shapes.index(pair[1])])
        if not pair or not any(_reads_stream(b) for b in e.items):
            return notes, err.arithmetic, err.hint
        a, b = pair
        if len(a) != 3 or len(b) != 3 or a[:2] == b[:2]:
            return notes, err.arithmetic, "streams fused by a join must give the same volume: a 1x1 conv changes the channels"
        big, small = (a, b) if a[0] >= b[0] else (b, a)
        f = big[0] // small[0]
        if big[0] % small[0] or big[1] % small[1] or big[1] // small[1] != f:
            return notes, err.arithmetic, err.hint
        return notes, (f"{big[0]}x{big[1]} / {small[0]}x{small[1]} = {f}: one stream is {f} times the other's "
                       f"resolution"), (f"bring the {fmt_shape(small)} stream up, `CONV({big[2]}, 1, bias=false) - BN - "
                                        f"UPSAMPLE({f})`, or the {fmt_shape(big)} one down, "
                                        f"`CONV({small[2]}, 3, s=2, p=1, bias=false) - BN` (per halving), as HRNet's "
                                        f"fuse does")


def _reads_stream(b) -> bool:
    """Whether a branch starts by picking a stream (`$1 - ...`)."""
    while isinstance(b, (A.Seq, A.Label, A.Repeat)):
        b = b.items[0] if isinstance(b, A.Seq) else b.body
    return isinstance(b, A.Stream)
