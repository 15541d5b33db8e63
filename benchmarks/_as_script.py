"""Imported first by a benchmark run as ``python benchmarks/NAME.py``: ``sys.path[0]`` is then benchmarks/ itself;
this puts the repository root there instead, so that ``benchmarks.*`` and this checkout's ``c2f`` import as they do
under ``python -m benchmarks.NAME`` (and a benchmark's module never also imports as a top-level ``NAME``).  Each
script starts with::

    if not __package__:  # run as `python benchmarks/NAME.py`
        import _as_script  # noqa: F401
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
HERE = Path(__file__).resolve().parent
if sys.path and sys.path[0] and Path(sys.path[0]).resolve() == HERE:
    sys.path[0] = ROOT
elif ROOT not in sys.path:
    sys.path.insert(0, ROOT)
