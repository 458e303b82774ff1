import os
import sys

# tests import their helpers (specgen) by name; pytest runs with --import-mode=importlib
sys.path.insert(0, os.path.dirname(__file__))
