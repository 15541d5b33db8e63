"""The benchmarks: each module is a script, run as ``python -m benchmarks.NAME`` or ``python benchmarks/NAME.py``.

They use c2f's public API (``import c2f``: ``c2f.train``, ``c2f.load``, ``Model``), the ``c2f`` command or HTTP;
only those that measure or break a layer on purpose import it, each allowed by name and reason in
tests/test_import_graph.py (``BENCHMARK_INTERNALS``); none imports ``tests`` or a ``_private`` name.  Shared pieces:
:mod:`benchmarks.common` (the repo root, the machine description, the paired t-test, ``c2f train`` as a subprocess).
"""
