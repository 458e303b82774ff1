"""README covers every layer kind: the layer table, the counting conventions and the diagram legend
(issue 13: a kind added without its documentation fails here, naming the kind and the section)."""
import os
import re

import pytest

from cnndsl.kinds import KINDS
from cnndsl.kinds.base import DRAW_GROUPS

README = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()


def section(start, end):
    i = README.index(start)
    return README[i:README.index(end, i)]


LAYERS = section("## Layers", "## The report")
CONVENTIONS = section("### Counting conventions", "## The zoo")
DIAGRAMS = section("## Diagrams", "## Reliability")
# the legend sentence: "(legend at the bottom: convolution CONV; pooling MAXPOOL, ...)"
LEGEND = re.search(r"legend at the bottom: (.*?)\), parallel", DIAGRAMS, re.S).group(1)


def legend_groups():
    """README's legend as {kind name: legend group name}."""
    out = {}
    for part in " ".join(LEGEND.split()).split("; "):
        names = re.findall(r"\b[A-Z][A-Z0-9]+\b", part)
        label = part[:part.index(names[0])].strip() if names else part
        for n in names:
            out[n] = label
    return out


@pytest.mark.parametrize("name", sorted(KINDS))
def test_layer_table_names_kind(name):
    assert re.search(rf"`{name}`", LAYERS) or re.search(rf"\b{name}\b", LAYERS), \
        f"README's layer table does not name {name}"


@pytest.mark.parametrize("name", sorted(KINDS))
def test_counting_conventions_name_kind(name):
    assert re.search(rf"\b{name}\b", CONVENTIONS), f"README's counting conventions do not say how {name} counts"


@pytest.mark.parametrize("name", sorted(KINDS))
def test_diagram_legend_puts_kind_in_its_group(name):
    groups = legend_groups()
    assert name in groups, f"README's diagram legend does not list {name}"
    legend_name = DRAW_GROUPS[KINDS[name].draw_group][0]
    assert groups[name] == legend_name, \
        f"README's legend puts {name} under {groups[name]!r}; its kind draws it as {legend_name!r}"
