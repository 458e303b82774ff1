"""The AST pretty-printer (cnndsl/lang/printer.py): text -> AST -> text -> AST is the same program.

Properties, over every file of nets/ (nets, library, examples), the golden error specs that parse,
random valid specs (tests/specgen.py), specs derived from the grammar's own productions
(tests/test_fuzz.py) and ASTs built directly (as an importer builds them):
- parse -> print -> parse gives the same AST (`printer.structure`: spans left out, number types kept);
- printing is idempotent: print(parse(print(p))) == print(p);
- the re-parsed program binds to the same report (every figure and volume; only positions differ),
  or fails with the same diagnostics;
- the same at a width of 24 columns, where nearly every sequence and bracket breaks.
Then `search --emit`: a member is the family's program bound and printed, and loads from any folder.
"""
import glob
import os
import re
from contextlib import contextmanager
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cnndsl
from cnndsl.errors import CnnError
from cnndsl.net import bind
from cnndsl.lang import astnodes as A
from cnndsl.lang import printer
from cnndsl.lang.printer import format_expr, format_program, format_value, structure
from cnndsl.lang.program import inlined, parse, parse_file
from cnndsl.lang.syntax import parse_text, parse_value
from specgen import VARIANTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETS = os.path.join(ROOT, "nets")
SHIPPED = sorted(glob.glob(os.path.join(ROOT, "nets", "*.net")) + glob.glob(os.path.join(ROOT, "nets", "*", "*.net")))
SETTINGS = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@contextmanager
def width(n):
    old, printer.WIDTH = printer.WIDTH, n
    try:
        yield
    finally:
        printer.WIDTH = old


def figures(report):
    """A report without positions (line, column, file) and the line numbers its texts quote."""
    if isinstance(report, dict):
        return {k: figures(v) for k, v in report.items() if k not in ("line", "col", "end_line", "end_col", "source", "file")}
    if isinstance(report, list):
        return [figures(v) for v in report]
    return re.sub(r"\bline \d+", "line _", report) if isinstance(report, str) else report


def round_trip(prog, reparse):
    """Print, parse back: the same AST, and the same text again."""
    text = format_program(prog)
    again = reparse(text)
    assert structure(again) == structure(prog), text
    assert format_program(again) == text
    return text, again


# ---- every shipped net and library file ------------------------------------------------------------
def test_every_shipped_file_round_trips_and_reports_the_same(tmp_path):
    """All of nets/ and nets/lib/ (includes read): the same AST and report; inlined, the same
    report from a folder where the includes are out of reach (how `search --emit` writes members).
    The variants of a family (specgen.VARIANTS: VGG-19 beside VGG-16, written alike) under
    CNNDSL_FULL_ZOO=1 only."""
    full = bool(os.environ.get("CNNDSL_FULL_ZOO"))
    nets = skipped = 0
    for path in SHIPPED:
        if not full and os.path.basename(path)[:-4] in VARIANTS and os.path.dirname(path) == NETS:
            skipped += 1
            continue
        prog = parse_file(path)
        text, again = round_trip(prog, lambda t: parse(t, path))
        over = [line for line in text.splitlines() if len(line) > printer.WIDTH]
        assert all(len(_parts(line)) == 1 for line in over), over  # one value longer than a line
        with width(24):  # the text alone (the included files' own round trips are theirs)
            round_trip(replace(prog, statements=tuple(replace(s, program=None) if isinstance(s, A.Include) else s
                                                      for s in prog.statements)), parse_text)
        if prog.net is None:
            continue
        nets += 1
        want = figures(bind(prog).report())
        assert figures(bind(again).report()) == want, path
        if any(isinstance(s, A.Include) for s in prog.statements):
            alone = cnndsl.loads(format_program(inlined(prog)), path=str(tmp_path / os.path.basename(path)))
            assert figures(alone.report()) == want, path
    assert nets + skipped == len(glob.glob(os.path.join(ROOT, "nets", "*.net"))) + 2 > 80  # and nets/examples/
    assert nets > 30 and (skipped == 0 if full else skipped > 30)


