#!/usr/bin/env bash
# Set-up on a fresh machine: a virtual environment in .venv with cnndsl and its test tools.
# torch 2.13.0 first: its small CPU build lies on this machine's disk, and a bare `torch`
# requirement would pull a multi-GB CUDA build. Any torch already in .venv is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# graphviz's `dot` program renders diagrams (`cnndsl draw`); pip cannot install it.
if ! command -v dot >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -q graphviz >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q graphviz >/dev/null 2>&1; } \
      || echo "note: could not install graphviz; 'cnndsl draw' will write .dot files only" >&2
  else
    echo "note: install graphviz for 'cnndsl draw' to render (apt-get install graphviz / brew install graphviz)" >&2
  fi
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  .venv/bin/pip install -q "torch==2.13.0"
fi
# cnndsl and its dependencies (pyproject.toml), among them captum, the attribution library of `cnndsl inspect`
.venv/bin/pip install -q -e ".[test]"
.venv/bin/python -c "import captum.attr, captum.robust" \
  || { echo "captum did not install: cnndsl inspect needs it (pip install captum)" >&2; exit 1; }
echo "cnndsl is installed in .venv: source .venv/bin/activate"
