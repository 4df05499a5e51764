"""Bounded submission of many work items to Dask, with outcomes handed back as they complete.

:func:`submit_bounded` is the one submission loop of the package (the batch run, tile
simulation, stamp simulation). It reads the items lazily and keeps at most ``window`` of them
in the graph, so a list of millions of items never builds a large graph; each completed item
comes back as an :class:`Outcome` (its result, or the exception left after Dask's retries) and
its future is released at once. What a failure means is the caller's choice, made where it
reads the outcomes: record it and go on, or raise naming the item.

The helper keeps no state: an interrupted run resumes because the caller leaves out, before
submission, the items whose output is already complete (and keys its tasks by item, so a
rerun names its tasks as the first run did). On an interrupt (``KeyboardInterrupt``) or an
exception in the caller's loop, the futures still in flight are cancelled before the error
propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import dask
from distributed import Client, Future, as_completed
from tqdm.auto import tqdm

__all__ = ["Outcome", "default_window", "submit_bounded", "task_per_item"]

Item = TypeVar("Item")


@dataclass(frozen=True)
class Outcome(Generic[Item]):
    """What became of one submitted item.

    Attributes
    ----------
    item
        The item, as the iterable gave it.
    key
        The Dask key of the item's (last) task.
    result
        The task's result (None when it failed).
    error
        The exception the task raised after Dask's retries were exhausted, or None.
    """

    item: Item
    key: str
    result: Any = None
    error: BaseException | None = None

    @property
    def failed(self) -> bool:
        """Whether the item's task raised."""
        return self.error is not None


def default_window(client: Client) -> int:
    """Twice the threads of the cluster's workers (at least 2): enough to keep them busy."""
    return 2 * max(1, sum(client.nthreads().values()))


def task_per_item(
    client: Client, function: Callable[..., Any], *, key: Callable[[Any], str], **kwargs: Any
) -> Callable[[Any], Future]:
    """A submit function running ``function(item, **kwargs)`` as one task keyed ``key(item)``.

    Parameters
    ----------
    client
        The Dask client.
    function
        The task: called on a worker with the item and ``kwargs``.
    key
        The task's key for an item: a function of the item alone, so a rerun submits the same
        keys (and Dask never runs one item twice at once).
    **kwargs
        Passed to every call of ``function`` (keep them small: settings, paths).

    Returns
    -------
    callable
        ``submit(item) -> distributed.Future``, for :func:`submit_bounded`.
    """

    def submit(item: Any) -> Future:
        return client.submit(function, item, key=key(item), pure=False, **kwargs)

    return submit


def submit_bounded(
    client: Client,
    items: Iterable[Item],
    submit: Callable[[Item], Future],
    *,
    window: int | None = None,
    retries: int = 0,
    total: int | None = None,
    progress: bool = False,
    desc: str = "items",
    unit: str = "item",
    postfix: Callable[[], Mapping[str, Any]] | None = None,
) -> Iterator[Outcome[Item]]:
    """Submit one task chain per item through a bounded window; yield outcomes as they complete.

    Parameters
    ----------
    client
        The Dask client.
    items
        Work items, read lazily (a generator is fine): only ``window`` of them are taken ahead
        of the completed ones. Leave out items that are already done, so that a rerun resumes.
    submit
        ``submit(item) -> distributed.Future``: submits the item's task, or its chain of tasks,
        returning the future of the last one (e.g. :func:`task_per_item`). Its keys should be
        deterministic functions of the item.
    window
        Most items in the graph at once (default :func:`default_window`: twice the workers'
        threads).
    retries
        Dask retries of every task ``submit`` creates (``dask.annotate(retries=...)`` around
        the call, so a task given its own ``retries=`` keeps them); a task that still fails
        comes back as a failed :class:`Outcome`.
    total
        Number of items, for the progress bar (None: unknown).
    progress
        Show a tqdm progress bar, with ``done`` and ``failed`` counters.
    desc, unit
        The progress bar's label and unit.
    postfix
        Counters for the progress bar, read after the caller has handled each outcome (they
        replace the default ``done`` and ``failed`` counts of outcomes where the names meet).

    Yields
    ------
    Outcome
        One per item, in completion order; the item's future is released before it is
        yielded.

    Raises
    ------
    ValueError
        On a window below 1, or two items in flight with one key.
    """
    window = default_window(client) if window is None else window
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    queue = iter(items)
    in_flight: dict[str, tuple[Future, Item]] = {}
    completed = as_completed()
    done = failed = 0

    def add(item: Item) -> None:
        with dask.annotate(retries=retries):
            future = submit(item)
        if future.key in in_flight:
            raise ValueError(f"two items in flight with one task key {future.key!r}: {item!r}")
        in_flight[future.key] = (future, item)
        completed.add(future)

    try:
        with tqdm(total=total, desc=desc, unit=unit, disable=not progress) as bar:
            for item in queue:
                add(item)
                if len(in_flight) >= window:
                    break
            for future in completed:
                _, item = in_flight.pop(future.key)
                try:
                    outcome = Outcome(item, str(future.key), result=future.result())
                except Exception as error:  # the task's own exception, retries exhausted
                    outcome = Outcome(item, str(future.key), error=error)
                future.release()
                del future
                yield outcome
                done, failed = done + (not outcome.failed), failed + outcome.failed
                bar.set_postfix({"done": done, "failed": failed, **(postfix() if postfix else {})})
                bar.update(1)
                following = next(queue, _END)
                if following is not _END:
                    add(following)
    finally:  # interrupted (KeyboardInterrupt, the caller raised or stopped early): cancel
        if in_flight:
            client.cancel([future for future, _ in in_flight.values()])
            in_flight.clear()


_END: Any = object()