def test_the_golden_error_specs_fail_the_same_way_printed():
    """tests/errors/: each spec that parses (the rest are syntax errors) prints back to itself, and
    binding the printed program gives the same diagnostics (codes and messages) or warnings."""
    def outcome(prog):
        try:
            return [w.message for w in bind(prog).warnings]
        except CnnError as e:
            return [(d.code, d.message) for d in e.diagnostics]
    n = 0
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "errors", "*.net"))):
        try:
            prog = parse(open(path, "rb").read(), path)
        except CnnError:
            continue
        _, again = round_trip(prog, lambda t: parse(t, path))
        assert outcome(again) == outcome(prog), path
        n += 1
    assert n >= 20


def _parts(line):
    """The comma-separated parts of a line, brackets respected."""
    parts, depth, cur = [], 0, ""
    for ch in line.strip() + ",":
        depth += (ch in "([{") - (ch in ")]}")
        if ch == "," and depth <= 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p for p in parts if p.strip()]


def test_the_printed_resnet18_reads_like_the_readme():
    text = format_program(parse_file(os.path.join(ROOT, "nets", "resnet18.net")))
    assert text.split("\n\n")[1] == """def basic(c, s=1, downsample=off) = {
    conv1: CONV(c, 3, s=s, p=1, bias=false) - bn1: BN - relu: RELU
    - conv2: CONV(c, 3, p=1, bias=false) - bn2: BN
  + downsample: (CONV(c, 1, s=s, bias=false) - BN)?
} - relu: RELU"""


# ---- random specs ------------------------------------------------------------------------------------
def test_random_valid_specs_round_trip_and_report_the_same():
    from specgen import random_specs
    n = 0
    for text, net in random_specs(60, seed=23):
        prog = parse(text, "random.net")
        _, again = round_trip(prog, lambda t: parse(t, "random.net"))
        assert figures(bind(again).report()) == figures(net.report()), text
        n += 1
    assert n == 60


def test_specs_from_the_grammars_productions_round_trip():
    """Every production of grammars/cnn.lark, drawn by the fuzzer's generator (seeded); what does not
    parse is skipped (it is the fuzzer's business), what parses prints back to itself at both widths."""
    import random
    from test_fuzz import _Chooser, grammar_spec
    rng, parsed = random.Random(23), 0
    for _ in range(200):
        text = grammar_spec(_Chooser(rng=rng))
        try:
            prog = parse_text(text)
        except CnnError:
            continue
        parsed += 1
        for w in (printer.WIDTH, 24):
            with width(w):
                round_trip(prog, parse_text)
    assert parsed >= 100  # about two in three parse


# ---- ASTs built directly, as an importer builds them ----------------------------------------------
NAMES = st.sampled_from(["a", "b", "N", "c2", "width_per_group", "on", "same", "x1", "i", "CONV", "RELU", "blk"])
KINDS = st.sampled_from(["CONV", "RELU", "BN", "MAXPOOL", "FC", "ID", "stage", "b"])


def _values():
    leaves = st.one_of(
        st.integers(0, 10**18).map(lambda v: A.Num(v, None)),
        st.floats(0, allow_nan=False, allow_infinity=True).map(lambda v: A.Num(v, None)),
        NAMES.map(lambda n: A.Var(n, None)),
        st.lists(st.integers(0, 9), min_size=2, max_size=3).map(lambda v: A.Dims(tuple(v), None)),
        st.sampled_from(["lib.net", "", "a b"]).map(lambda v: A.Str(v, None)))

    def grow(inner):
        return st.one_of(
            st.tuples(st.sampled_from(["+", "-", "*", "/", "//", "%", "**"]), inner, inner)
            .map(lambda t: A.BinOp(t[0], t[1], t[2], None)),
            inner.map(lambda v: A.Neg(v, None)),
            st.tuples(NAMES, st.lists(inner, max_size=3)).map(lambda t: A.Func(t[0], tuple(t[1]), None)),
            st.lists(inner, min_size=2, max_size=3).map(lambda v: A.Tuple(tuple(v), None)))
    return st.recursive(leaves, grow, max_leaves=12)


