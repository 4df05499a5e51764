"""What the benchmark scripts share: thread pinning, the CPU's name, the device's array module,
median timings and JSON + Markdown results.

It imports nothing numerical, so a script can pin its thread pools with it before NumPy loads.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

#: Environment variables that size the OpenMP / BLAS thread pools.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


#: glibc malloc tunables recorded with the results (the batch processor's workers set them:
#: ``csst_photoz.pipeline.cluster.WORKER_MALLOC_ENVIRON``; run a script under the same values
#: to time the kernels as the workers run them).
MALLOC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def pin_threads(n: int) -> None:
    """Size every numerical thread pool to ``n`` (call before NumPy, torch or pyarrow load)."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(max(int(n), 1))


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_results(out: Path, stem: str, result: dict[str, Any], markdown: str) -> None:
    """Write ``<out>/<stem>.json`` and ``<out>/<stem>.md`` and print the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown)
    print(markdown)


def array_module_for(device: str) -> ModuleType:
    """NumPy for ``"cpu"``; CuPy for ``"gpu"``, or exit with the reason it cannot be used."""
    import numpy as np

    if device == "cpu":
        return np
    try:
        import cupy
    except ImportError as error:
        raise SystemExit(
            f"--device gpu needs CuPy (pip install 'csst-photoz[gpu]'): {error}"
        ) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError as error:
        raise SystemExit(f"--device gpu: CuPy finds no usable CUDA device: {error}") from None
    if count < 1:
        raise SystemExit("--device gpu: CuPy finds no CUDA device")
    return cupy


def synchroniser(xp: ModuleType) -> Callable[[], None]:
    """A function that waits for the array module's device (a no-op for NumPy)."""
    if xp.__name__ == "numpy":
        return lambda: None
    return lambda: xp.cuda.Device().synchronize()


def median_time(function: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> dict:
    """Median wall time of ``repeats`` calls after one untimed warm-up call, the device
    synchronised before and after each timed call."""
    function()
    sync()
    seconds = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        function()
        sync()
        seconds.append(time.perf_counter() - start)
    return {"median_s": statistics.median(seconds), "all_s": seconds}


def interleaved_median_times(
    functions: dict[str, tuple[Callable[[], Any], Callable[[], None]]], repeats: int
) -> dict[str, dict]:
    """`median_time` of several functions measured in turns: one warm-up call each, then
    ``repeats`` rounds calling every function once, so that a drifting machine (other jobs, a
    VM's neighbours) weighs on all of them alike. The order rotates from round to round: a
    call right after another library's can be slower (the allocator returned memory to the
    system, and the next call faults it back in: 0.35-0.45 s for our 2048^2 photometry after
    sep's), and rotation spreads that over all of them. ``functions`` maps a name to
    ``(function, sync)``."""
    for function, sync in functions.values():
        function()
        sync()
    names = list(functions)
    seconds: dict[str, list[float]] = {name: [] for name in functions}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            function, sync = functions[name]
            sync()
            start = time.perf_counter()
            function()
            sync()
            seconds[name].append(time.perf_counter() - start)
    return {
        name: {"median_s": statistics.median(values), "all_s": values}
        for name, values in seconds.items()
    }
