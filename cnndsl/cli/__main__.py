"""`python -m cnndsl.cli ...` is the `cnndsl` command (as `python -m cnndsl` is)."""
import sys

from . import main

sys.exit(main())
