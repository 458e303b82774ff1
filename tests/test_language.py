"""The language: grammar decisions, names, variables, blocks, optionals, defaults, branches, includes."""
import pytest

import cnndsl
from cnndsl import CnnError


def names(text, **kw):
    return [n.name for n in cnndsl.loads(text, **kw).graph.nodes]


def ops(text, **kw):
    return [n.op for n in cnndsl.loads(text, **kw).graph.nodes]


def error(text, **kw) -> CnnError:
    with pytest.raises(CnnError) as e:
        cnndsl.loads(text, **kw)
    return e.value


# ---- the two grammar decisions STYLE.md asks to pin down first -------------------------
def test_repeat_count_is_an_atom_so_minus_sequences():
    # `(CONV-RELU)*N - POOL?` is N repetitions, then POOL; not (CONV-RELU)*(N - POOL)
    assert ops("input 32x32x3\n(CONV-RELU)*N - POOL?", bindings={"N": 2}) == \
        ["CONV", "RELU", "CONV", "RELU", "MAXPOOL"]


def test_minus_binds_tighter_than_branch_separators():
    g = cnndsl.loads("input 8x8x4\n{ ID + CONV(4, 3, p=1) - BN }").graph
    add = g.nodes[-1]
    assert add.op == "ADD" and add.inputs == ["input", "bn1"]
    assert g["bn1"].inputs == ["conv1"]


def test_parenthesised_count_expression():
    assert ops("input 8x8x3\nlet n = 3\nRELU*(n-1) - SIGMOID") == ["RELU", "RELU", "SIGMOID"]


def test_classic_pattern_exactly_as_written():
    text = "input 32x32x3\n[(CONV-RELU)*N - POOL?]*M - (FC-RELU)*K - SOFTMAX\n"
    g = cnndsl.loads(text, bindings={"N": 2, "M": 3, "K": 1}).graph
    assert [n.op for n in g.nodes].count("CONV") == 6
    assert [n.op for n in g.nodes].count("MAXPOOL") == 3
    assert g.nodes[-1].op == "SOFTMAX"
    # K = 0 is allowed: no FC at all
    g0 = cnndsl.loads(text, bindings={"N": 1, "M": 1, "K": 0}).graph
    assert "FC" not in [n.op for n in g0.nodes]


def test_two_line_file_and_multiline_network():
    assert ops("input 32x32x3\nCONV(8, 3)") == ["CONV"]
    text = "input 32x32x3\nCONV(8, 3) -\n  RELU\n  - FC(10)  # comment\n"
    assert ops(text) == ["CONV", "RELU", "FLATTEN", "FC"]


def test_kernel_forms():
    g = cnndsl.loads("input 16x16x3\nCONV(4, 3) - CONV(4, 3x3) - CONV(4, (3,5)) - CONV(4, 3, p=same)").graph
    assert [n.attrs["kernel"] for n in g.nodes] == [(3, 3), (3, 3), (3, 5), (3, 3)]
    assert [n.out_shape for n in g.nodes] == [(14, 14, 4), (12, 12, 4), (10, 8, 4), (10, 8, 4)]


def test_keyword_aliases_and_positional_arguments():
    g = cnndsl.loads("input 16x16x3\nCONV(8, 3, stride=2, padding=1, dilation=1, groups=1, bias=false)").graph
    a = g.nodes[0].attrs
    assert (a["s"], a["p"], a["bias"]) == ((2, 2), (1, 1), False)


# ---- names -----------------------------------------------------------------------------
def test_generated_names_are_numbered_per_scope():
    text = "input 32x32x3\ndef stage(c) = (CONV(c, 3, p=1) - RELU)*2 - POOL\nstage(8) - stage(16)"
    assert names(text) == ["stage1.conv1", "stage1.relu1", "stage1.conv2", "stage1.relu2", "stage1.pool1",
                           "stage2.conv1", "stage2.relu1", "stage2.conv2", "stage2.relu2", "stage2.pool1"]


def test_labels_name_layers_and_scopes():
    text = "input 227x227x3\nconv1: CONV(96, 11, s=4) - features: (CONV(8, 3) - RELU) - head: stage(4)\n" \
           "def stage(c) = CONV(c, 1)"
    text = "input 227x227x3\ndef stage(c) = CONV(c, 1)\n" \
           "conv1: CONV(96, 11, s=4) - features: (CONV(8, 3) - RELU) - head: stage(4)"
    assert names(text) == ["conv1", "features.conv1", "features.relu1", "head.conv1"]


