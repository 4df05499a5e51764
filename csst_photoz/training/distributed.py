"""Data-parallel training under ``torchrun``: process group, device, DDP wrapping, collectives.

`train_model` runs unchanged under ``torchrun --nproc-per-node N`` (or
``python -m torch.distributed.run``): `distributed_context` sees the launcher's environment
(``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), joins the process
group (NCCL on GPUs, Gloo on CPUs), picks ``cuda:LOCAL_RANK`` when GPUs are visible, and
leaves the group when training ends. Without that environment it is a single process.

Conventions of a distributed run:

* every process loads the data and builds the same model from the same seed; DDP broadcasts
  rank 0's weights at wrapping and averages the gradients of every step;
* the batch size is global: each of ``N`` processes takes ``batch_size // N`` samples per step,
  from its :class:`~torch.utils.data.DistributedSampler` share of the epoch;
* batch-norm statistics are per process during the epoch (as with Keras' mirrored strategy)
  and averaged over processes at its end, before validation, so all processes then hold
  identical weights *and* statistics;
* rank 0 alone validates, logs and writes checkpoints; the validation metrics are broadcast
  so that every process takes the same learning-rate and early-stopping decisions.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["DistributedContext", "distributed_context", "resolve_device"]


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def resolve_device(device: str | torch.device | None, *, local_rank: int = 0) -> torch.device:
    """The training device of this process.

    ``device`` if given (``"cuda"`` becomes ``cuda:LOCAL_RANK``), else ``cuda:LOCAL_RANK`` when
    CUDA is available, else the CPU.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(device)
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", local_rank)
    return resolved


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly single-process) run.

    Attributes
    ----------
    rank, world_size, local_rank
        This process, the number of processes, and this process's index on its node.
    device
        The training device of this process.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and writes files."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait for every process (no-op in a single process)."""
        if self.is_distributed:
            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every process (a picklable object)."""
        if not self.is_distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over processes."""
        if not self.is_distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(tensor)
        return tensor.cpu().tolist()

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in DDP when distributed (buffers synchronised per epoch, not per step)."""
        if not self.is_distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        # buffers are synchronised at wrapping and per epoch (newer torch renames the switch)
        parameters = inspect.signature(DistributedDataParallel).parameters
        no_sync = "forward_sync_buffers" if "forward_sync_buffers" in parameters else None
        options = {no_sync or "broadcast_buffers": False}
        return DistributedDataParallel(model, device_ids=ids, **options)

    def average_batch_norm_statistics(self, model: nn.Module) -> None:
        """Average the running statistics of batch-norm layers in training mode over processes.

        Layers in evaluation mode (frozen transfer layers) are identical everywhere already and
        are left alone.
        """
        if not self.is_distributed:
            return
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
                for buffer in (module.running_mean, module.running_var):
                    if buffer is not None:
                        dist.all_reduce(buffer)
                        buffer.div_(self.world_size)

    def _collective_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


@contextmanager
def distributed_context(device: str | torch.device | None = None) -> Iterator[DistributedContext]:
    """The run's `DistributedContext`, in a process group when launched by ``torchrun``.

    With more than one process in the launcher's environment, the process group is joined on
    entry and left on exit. A process group initialised by the caller is used and left for the
    caller to destroy.

    Parameters
    ----------
    device
        Training device (see `resolve_device`).
    """
    world_size = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    resolved = resolve_device(device, local_rank=local_rank)
    joined_here = False
    if world_size > 1 and not dist.is_initialized():
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
        joined_here = True
    if dist.is_initialized():
        context = DistributedContext(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=local_rank,
            device=resolved,
        )
    else:
        context = DistributedContext(device=resolved)
    try:
        yield context
    finally:
        if joined_here:
            dist.destroy_process_group()
