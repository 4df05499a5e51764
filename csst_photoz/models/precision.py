"""Mixed precision: the one bfloat16 autocast switch of training and inference."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

__all__ = ["bf16_autocast"]


def bf16_autocast(device: torch.device | str, enabled: bool = True) -> AbstractContextManager[Any]:
    """bfloat16 autocast on a CUDA device when ``enabled``; elsewhere a context that does nothing.

    On the CPU the networks stay float32 (deterministic, and bf16 gains little there).

    Parameters
    ----------
    device
        The device the forward passes run on.
    enabled
        Whether mixed precision is wanted.

    Returns
    -------
    contextlib.AbstractContextManager
        A fresh context manager (use one per ``with`` block).

    Examples
    --------
    >>> import torch
    >>> from csst_photoz.models.precision import bf16_autocast
    >>> with bf16_autocast("cpu"):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.float32
    """
    if enabled and torch.device(device).type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return nullcontext()
