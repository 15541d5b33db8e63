"""Data-parallel training under ``torchrun``: every rank holds the whole (small) model and graph, and splits each
BPR batch.

How a run is divided (``torchrun --nproc-per-node=K -m cli.main train ...``):

* Every rank draws the same epoch permutation and negatives (same seed) and trains on its slice
  ``batch[rank::K]`` of each batch; gradients are averaged across ranks before each Adam step, so the
  parameters stay identical on all ranks and one step sees the whole batch, as in a single process.
* Assignment decisions (METIS initialisation, Eq. 11 and Eq. 23-24 updates, the selected coarse rows and the
  SparsePCA initialisation of E^r) are taken on rank 0 and broadcast, so no rank can drift from another.
* Validation runs on rank 0 and its metrics are broadcast, so all ranks take the same early-stopping decisions.
* Export and publishing happen on rank 0 only; the other ranks learn the published version from it.

The backend is NCCL when each rank has a CUDA device (``cuda:LOCAL_RANK``), gloo on CPU. Without ``WORLD_SIZE``
(or with ``WORLD_SIZE=1``) nothing here is used and training is a plain single process.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun launch (``rank`` 0 is the one that validates and publishes)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Replace each parameter's gradient by its mean over all ranks (a missing gradient counts as zeros)."""
        for p in parameters:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(self.world_size)

    def mean(self, value: float) -> float:
        """The mean of a scalar over all ranks."""
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return float(t.item()) / self.world_size

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters to every rank (in place)."""
        with torch.no_grad():
            for p in module.parameters():
                dist.broadcast(p.data, src=0)

    def share_arrays(self, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        """Rank 0's numpy arrays on every rank (shapes and dtypes are taken from rank 0)."""
        return tuple(self.share(a) for a in arrays)

    def share(self, value: T) -> T:
        """Rank 0's value (any picklable object, e.g. a metrics dict or an array) on every rank.

        Objects travel through torch's own ``broadcast_object_list`` between the processes of one trusted launch;
        nothing here reads files.
        """
        box: list[Any] = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        return box[0]  # type: ignore[no-any-return]

    def check_same(self, state: dict[str, Any]) -> None:
        """Raise when any rank's ``state`` (a model snapshot: tensors, arrays, floats) differs from rank 0's.

        Gradient averaging and shared decisions keep the ranks bit-identical; this proves it at the end of a run.
        """
        digests = {key: _digest(value) for key, value in sorted(state.items())}
        reference = self.share(digests)
        diverged = sorted(key for key in digests if digests[key] != reference.get(key))
        if diverged:
            raise RuntimeError(f"rank {self.rank} diverged from rank 0 in {', '.join(diverged)}")


def _digest(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return hashlib.sha256(np.ascontiguousarray(np.asarray(value)).tobytes()).hexdigest()


def from_environment(device_name: str) -> Distributed | None:
    """Join the process group torchrun describes in the environment; None when not launched by torchrun.

    ``device_name`` is TrainConfig.device: "auto" or "cuda[:N]" give ``cuda:LOCAL_RANK`` when CUDA is available
    (one GPU per rank), anything else the CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device_name == "auto" or device_name.startswith("cuda"))
    device = torch.device(f"cuda:{local_rank}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if dist.get_world_size() != world_size or dist.get_rank() != rank:
        raise RuntimeError("the process group does not match WORLD_SIZE/RANK")
    return Distributed(rank, world_size, local_rank, device)


def shutdown(*, failed: bool = False) -> None:
    """Leave the process group (no-op when none was joined).

    After a successful run all ranks meet at a barrier first: tearing gloo down while a peer is still in flight can
    abort the process ("terminate called without an active exception", seen here about once in ten runs without
    it). After a failure (``failed``) there is no barrier: the peers may be stuck in a collective and would never
    arrive; torchrun stops them once this process exits.
    """
    if dist.is_available() and dist.is_initialized():
        if not failed:
            dist.barrier()
        dist.destroy_process_group()
