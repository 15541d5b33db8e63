"""c2f: compressed ID embeddings for recommenders, trained and served.

The layers live in one namespace (ARCHITECTURE.md): ``c2f.contract`` (the artifact format both sides agree on),
``c2f.trainer`` (PyTorch), ``c2f.service`` (FastAPI, numpy only), ``c2f.jobs`` (the RQ job and worker) and
``c2f.cli`` (the ``c2f`` command). Importing ``c2f`` imports none of them, so it never pulls in torch.

The Python API (:mod:`c2f.api`) is re-exported here lazily, on first attribute access::

    import c2f
    model = c2f.train("data/", method="c2f", budget="2%")   # torch is imported here, by the trainer
    ids, scores = model.recommend("user-0007", n=10)
    model.save("artifacts"); model = c2f.load("artifacts")  # numpy only: no torch
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> the module that defines it (imported on first access, so `import c2f` stays empty)
_EXPORTS = {
    "train": "c2f.api",
    "load": "c2f.api",
    "Model": "c2f.api",
    "ArgumentError": "c2f.api",
    "UnknownIdError": "c2f.api",
    "ArtifactError": "c2f.contract.artifact",
    "BudgetError": "c2f.contract.budget",
    "MethodError": "c2f.contract.methods",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'c2f' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later accesses skip this hook
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