def test_repeated_label_gets_a_suffix_not_a_clash():
    assert names("input 8x8x3\n(c: CONV(3, 1))*3") == ["c", "c_2", "c_3"]


def test_implicit_flatten_is_a_named_implicit_node():
    g = cnndsl.loads("input 4x4x2\nFC(3)").graph
    assert [(n.name, n.op, n.implicit) for n in g.nodes] == [("flatten1", "FLATTEN", True), ("fc1", "FC", False)]
    assert g.nodes[0].out_shape == (32,)


# ---- variables ---------------------------------------------------------------------------
def test_command_line_binding_overrides_let():
    text = "input 8x8x3\nlet N = 2\nRELU*N"
    assert len(names(text)) == 2
    assert len(names(text, bindings={"N": 4})) == 4
    assert len(names(text, bindings={"N": "2*3"})) == 6  # -D values are expressions


def test_binding_a_name_twice_is_an_error():
    e = error("input 8x8x3\nlet N = 2\nlet N = 3\nRELU*N")
    assert "already bound" in e.message and e.span.line == 3 and e.notes[0][0].line == 2


def test_sizes_with_spaces_get_a_hint():
    assert "without spaces" in error("input 32 x 32 x 3\nRELU").hint


def test_unbound_variable_names_it_and_how_to_bind():
    e = error("input 8x8x3\n(CONV-RELU)*N")
    assert "`N` is not bound" in e.message
    assert "let N" in e.hint and "-D N" in e.hint
    assert (e.span.line, e.span.col) == (2, 13)


def test_binding_that_binds_nothing_is_a_usage_error():
    e = error("input 8x8x3\nRELU", bindings={"Q": 1})
    assert e.usage and "binds nothing" in e.message


# ---- blocks ------------------------------------------------------------------------------
def test_blocks_nest_repeat_and_take_defaults():
    text = ("input 16x16x4\ndef unit(c, k=3) = CONV(c, k, p=same) - RELU\n"
            "def pair(c) = unit(c) - unit(c, k=1)\npair(8)*2")
    g = cnndsl.loads(text).graph
    assert [n.name for n in g.nodes if n.op == "CONV"] == \
        ["pair1.unit1.conv1", "pair1.unit2.conv1", "pair2.unit1.conv1", "pair2.unit2.conv1"]
    assert [n.attrs["kernel"] for n in g.nodes if n.op == "CONV"] == [(3, 3), (1, 1)] * 2


def test_recursion_between_blocks_is_an_error():
    e = error("input 8x8x3\ndef a = CONV(3, 1) - b\ndef b = a\na")
    assert "calls itself" in e.message and "a -> b -> a" in e.message


def test_block_arity_errors():
    assert "needs `c`" in error("input 8x8x3\ndef s(c) = CONV(c, 1)\ns").message
    assert "takes 1 argument" in error("input 8x8x3\ndef s(c) = CONV(c, 1)\ns(1, 2)").message


# ---- optionals ---------------------------------------------------------------------------
def test_optional_is_included_by_default_and_switchable():
    text = "input 8x8x3\nCONV(4, 3, p=1) - POOL?"
    assert ops(text) == ["CONV", "MAXPOOL"]
    assert ops(text, bindings={"pool": "off"}) == ["CONV"]
    assert ops("input 8x8x3\nlet pool = off\nCONV(4, 3, p=1) - POOL?") == ["CONV"]
    opt = cnndsl.loads(text).graph.optionals
    assert [(o.name, o.included, o.source) for o in opt] == [("pool", True, "default")]


def test_labelled_optional_takes_the_label_as_switch():
    assert ops("input 8x8x3\nCONV(4, 1) - drop: DROPOUT(0.5)?", bindings={"drop": "no"}) == ["CONV"]


def test_block_parameter_switches_an_optional_per_call():
    text = ("input 8x8x4\ndef block(c, shortcut=off) = { body: CONV(c, 3, p=1) + shortcut: CONV(c, 1)? }\n"
            "block(4) - block(4, shortcut=on)")
    g = cnndsl.loads(text).graph
    assert [n.name for n in g.nodes] == ["block1.body", "block1.add1", "block2.body", "block2.shortcut", "block2.add1"]
    assert g["block1.add1"].inputs == ["block1.body", "input"]  # the dropped branch is the identity
    assert sorted((o.name, o.included, o.source, o.uses) for o in g.optionals) == \
        [("shortcut", False, "parameter", 1), ("shortcut", True, "parameter", 1)]


