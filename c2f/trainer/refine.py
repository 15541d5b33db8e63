"""Ranking-aware refinement of the product-quantized codebooks: train what the service scores with.

k-means fits the codebooks to reconstruct the propagated vectors (least squares); ranking only needs dot products
to order items well. With every entity's codes fixed, the served vector of entity r is

    v_r = base_r + concat_m codebooks[m, codes[r, m]]        (times s_i for an item i when ``pq_item_scale`` is kept)

(base: the sparse form Σ_j w_j·H_meta[idx_j] for legcf/c2f, nothing for ud/hash/qr), so the codebooks (M, 256, d/M)
and the item scales (n_items,) can be trained by the same BPR loss as the model, on the served scores themselves —
the JPQ idea (Zhan et al., "Jointly Optimizing Query Encoder and Product Quantization to Improve Retrieval
Performance", CIKM 2021) without a query encoder: here both sides are quantized and both share the codebooks.
Codes, the sparse form and the item biases stay as exported (the exact mode reads the biases too), so served
bytes do not change. The phase validates its starting state first and keeps its best validated state
(c2f/trainer/fit.py ``run_phase``): the refinement never publishes codebooks that validate worse than k-means'.

Shapes: ``codes`` (N, M) uint8 -> int64 on the device; ``codebooks`` (M, 256, d/M) float32 trained, stored back in
``store_dtype``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from c2f.contract.config import TrainConfig
from c2f.contract.dtypes import as_float32, store_float
from c2f.trainer.data.dataset import InteractionData
from c2f.trainer.fit import Trainer
from c2f.trainer.models import EmbeddingModel

STAGE = "pq_refine"


class ServedCodes(EmbeddingModel):
    """The compressed serving form as a model whose parameters are the PQ codebooks (and item scales).

    ``base`` (N, d) float32 or None: the fixed part of every served vector (the sparse form's decoded vectors);
    ``codes`` (N, M) uint8; ``codebooks`` (M, K, d/M); ``item_scale`` (n_items,) or None; ``item_bias``
    (n_items,) or None, fixed."""

    def __init__(
        self,
        n_users: int,
        base: np.ndarray | None,
        codes: np.ndarray,
        codebooks: np.ndarray,
        item_scale: np.ndarray | None,
        item_bias: np.ndarray | None,
        device: torch.device,
    ) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_entities = int(codes.shape[0])
        self.device = device
        self.base = None if base is None else torch.from_numpy(np.ascontiguousarray(base, np.float32)).to(device)
        self.codes = torch.from_numpy(codes.astype(np.int64)).to(device)
        self.codebooks = nn.Parameter(torch.from_numpy(as_float32(codebooks).copy()).to(device))
        self.item_scale = (
            None if item_scale is None else nn.Parameter(torch.from_numpy(as_float32(item_scale).copy()).to(device))
        )
        self.subspace = torch.arange(codebooks.shape[0], device=device)[None, :]
        if item_bias is not None:
            self.enable_item_bias(torch.from_numpy(as_float32(item_bias)))
            assert self.item_bias is not None
            self.item_bias.requires_grad_(False)  # exact mode reads the biases too: they stay as trained

    def _vectors(self, rows: torch.Tensor) -> torch.Tensor:
        decoded = self.codebooks[self.subspace, self.codes[rows]].reshape(rows.shape[0], -1)  # (b, M, d/M) -> (b, d)
        if self.base is not None:
            decoded = decoded + self.base[rows]
        if self.item_scale is not None:
            items = rows >= self.n_users
            factor = torch.where(items, self.item_scale[(rows - self.n_users).clamp(min=0)], 1.0)
            decoded = decoded * factor[:, None]
        return decoded

    def batch_embeddings(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self._vectors(rows)
        return h, (h * h).sum(-1)  # the L2 term on the served vectors themselves (there is no layer 0 here)

    @torch.no_grad()
    def full_embeddings(self, chunk: int = 262_144) -> torch.Tensor:
        rows = torch.arange(self.n_entities, device=self.device)
        return torch.cat([self._vectors(rows[start : start + chunk]) for start in range(0, self.n_entities, chunk)])


def refine_codebooks(
    arrays: dict[str, np.ndarray],
    base: np.ndarray | None,
    data: InteractionData,
    config: TrainConfig,
    device: torch.device,
) -> dict[str, Any]:
    """Train ``arrays["pq_codebooks"]`` (and ``pq_item_scale`` when present) on the served scores for at most
    ``config.pq_refine_epochs`` epochs, early stopping on validation as training does (without validation data
    every epoch runs and the last is kept), and replace them in ``arrays`` in ``config.store_dtype``. ``base``
    (N, d) float32: the sparse form's decoded vectors (legcf, c2f), None where the codes are the whole served
    vector. Returns what happened, for the manifest's ``info["pq_refine"]``."""
    started = time.perf_counter()
    model = ServedCodes(
        int(arrays["user_ids"].shape[0]),
        base,
        arrays["pq_codes"],
        arrays["pq_codebooks"],
        arrays.get("pq_item_scale"),
        arrays.get("item_bias"),
        device,
    )
    del base
    trainer = Trainer(
        data,
        batch_size=config.batch_size,
        negatives=config.negatives,
        reg=config.reg,
        eval_every=1,
        patience=config.patience,
        seed=config.seed,
        criterion=config.criterion,
        sampling=config.sampling,
        valid_sample=config.valid_users,
    )
    result = trainer.run_phase(model, stage=STAGE, phase=1, lr=config.pq_refine_lr, max_epochs=config.pq_refine_epochs)
    arrays["pq_codebooks"] = store_float(model.codebooks.detach().cpu().numpy(), config.store_dtype)
    if model.item_scale is not None:
        arrays["pq_item_scale"] = store_float(model.item_scale.detach().cpu().numpy(), config.store_dtype)
    return {
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "criterion": config.criterion,
        "start_valid": result.start_valid,
        "best_valid": result.best_valid,
        "seconds": time.perf_counter() - started,
    }
