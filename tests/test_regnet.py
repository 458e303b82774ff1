"""nets/lib/regnet.net: RegNet's stage widths, group widths and depths as `let`s of the paper's
parameters, against torchvision's BlockParams.from_init_params.

tests/test_zoo.py checks the 15 torchvision RegNets layer by layer; here the library's formulas meet
200 more designs of the RegNet space (tests/reference/regnet_block_params.json, written by
tools/regnet_block_params.py with torchvision itself), a variant file is shown to be nothing but
its parameters, and the module paths are torchvision's but for what a label cannot hold.

    pytest tests/test_regnet.py -q
"""
import json
import os
import re

import pytest

import cnndsl

ROOT = os.path.join(os.path.dirname(__file__), "..")
NETS = os.path.join(ROOT, "nets")
with open(os.path.join(os.path.dirname(__file__), "reference", "regnet_block_params.json")) as f:
    DESIGNS = json.load(f)["designs"]
with open(os.path.join(os.path.dirname(__file__), "reference", "torchvision.json")) as f:
    REFERENCE = json.load(f)["nets"]
PARAMETERS = ("depth", "w_0", "w_a", "w_m", "group_width")


# A spec of the parameters that includes the library; its network is one ReLU: only the `let`s are
# wanted. Parsed once, bound to each design (as -D would).
PROBE = cnndsl.parse("".join(f"let {k} = 1\n" for k in PARAMETERS)
                     + 'let se = off\ninclude "lib/regnet.net"\ninput 8x8x3\nRELU\n', os.path.join(NETS, "probe.net"))


def stages(design):
    """The library's stage widths, depths and group widths for a design."""
    lets = PROBE.bind(bindings={k: design[k] for k in PARAMETERS}).graph.lets
    return ([lets[f"w{k}"] for k in range(1, 5)], [lets[f"d{k}"] for k in range(1, 5)],
            [lets[f"gw{k}"] for k in range(1, 5)])


def test_library_equals_torchvision_on_200_designs():
    assert len(DESIGNS) == 200
    for d in DESIGNS:
        assert stages(d) == (d["widths"], d["depths"], d["group_widths"]), {k: d[k] for k in PARAMETERS}


def parameters_of(name):
    text = open(os.path.join(NETS, f"{name}.net")).read()
    return {k: v for k, v in re.findall(r"^let (\w+) = (\S+)", text, re.M) if k in PARAMETERS}


def layers(net):
    return [(l["name"], l["op"], l["desc"], l["out"], l["params"], l["inputs"]) for l in net.report()["layers"]]


@pytest.mark.parametrize("file, other, extra", [
    ("regnet_y_400mf", "regnet_y_3_2gf", {}),
    ("regnet_x_800mf", "regnet_x_16gf", {}),
    ("regnet_y_800mf", "regnet_x_400mf", {"se": "off"}),  # RegNetX is RegNetY without SE
])
def test_a_variant_file_is_its_parameters(file, other, extra):
    """Binding one variant's file to another's parameters (-D) builds the other, layer for layer."""
    bound = cnndsl.load(os.path.join(NETS, f"{file}.net"), bindings={**parameters_of(other), **extra})
    assert layers(bound) == layers(cnndsl.load(os.path.join(NETS, f"{other}.net")))


def torchvision_path(ours):
    """Our module path as torchvision spells it: a block `blockK-I` is our `block{I+1}` (a label
    cannot hold `-`), and a Conv2dNormActivation's `0`/`1`/`2` are our `conv`/`bn`/`relu`."""
    parts = ours.split(".")
    out = []
    for i, p in enumerate(parts):
        if i == 2 and parts[0] == "trunk_output":
            p = f"{parts[1]}-{int(p[len('block'):]) - 1}"
        out.append({"conv": "0", "bn": "1"}.get(p, p))
    return ".".join(out)


@pytest.mark.parametrize("name", ["regnet_y_400mf", "regnet_x_400mf", "regnet_y_128gf"])
def test_module_paths_are_torchvision_but_for_labels(name):
    ours = cnndsl.load(os.path.join(NETS, f"{name}.net")).to_torch(device="meta").state_dict()
    theirs = [k for k, _ in REFERENCE[name]["state_dict"]]
    assert [torchvision_path(k) for k in ours] == theirs
