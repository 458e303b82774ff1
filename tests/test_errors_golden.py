"""Golden error messages: each `tests/errors/NAME.net` beside the exact text `NAME.err` that
`cnndsl report NAME.net` prints on stderr, as compilers test their diagnostics.

The .err files are the specification of the messages, written and reviewed by hand; there
is deliberately no way to regenerate them from the current output. A spec's leading comments
may say `# args: --strict` (extra command-line arguments) and `# exit: 2` (the expected exit
status; 1 when absent).

    pytest tests/test_errors_golden.py
"""
from __future__ import annotations

import pathlib
import re
import shlex

import pytest

from cnndsl.cli import main

HERE = pathlib.Path(__file__).parent / "errors"
SPECS = sorted(HERE.glob("*.net"))


def _header(text: str, key: str, default: str) -> str:
    m = re.search(rf"^# {key}: (.*)$", text, re.M)
    return m.group(1).strip() if m else default


def test_every_spec_has_its_expected_text():
    assert len(SPECS) >= 15
    assert {p.stem for p in SPECS} == {p.stem for p in HERE.glob("*.err")}


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_error_text(spec, monkeypatch, capsys):
    text = spec.read_text()
    monkeypatch.chdir(HERE)  # spans print the path as given: NAME.net, stable anywhere
    code = main(["report", spec.name, *shlex.split(_header(text, "args", ""))])
    out, err = capsys.readouterr()
    assert err == spec.with_suffix(".err").read_text()
    assert code == int(_header(text, "exit", "1"))