def test_optional_switched_by_a_word_that_is_not_on_or_off():
    e = error("input 8x8x3\nPOOL?", bindings={"pool": "maybe"})
    assert e.usage and "switched on or off, not maybe" in e.message and "-D pool=off" in e.hint


def test_optional_bound_to_a_number_is_an_error():
    assert "not on/off" in error("input 8x8x3\nPOOL?", bindings={"pool": 7}).message


# ---- defaults ----------------------------------------------------------------------------
def test_bare_layers_mean_something_definite_and_the_report_says_so():
    net = cnndsl.loads("input 32x32x3\nCONV - POOL - FC")
    g = net.graph
    assert g.nodes[0].attrs["filters"] == 32 and g.nodes[0].out_shape == (32, 32, 32)
    assert g.nodes[1].out_shape == (16, 16, 32)
    assert g["fc1"].attrs["units"] == 512
    used = {(d["op"], d["arg"]) for d in net.report()["defaults"]}
    assert {("CONV", "filters"), ("CONV", "kernel"), ("CONV", "p"), ("MAXPOOL", "kernel"), ("FC", "units")} <= used


def test_default_statement_changes_bare_and_called_layers():
    g = cnndsl.loads("input 32x32x3\ndefault CONV(16, 5, p=same)\nCONV - CONV(8)").graph
    assert [n.attrs["filters"] for n in g.nodes] == [16, 8]
    assert [n.attrs["kernel"] for n in g.nodes] == [(5, 5), (5, 5)]


def test_default_statement_replaces_the_builtin_bare_meaning():
    g = cnndsl.loads("input 32x32x3\ndefault CONV(64, 5)\nCONV - CONV(32)").graph
    assert [n.attrs["p"] for n in g.nodes] == [(0, 0), (0, 0)]  # not the built-in p=same
    assert [n.out_shape for n in g.nodes] == [(28, 28, 64), (24, 24, 32)]
    e = error("input 32x32x3\ndefault CONV(p=same)\nCONV")
    assert "bare CONV needs filters" in e.message and "line 2" in e.message


def test_call_without_required_argument_explains():
    e = error("input 8x8x3\nCONV(s=2)")
    assert "CONV needs filters" in e.message and "default CONV" in e.hint


# ---- branches ----------------------------------------------------------------------------
def test_concat_and_add_joins_appear_as_layers():
    g = cnndsl.loads("input 28x28x256\n{ CONV(64, 1) | CONV(32, 3, p=1) | MAXPOOL(3, s=1, p=1) }").graph
    cat = g.nodes[-1]
    assert cat.op == "CONCAT" and cat.out_shape == (28, 28, 64 + 32 + 256)
    assert cat.inputs == ["conv1", "conv2", "maxpool1"]


def test_unjoinable_branches_name_both_shapes():
    e = error("input 8x8x4\n{ ID + CONV(8, 3, p=1) }")
    assert "8x8x4" in e.message and "8x8x8" in e.message
    assert len(e.notes) == 2


def test_mixing_join_kinds_in_one_brace_is_a_clear_parse_error():
    e = error("input 8x8x4\n{ ID + ID | ID }")
    assert "one brace joins" in e.hint


# ---- includes ----------------------------------------------------------------------------
def test_include_a_block_library(tmp_path):
    (tmp_path / "lib.net").write_text("def unit(c) = CONV(c, 3, p=1) - RELU\n")
    (tmp_path / "main.net").write_text('include "lib.net"\ninput 8x8x3\nunit(4)*2\n')
    assert [n.op for n in cnndsl.load(tmp_path / "main.net").graph.nodes] == ["CONV", "RELU"] * 2


def test_include_cycle_is_an_error(tmp_path):
    (tmp_path / "a.net").write_text('include "a.net"\n')
    (tmp_path / "main.net").write_text('include "a.net"\ninput 8x8x3\nRELU\n')
    with pytest.raises(CnnError, match="includes itself"):
        cnndsl.load(tmp_path / "main.net")


# ---- input ---------------------------------------------------------------------------------
def test_input_override_and_missing_input():
    net = cnndsl.loads("input 224x224x3\nCONV(8, 3)", input="32x32x1")
    assert net.graph.nodes[0].out_shape == (30, 30, 8)
    e = error("CONV(8, 3)")
    assert "no input volume" in e.message and "input 224x224x3" in e.hint


def test_errors_point_at_line_and_column():
    e = error("input 8x8x3\nRELU - COVN(3, 1)")
    assert (e.span.line, e.span.col) == (2, 8)
    assert "did you mean CONV" in e.hint
    text = e.render()
    assert "<string>:2:8: error" in text and "^~~~" in text