VALUES = _values()
ARGS = st.lists(st.tuples(st.one_of(st.none(), NAMES), VALUES).map(lambda t: A.Arg(t[0], t[1], None)), max_size=3)


def _networks():
    leaves = st.one_of(KINDS.map(lambda k: A.Call(k, (), True, None)),
                       st.tuples(KINDS, ARGS).map(lambda t: A.Call(t[0], tuple(t[1]), False, None)))

    def grow(inner):
        return st.one_of(
            st.lists(inner, min_size=2, max_size=5).map(lambda v: A.Seq(tuple(v), None)),
            st.tuples(NAMES, inner).map(lambda t: A.Label(t[0], t[1], None)),
            st.tuples(inner, VALUES, st.one_of(st.none(), NAMES)).map(lambda t: A.Repeat(t[0], t[1], None, t[2])),
            inner.map(lambda v: A.Optional(v, None)),
            st.tuples(st.sampled_from(["CONCAT", "ADD", "MUL", "MEAN"]), st.lists(inner, min_size=2, max_size=3))
            .map(lambda t: A.Branches(t[0], tuple(t[1]), None)))
    return st.recursive(leaves, grow, max_leaves=14)


NETWORKS = _networks()


def _statements():
    choices = st.one_of(st.tuples(VALUES, VALUES).map(lambda t: A.Choices(t, True, None)),
                        st.lists(VALUES, min_size=1, max_size=3).map(lambda v: A.Choices(tuple(v), False, None)))
    params = st.lists(st.tuples(NAMES, st.one_of(st.none(), VALUES)).map(lambda t: A.Param(t[0], t[1], None)),
                      max_size=3)
    dims = st.lists(st.one_of(st.integers(1, 512).map(lambda v: A.Num(v, None)),
                              st.sampled_from(["C", "H", "W", "in"]).map(lambda n: A.Var(n, None))), min_size=1,
                    max_size=3).filter(lambda d: len(d) > 1 or getattr(d[0], "name", "") != "in")  # `input in`
    return st.one_of(
        st.tuples(NAMES, VALUES, st.one_of(st.none(), choices)).map(lambda t: A.Let(t[0], t[1], None, t[2])),
        st.tuples(NAMES, params, NETWORKS).map(lambda t: A.Def(t[0], tuple(t[1]), t[2], None)),
        st.tuples(KINDS, ARGS).map(lambda t: A.Default(t[0], tuple(t[1]), None)),
        st.sampled_from(["lib.net", "sub/blocks.net"]).map(lambda p: A.Include(p, None)),
        dims.map(lambda d: A.InputDecl(tuple(d), None)))


@SETTINGS
@given(VALUES)
def test_any_value_prints_to_a_text_that_parses_to_it(value):
    assert structure(parse_value(format_value(value))) == structure(value), format_value(value)


@SETTINGS
@given(st.lists(_statements(), max_size=4), NETWORKS)
def test_any_program_prints_to_a_text_that_parses_to_it(statements, net):
    prog = A.Program(tuple(statements), net)
    for w in (printer.WIDTH, 24):
        with width(w):
            round_trip(prog, parse_text)


