"""The census of timm's convolutional nets (tests/reference/timm_census.json, tools/timm_census.py)
against itself, against the written families' reference data and against README's table of families.

    pytest tests/test_timm_census.py -q
"""
import collections
import json
import os
import re

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..")
CENSUS = json.load(open(os.path.join(ROOT, "tests", "reference", "timm_census.json")))
REFERENCE = json.load(open(os.path.join(ROOT, "tests", "reference", "timm.json")))["nets"]
README = open(os.path.join(ROOT, "README.md")).read()
SECTION = README[README.index("## timm's convolutional families"):README.index("## PyTorch")]
MODELS = CENSUS["models"]


def table():
    """README's table of families: [(families, CNN count, written timm names, the rest's text)]."""
    rows = []
    for line in SECTION.splitlines():
        m = re.match(r"\| (`[a-z0-9_]+`(?:, `[a-z0-9_]+`)*) \| (\d+) \|\s*(.*?)\s*\|\s*(.*?)\s*\|$", line)
        if m:
            written = [w for w in re.findall(r"`([a-z0-9_]+)`", m[3])]
            rows.append((re.findall(r"`([a-z0-9_]+)`", m[1]), int(m[2]), written, m[4]))
    return rows


def test_every_model_is_counted_once():
    t = CENSUS["totals"]
    skipped = sum(len(f["models"]) for f in CENSUS["attention_first"].values())
    kinds = collections.Counter(r["kind"] for r in MODELS.values())
    assert kinds == {"cnn": t["cnn"], "hybrid": t["hybrid"]} and skipped == t["skipped"]
    assert t["cnn"] + t["hybrid"] + t["skipped"] == t["models"]
    assert sum(sum(c.values()) for c in CENSUS["families"].values()) == t["models"]
    assert len(CENSUS["families"]) == t["families"]


def test_every_cnn_and_hybrid_has_its_figures():
    for name, r in MODELS.items():
        assert r["params"] > 0 and r["buffers"] >= 0 and len(r["input_hwc"]) == 3, name
        assert r["conv_fc_macs"] > 0 or r.get("macs_missing"), name
        assert (r["kind"] == "hybrid") == bool(r.get("self_attention")), name


def test_the_census_agrees_with_fvcore_on_every_reference_net():
    """The census counts on the meta device (torch.utils.flop_counter); tests/reference/timm.json
    has fvcore's totals from a real forward (and the hand sum where fvcore misses padding="same"):
    the same numbers for every net written."""
    for ours, ref in REFERENCE.items():
        census = MODELS[ref["timm_name"]]
        assert (census["params"], census["conv_fc_macs"]) == (ref["params"], ref["conv_fc_macs"]), ours
        assert census["input_hwc"] == ref["input_hwc"] and census["buffers"] == ref["buffers"], ours


def test_readme_figures_are_the_census():
    t, fams = CENSUS["totals"], CENSUS["families"]
    with_nets = [f for f, c in fams.items() if "cnn" in c or "hybrid" in c]
    assert f"{t['models']:,} in {t['families']}" in SECTION
    assert f"**{t['cnn']} CNNs and {t['hybrid']} hybrids in {len(with_nets)} families, {t['skipped']} models skipped**" in SECTION
    assert f"{sum(1 for c in fams.values() if 'cnn' in c)} families hold CNNs" in SECTION


def test_readme_table_lists_every_family_with_cnns_once():
    rows = table()
    listed = [f for families, *_ in rows for f in families]
    cnn = {f: c["cnn"] for f, c in CENSUS["families"].items() if "cnn" in c}
    assert sorted(listed) == sorted(cnn)
    for families, count, _, _ in rows:
        assert count == sum(cnn[f] for f in families), families


def test_readme_lists_the_families_of_hybrids_only():
    only = sorted(f for f, c in CENSUS["families"].items() if set(c) == {"hybrid"})
    m = re.search(r"Families of hybrids only \(wait for attention\): (.*?)\.\n", SECTION, re.S)
    assert sorted(re.findall(r"`([a-z0-9_]+)`", m[1])) == only


def test_written_means_exact_against_timm():
    """Every net the table calls written is one of tests/reference/timm.json's (a family net checked
    by tests/test_timm_families.py, or a case study), in that family; and every one of those is in
    the table."""
    timm_names = {r["timm_name"] for r in REFERENCE.values()}
    written = set()
    for families, _, names, _ in table():
        for n in names:
            assert n in timm_names, n
            assert MODELS[n]["family"] in families, n
            written.add(n)
    assert written == timm_names


@pytest.mark.parametrize("family", sorted(f for f, c in CENSUS["families"].items() if "cnn" in c))
def test_every_family_says_what_it_waits_for(family):
    row = next(r for r in table() if family in r[0])
    assert row[2] or row[3], family


def test_readme_counts_the_zoo():
    """The zoo's count in README: every file in nets/, the timm family nets among them (those
    whose header follows timm/models/ and that are not the lecture's case studies)."""
    import glob
    nets = glob.glob(os.path.join(ROOT, "nets", "*.net"))
    timm_nets = [p for p in nets if "timm/models/" in open(p).read()
                 and os.path.basename(p)[:-4] not in ("dpn92", "dpn98", "se_resnet50")]
    assert f"`nets/` holds {len(nets)} networks" in README
    assert f"and {len(timm_nets)} nets of timm's convolutional families" in README
