import os
import sys

import pytest

# tests import their helpers (specgen) by name; pytest runs with --import-mode=importlib
sys.path.insert(0, os.path.dirname(__file__))

# One OpenMP thread for torch, here and in every process a test starts (they inherit the environment),
# unless the caller says otherwise: on a shared 2-core machine two threads spin-wait on each other and
# the suite took twice the CPU for the same results (README, "Threads and reproducibility"). Set before
# any test module imports torch; a test that is about thread counts sets its own.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def zygote():
    """A process that has imported torch and cnndsl and forks one child per command (tests/zygote.py):
    a `cnndsl train` without its 3.3 s of imports. Started by the first test that asks for it."""
    from zygote import Zygote
    z = Zygote()
    yield z
    z.close()