# ---- precedence: parentheses where the grammar needs them, nowhere else --------------------------------
@pytest.mark.parametrize("text", [
    "a + b * c", "(a + b) * c", "a - b - c", "a - (b - c)", "a / b * c", "a / (b * c)", "a // b % c",
    "-a", "-(a * b)", "-a * b", "-a**b", "(-a)**b", "a**b**c", "(a**b)**c", "2**-1", "a * -b", "a - -b",
    "C * 2**i", "(a, b + 1, 3x3)", "make_divisible(c * W, 8)", "min(a, (b, c))", '"lib.net"', "1e999", "0.1",
])
def test_values_print_with_minimal_parentheses(text):
    assert format_value(parse_value(text)) == text


@pytest.mark.parametrize("text", [
    "CONV - RELU", "(CONV - RELU)*N - POOL?", "[(CONV - RELU)*N - POOL?]*M @i", "a: CONV - BN", "a: [CONV - BN]",
    "(a: CONV)*2", "(a: CONV)?", "b: a: CONV", "RELU*2*3", "RELU?*2", "RELU*N?", "RELU*(N - 1)", "RELU*ceil(3 * D)",
    "RELU*(2.0)", "RELU*(-1)", "CONV - (BN - RELU)", "{ ID + CONV - BN } - RELU", "{ a | b - c | d }",
    "{ ID .* GAP - CONV(8, 1) }", "{ a & b & c }", "{ { a | b } + c }", "RELU*2 - { RELU*2 .* ID }",
    "CONV()", "CONV(64, 3x3, s=2, p=(1, 0), bias=false)", "features: [stage(64) - stage(128)]",
])
def test_networks_print_with_minimal_parentheses(text):
    assert format_expr(parse_text(text).net) == text


def test_a_sequence_of_one_term_prints_as_the_term():
    relu = A.Call("RELU", (), True, None)
    assert format_expr(A.Repeat(A.Seq((A.Label("a", relu, None),), None), A.Num(2, None), None)) == "(a: RELU)*2"


@pytest.mark.parametrize("node,what", [
    (A.Branches("ADD", (A.Call("ID", (), True, None),), None), "a join of one branch"),
    (A.Tuple((A.Num(1, None),), None), "a tuple of 1 value"),
    (A.Num(-3, None), "the number -3"),
    (A.Var("two words", None), "the name 'two words'"),
    (A.Var("in", None), "the name 'in'"),
    (A.Str('say "hi"', None), "the string"),
    (A.InputDecl((A.Var("xC", None),), None), "the input dimension"),
    (A.InputDecl((A.Var("in", None),), None), "the name 'in'"),
])
def test_asts_without_a_spelling_are_refused(node, what):
    with pytest.raises(CnnError, match=what) as e:
        format_program(A.Program((node,), None)) if isinstance(node, A.InputDecl) else \
            format_expr(node) if isinstance(node, A.Branches) else format_value(node)
    assert e.value.code == "E900"


# ---- a program built from nodes, as an importer will: its layout -------------------------------------
def test_a_program_built_from_nodes():
    n = lambda v: A.Num(v, None)  # noqa: E731
    v = lambda name: A.Var(name, None)  # noqa: E731
    call = lambda name, *args, **kw: A.Call(name, tuple(A.Arg(None, a, None) for a in args)  # noqa: E731
                                            + tuple(A.Arg(k, a, None) for k, a in kw.items()), not args and not kw, None)
    unit = A.Seq((call("CONV", BinOp("*", v("c"), BinOp("**", n(2), v("i"))), n(3), p=n(1)), call("BN"),
                  call("RELU")), None)
    body = A.Seq((A.Branches("ADD", (call("ID"), A.Repeat(unit, v("n"), None, "i")), None), call("RELU")), None)
    prog = A.Program((
        A.Include("lib/blocks.net", None),
        A.InputDecl((n(32), n(32), v("C")), None),
        A.Let("C", n(3), None),
        A.Let("N", n(2), None, A.Choices((n(1), n(5)), True, None)),
        A.Let("W", n(16), None, A.Choices((n(16), n(32), n(64)), False, None)),
        A.Let("pool", v("on"), None, A.Choices((v("each"),), False, None)),
        A.Default("CONV", (A.Arg(None, n(64), None), A.Arg("p", v("same"), None)), None),
        A.Def("res", (A.Param("c", None, None), A.Param("n", n(2), None)), body, None),
    ), A.Seq((A.Label("stem", call("CONV", v("W"), n(3)), None), A.Repeat(call("res", v("W")), v("N"), None),
              A.Optional(call("POOL"), None), A.Branches("CONCAT", (call("RELU"), call("ID")), None),
              call("GAP"), call("FC", n(10))), None))
    text = format_program(prog)
    assert text == """include "lib/blocks.net"
input 32x32xC
let C = 3
let N = 2 in 1..5
let W = 16 in 16, 32, 64
let pool = on in each
default CONV(64, p=same)

def res(c, n=2) = { ID + (CONV(c * 2**i, 3, p=1) - BN - RELU)*n @i } - RELU

stem: CONV(W, 3) - res(W)*N - POOL? - { RELU | ID } - GAP - FC(10)
"""
    assert structure(parse_text(text)) == structure(prog)


