"""One way to cap the CPU threads of a block of code: torch's and the BLAS/OpenMP pools'."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["limit_threads"]


@contextmanager
def limit_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with at most ``n_threads`` CPU threads per pool, then restore the limits.

    Caps torch's intra-op threads (when torch is imported: it is never imported here) and,
    through threadpoolctl, the BLAS and OpenMP libraries NumPy, SciPy and scikit-learn use.

    Parameters
    ----------
    n_threads
        Threads per pool (>= 1), or None to change nothing.

    Raises
    ------
    ValueError
        On ``n_threads < 1``.

    Examples
    --------
    >>> from csst_photoz.threads import limit_threads
    >>> with limit_threads(2):
    ...     pass
    """
    if n_threads is None:
        yield
        return
    if int(n_threads) < 1:
        raise ValueError(f"n_threads must be >= 1 or None, got {n_threads!r}")
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=int(n_threads)):
        if torch is not None:
            torch.set_num_threads(int(n_threads))
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(before)
