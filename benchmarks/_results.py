"""What the benchmark scripts share: thread pinning, the CPU's name, JSON + Markdown results.

It imports nothing numerical, so a script can pin its thread pools with it before NumPy loads.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

#: Environment variables that size the OpenMP / BLAS thread pools.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


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
