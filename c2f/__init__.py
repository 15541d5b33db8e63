"""c2f: compressed ID embeddings for recommenders, trained and served.

The layers live in one namespace (ARCHITECTURE.md): ``c2f.contract`` (the artifact format both sides agree on),
``c2f.trainer`` (PyTorch), ``c2f.service`` (FastAPI, numpy only), ``c2f.jobs`` (the RQ job and worker) and
``c2f.cli`` (the ``c2f`` command). Importing ``c2f`` imports none of them, so it never pulls in torch.
"""

__version__ = "0.1.0"