def BinOp(op, a, b):
    return A.BinOp(op, a, b, None)


# ---- search --emit: members bound from the program, printed --------------------------------------------
def test_an_emitted_member_is_the_family_bound(tmp_path):
    from cnndsl.search import emit as W
    from cnndsl.search.enumerate import search
    from cnndsl.search.space import Space
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.net").write_text("let W = 4 in 4, 8   # in the library\n"
                                                 "def unit(c) = CONV(c, 3, p=1) - BN - RELU\n")
    family = tmp_path / "fam.net"
    family.write_text('include "lib/blocks.net"\ninput 16x16x3\n# note: a note for the report\n'
                      "let N = 1 in 1..3\n(unit(W) - POOL?)*N - { ID + unit(W) } - FC(K)\n")
    prog = cnndsl.parse(family.read_text(), str(family))
    space = Space(prog, {"pool": "on,off", "K": "10"}, input="12x12x3")
    result = search(space, workers=1)
    members = tmp_path / "members"
    members.mkdir()
    assert result["members"]
    for rec in result["members"]:
        name, text = W.member_file(prog, space, rec["index"])
        (members / name).write_text(text)
        net = cnndsl.load(members / name)  # the library is out of reach: inlined
        t = net.report()["totals"]
        assert (t["params"], t["macs"], t["train_bytes"]) == (rec["params"], rec["macs"], rec["memory"]), text
        assert net.notes == ["a note for the report"]
        member = parse(text, str(members / name))
        assert structure(member.net) == structure(prog.net)  # the family's own network, bound by lets
        assert "in 1..3" not in text and "include" not in text and "input 12x12x3" in text
        choices = space.member(rec["index"])
        assert f"let N = {choices['N']}\n" in text and f"let W = {choices['W']}\n" in text
        assert f"let pool = {'on' if choices['pool'] else 'off'}\n" in text and "let K = 10\n" in text


def test_inlined_puts_each_included_file_once(tmp_path):
    """A diamond (a and b both include common) inlines common once, where elaboration reads it."""
    (tmp_path / "common.net").write_text("let C = 4\n")
    (tmp_path / "a.net").write_text('include "common.net"\ndef ua = CONV(C, 3, p=1)\n')
    (tmp_path / "b.net").write_text('include "common.net"\ndef ub = RELU\n')
    main = tmp_path / "main.net"
    main.write_text('include "a.net"\ninclude "b.net"\ninput 8x8x3\nua - ub\n')
    for prog in (parse_file(main), parse_text(main.read_text(), str(main))):  # read now, when not yet
        text = format_program(inlined(prog))
        assert text == "let C = 4\n\ndef ua = CONV(C, 3, p=1)\n\ndef ub = RELU\n\ninput 8x8x3\n\nua - ub\n"
    assert figures(cnndsl.loads(text).report()) == figures(cnndsl.load(main).report())
