"""The harness's own tests: `tox -e bench` (part of `make test`), or `pytest benchmarks/tests`."""

import sys
from pathlib import Path

# The harness is a folder of modules run as `python -m harness`, not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
