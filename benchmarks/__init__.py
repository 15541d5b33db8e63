"""The benchmarks: each module is a script, run as ``python -m benchmarks.NAME`` or ``python benchmarks/NAME.py``.

They use c2f's public modules only (never a ``_private`` name) and never ``tests``: tests/test_import_graph.py
checks both.  Shared pieces: :mod:`benchmarks.common` (the repo root, the machine description, the paired t-test).
"""
