"""Launch and synchronisation budget of the photometry and stamps on a GPU, counted on the CPU.

Usage: python benchmarks/launch_budget.py [--sizes 4096 4608] [--patch 512] [--stamps 4096]
       [--out benchmarks/results]

Runs ``measure_tile`` and ``TilePhotometry.stamps`` with the counting stand-in for CuPy
(``benchmarks/counting_numpy.py``) on mirror-tiled GalSim tiles of each ``--sizes`` (the GPU
check's generator), counts per stage the array operations (each at least one kernel launch on
a GPU), the device-to-host synchronisations and the bytes each operation reads and writes,
extrapolates every count linearly in pixel count to a full 9216 x 9232 tile (two sizes give
the constant part and the per-pixel part: a count that grows with the tile is a loop over
data), and projects the GPU time of a full tile per stage. The default sizes are large enough
(at least 2^24 pixels) that the photometry groups its bands as on a full tile: smaller tiles
have all bands' backgrounds estimated in one call (``measure._subtract_background``), so their
counts do not extrapolate to a full tile.

The projection:

    time = launches x LAUNCH_S + syncs x SYNC_S + bytes / HBM_BYTES_PER_S
           + (host->device + device->host bytes) / PCIE_BYTES_PER_S

with the constants below (stated with their sources). It is a model, not a measurement: the
device check (``benchmarks/gpu_check.py``) measures the same stages on the GPU.

Writes ``launch_budget.json`` and ``launch_budget.md``; the counts are a record, so a change
that adds syncs in a per-source loop shows up as a count that grows with the tile.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import counting_numpy
import numpy as np
from _results import write_results
from gpu_check_phases import mirrored_tile

FULL_SHAPE = (9232, 9216)
RESULTS = Path(__file__).resolve().parent / "results"

#: Host time per CuPy call (Python dispatch + kernel launch). docs.cupy.dev, "Performance Best
#: Practices": ``cp.sqrt(cp.sum(a**2, axis=-1))``, three kernels, 44 us of CPU time, i.e.
#: about 15 us per call.
LAUNCH_S = 15e-6
#: One device-to-host synchronisation (stream drain + a small copy back + Python). NVIDIA's
#: Nsight Systems guide measured a PyTorch element-wise round trip at about 20 us (V100).
SYNC_S = 20e-6
#: H100 SXM HBM3 bandwidth: datasheet 3.35 TB/s; 3.0 TB/s measured on the lent H100 with a
#: device-to-device copy (``/work/.library/device/KINDS.md``, 2026-11-13). The measured one.
HBM_BYTES_PER_S = 3.0e12
#: Host <-> device: PCIe Gen5 x16 is 64 GB/s per direction (datasheet); from pageable host
#: memory (a tile read from zarr) expect about half: 25 GB/s assumed.
PCIE_BYTES_PER_S = 25e9


def count_tile(tile: Any, n_stamps: int, config: Any = None) -> dict[str, Any]:
    """Counts per stage of the photometry of ``tile`` (with ``config``, a
    ``PhotometryConfig``; default the paper's) and of its first ``n_stamps`` stamps."""
    from csst_photoz.photometry import measure_tile

    start = time.perf_counter()
    with counting_numpy.counting() as counter:
        result = measure_tile(tile, config=config, xp=counting_numpy.XP, stage=counter.stage)
        rows = np.arange(min(result.table.num_rows, n_stamps))
        with counter.stage("stamps"):
            result.stamps(rows)
    return {
        "size": tile.shape[1],
        "pixels": tile.shape[0] * tile.shape[1],
        "sources": result.table.num_rows,
        "stamps": int(rows.size),
        "seconds": time.perf_counter() - start,
        "stages": {name: counts.as_dict() for name, counts in counter.stages.items()},
    }


def project(counts: dict[str, Any]) -> dict[str, float]:
    """Projected GPU seconds of one stage from its counts, by term."""
    return {
        "launch_s": counts["launches"] * LAUNCH_S,
        "sync_s": counts["syncs"] * SYNC_S,
        "hbm_s": counts["bytes_moved"] / HBM_BYTES_PER_S,
        "pcie_s": (counts["h2d_bytes"] + counts["d2h_bytes"]) / PCIE_BYTES_PER_S,
    }


def extrapolate(small: dict[str, Any], large: dict[str, Any], pixels: float) -> dict[str, Any]:
    """Per stage, each count as ``a + b * pixels`` through the two measured sizes (stamps
    scale with the number of stamps cut, which both sizes cap at the same count)."""
    keys = ("launches", "syncs", "bytes_moved", "h2d_bytes", "d2h_bytes")
    out: dict[str, Any] = {}
    for stage in large["stages"]:
        a = small["stages"].get(stage, dict.fromkeys(keys, 0))
        b = large["stages"][stage]
        slope_px = {k: (b[k] - a[k]) / (large["pixels"] - small["pixels"]) for k in keys}
        full = {k: max(0.0, b[k] + slope_px[k] * (pixels - large["pixels"])) for k in keys}
        full["launches_grow_with_tile"] = b["launches"] > a["launches"]
        full["syncs_grow_with_tile"] = b["syncs"] > a["syncs"]
        out[stage] = {**full, **project(full)}
        out[stage]["total_s"] = sum(project(full).values())
    return out


def to_markdown(result: dict[str, Any]) -> str:
    """Counts per stage at each size and the projection for a full tile."""
    sizes = result["measured"]
    full = result["full_tile"]
    total = sum(row["total_s"] for row in full.values())
    lines = [
        "# Launch and sync budget of the photometry on a GPU (counted on CPU)",
        "",
        f"Command: `{result['command']}`. Counting stand-in for CuPy: "
        "`benchmarks/counting_numpy.py`; tiles: GalSim patch mirror-tiled "
        f"({result['patch']}^2); `max_window_pixels` {result.get('max_window_pixels', 0):,}. "
        f"Constants: launch {LAUNCH_S * 1e6:.0f} us, sync "
        f"{SYNC_S * 1e6:.0f} us, HBM {HBM_BYTES_PER_S / 1e12:.1f} TB/s, host<->device "
        f"{PCIE_BYTES_PER_S / 1e9:.0f} GB/s (sources in the script).",
        "",
        "| stage | " + " | ".join(f"launches / syncs @ {m['size']}^2" for m in sizes)
        + " | full tile: launches | syncs | GB moved | projected s (launch / sync / HBM / PCIe) |",
        "| --- | " + " | ".join("---" for _ in sizes) + " | --- | --- | --- | --- |",
    ]  # fmt: skip
    for stage, row in full.items():
        cells = []
        for m in sizes:
            counts = m["stages"].get(stage, {"launches": 0, "syncs": 0})
            cells.append(f"{counts['launches']:,} / {counts['syncs']:,}")
        grow = " (grows)" if row["syncs_grow_with_tile"] or row["launches_grow_with_tile"] else ""
        lines.append(
            f"| {stage}{grow} | " + " | ".join(cells)
            + f" | {row['launches']:,.0f} | {row['syncs']:,.0f} | {row['bytes_moved'] / 1e9:.1f} "
            f"| {row['total_s']:.3f} ({row['launch_s']:.3f} / {row['sync_s']:.3f} / "
            f"{row['hbm_s']:.3f} / {row['pcie_s']:.3f}) |"
        )  # fmt: skip
    lines += [
        "",
        f"Projected GPU time of a full tile's photometry and {sizes[-1]['stamps']} stamps: "
        f"**{total:.2f} s**; dominant stage: **{result['dominant_stage']}**.",
        "",
        "Sync kinds at the largest size, per stage:",
        "",
    ]
    for stage, counts in sizes[-1]["stages"].items():
        if counts["syncs_by_kind"]:
            kinds = ", ".join(f"{k} {v}" for k, v in counts["syncs_by_kind"].items())
            lines.append(f"* {stage}: {kinds}")
    misuse = {s: c["numpy_on_device"] for s, c in sizes[-1]["stages"].items()
              if c["numpy_on_device"]}  # fmt: skip
    lines += ["", f"`np.` functions on device arrays: {misuse or 'none'}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[4096, 4608])
    parser.add_argument("--patch", type=int, default=512, help="GalSim patch side [px]")
    parser.add_argument("--stamps", type=int, default=4096, help="stamps cut (at most)")
    parser.add_argument("--seed", type=int, default=2022)
    parser.add_argument(
        "--max-window-pixels", type=int, default=None,
        help="[photometry] max_window_pixels (default: the package's); results go to "
        "launch_budget_max_window_<N>.{json,md}",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    from csst_photoz.photometry import PhotometryConfig

    config = PhotometryConfig(
        **({} if args.max_window_pixels is None else {"max_window_pixels": args.max_window_pixels})
    )
    small, large = sorted(args.sizes)
    if small == large:
        parser.error("--sizes needs two different sizes")
    measured = [
        count_tile(
            mirrored_tile(0, (size, size), min(args.patch, size), args.seed), args.stamps, config
        )
        for size in (small, large)
    ]
    full = extrapolate(*measured, pixels=FULL_SHAPE[0] * FULL_SHAPE[1])
    result = {
        "benchmark": "launch_budget",
        "command": "python benchmarks/launch_budget.py " + " ".join(sys.argv[1:] if argv is None
                                                                   else argv),
        "patch": args.patch,
        "max_window_pixels": config.max_window_pixels,
        "constants": {"launch_s": LAUNCH_S, "sync_s": SYNC_S,
                      "hbm_bytes_per_s": HBM_BYTES_PER_S, "pcie_bytes_per_s": PCIE_BYTES_PER_S},
        "measured": measured,
        "full_tile": full,
        "full_tile_total_s": sum(row["total_s"] for row in full.values()),
        "dominant_stage": max(full, key=lambda s: full[s]["total_s"]),
        "load_average": list(os.getloadavg()),
    }  # fmt: skip
    stem = "launch_budget" if args.max_window_pixels is None else (
        f"launch_budget_max_window_{args.max_window_pixels}")  # fmt: skip
    write_results(args.out, stem, result, to_markdown(result))


if __name__ == "__main__":
    main()
