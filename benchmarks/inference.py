"""Inference throughput of the photo-z networks, run the way the batch processor runs them.

Usage: python benchmarks/inference.py [--device cpu|cuda] [--batch-sizes 256 1024 8192]
       [--repeats 5] [--min-time 1.0] [--threads 1] [--tile-size 1024] [--seed 2022]
       [--out benchmarks/results]

Networks: the shipped checkpoints (:func:`csst_photoz.checkpoints.shipped_checkpoints`, loaded
with :func:`csst_photoz.models.load_model`: MLP, CNN, Hybrid, Hybrid transfer). Where no hybrid
checkpoint is installed, ``Hybrid.from_pretrained(mlp, cnn)`` stands in (its head untrained,
which changes the numbers it outputs but not the work it does).

Inputs are real measurements, never zeros: one simulated tile (``simulate_tile``, ``--tile-size``
pixels a side), measured with ``measure_tile``; its Kron fluxes and errors (``counts_<band>``,
``counts_err_<band>``, as the batch processor feeds them) and its 7 x 64 x 64 stamps
(``TilePhotometry.stamps``) are repeated, in source order, up to the batch size.

Measurements, each timed call being one batch of ``B`` galaxies (``--batch-sizes``):

* **inference**: :func:`csst_photoz.models.inference.predict_catalog` with one model and
  ``batch_size=B`` on a ``B``-row catalogue (so one call is one batch, with the processor's
  per-batch work: row selection of the fluxes, host-to-device copies, the models' input
  transforms, the forward pass, results back to the host). The stamps are cut once beforehand
  and handed over by a cutter that returns a view, so the stamp cost is not in these rows (it is
  measured on its own, below). fp32 and bf16:

  - fp32: ``mixed_precision=False``;
  - bf16 on CUDA: ``mixed_precision=True`` (``predict_catalog``'s own bfloat16 autocast, as
    the processor runs on GPU);
  - bf16 on CPU: ``predict_catalog``'s ``mixed_precision`` only acts on CUDA, so the call is
    wrapped in ``torch.autocast(device_type="cpu", dtype=torch.bfloat16)`` here. Wrapping the
    whole call (rather than calling ``model.predict`` directly) keeps the fp32 and bf16 rows on
    exactly the same code path, so their ratio is the precision's effect alone. How far bf16
    moves the redshifts is recorded (median, p99 and largest ``|z_bf16 - z_fp32|``, and the
    share of galaxies moved by more than 0.01 and 0.15 x (1 + z)); it also shows that autocast
    took effect.

  Each (model, batch size, precision) gets one untimed warm-up batch, then at least
  ``--repeats`` timed batches and at least ``--min-time`` seconds of them; the fp32 and bf16
  batches of a model and batch size alternate, so that load from other processes on shared
  cores falls on both alike. galaxies/s is ``B`` /
  the median batch latency; p50/p99 are percentiles of the batch latencies (with few batches p99
  is close to the slowest one). On CUDA the device is synchronised before and after each batch.
* **FLOPs per galaxy**: ``torch.utils.flop_counter.FlopCounterMode`` over ``model.predict`` of
  64 galaxies (fp32): matrix multiplications and convolutions, 2 FLOPs per multiply-add;
  element-wise work (batch norm, activations, pooling, the asinh stamp scaling, the flux
  features) is not counted. Achieved GFLOP/s = FLOPs per galaxy x galaxies/s; on CUDA also as
  a share of the device's datasheet peak (dense, no sparsity: FP32 for fp32, BF16 tensor cores
  for bf16; ``--peak-tflops-fp32`` / ``--peak-tflops-bf16`` override the built-in table).
* **stamps**: ``TilePhotometry.stamps`` of ``B`` rows (the tile's sources repeated), the cut the
  processor makes once per batch and shares among the stamp networks; galaxies/s.

Threads: torch and the BLAS/OpenMP pools get ``--threads`` threads (default 1, the processor's
``torch_threads`` default: one worker process per core), set in the environment before NumPy
or torch are imported; torch's inter-op pool gets one. The load average at the start and end is
recorded, since other processes may share the cores.

Writes ``inference_<device>.json`` and ``inference_<device>.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from _results import THREAD_VARIABLES, cpu_model, pin_threads, write_results

RESULTS = Path(__file__).parent / "results"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[256, 1024, 8192],
        help="galaxies per batch (one timed call = one batch)",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5, help="timed batches, at least")
    parser.add_argument(
        "--min-time", type=float, default=1.0,
        help="seconds of timed batches, at least, per model, batch size and precision",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=1, help="torch / BLAS / OpenMP threads")
    parser.add_argument("--tile-size", type=int, default=1024, help="simulated tile side [px]")
    parser.add_argument("--seed", type=int, default=2022, help="simulation seed")
    parser.add_argument("--peak-tflops-fp32", type=float, default=None, help="GPU FP32 peak")
    parser.add_argument("--peak-tflops-bf16", type=float, default=None, help="GPU BF16 peak")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    return parser


# pin the thread pools before anything imports NumPy or torch (when run as a script)
_THREADS = _parser().parse_known_args()[0].threads if __name__ == "__main__" else 1
pin_threads(_THREADS)

import contextlib  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import csst_photoz  # noqa: E402
from csst_photoz.checkpoints import shipped_checkpoints  # noqa: E402
from csst_photoz.models import Hybrid, load_model  # noqa: E402
from csst_photoz.models.inference import predict_catalog  # noqa: E402
from csst_photoz.photometry import measure_tile  # noqa: E402
from csst_photoz.sim.tiles import TileSpec, simulate_tile  # noqa: E402

PRECISIONS = ("fp32", "bf16")
FLOP_COUNT_BATCH = 64

#: Datasheet peaks [TFLOP/s], dense (no sparsity), boost clock: (FP32, BF16 tensor cores).
#: Matched in order against the CUDA device name.
GPU_PEAK_TFLOPS: tuple[tuple[str, float, float], ...] = (
    ("H100 PCIe", 51.2, 756.0),
    ("H100 NVL", 60.0, 835.0),
    ("H100", 67.0, 989.4),  # SXM5
    ("H200", 67.0, 989.4),
    ("A100", 19.5, 312.0),
    ("L40S", 91.6, 362.1),
)


# --------------------------------------------------------------------------- machinery


def _synchronise(device: str) -> Callable[[], None]:
    if device == "cuda":
        return torch.cuda.synchronize
    return lambda: None


def _timed_batches(
    functions: dict[str, Callable[[], Any]],
    repeats: int,
    min_time: float,
    sync: Callable[[], None],
    device: str = "cpu",
) -> dict[str, dict[str, Any]]:
    """Latencies of each function: a warm-up call each, then calls in turn until every one has
    at least ``repeats`` calls and ``min_time`` seconds.

    Alternating the functions (fp32 and bf16 of one model and batch size) makes load from other
    processes on shared cores fall on them alike. Returns per function its latencies [s], last
    result and, on CUDA, the largest peak of allocated memory over its calls [MiB].
    """
    out: dict[str, dict[str, Any]] = {
        key: {"seconds": [], "result": None, "peak_memory_mb": None} for key in functions
    }
    for key, function in functions.items():
        out[key]["result"] = function()
        sync()

    def unfinished() -> bool:
        return any(
            len(o["seconds"]) < repeats or sum(o["seconds"]) < min_time for o in out.values()
        )

    while unfinished():
        for key, function in functions.items():
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            sync()
            start = time.perf_counter()
            out[key]["result"] = function()
            sync()
            out[key]["seconds"].append(time.perf_counter() - start)
            if device == "cuda":
                peak = torch.cuda.max_memory_allocated() / 2**20
                out[key]["peak_memory_mb"] = max(out[key]["peak_memory_mb"] or 0.0, peak)
    return out


def _latency_summary(seconds: list[float], batch: int) -> dict[str, Any]:
    p50 = statistics.median(seconds)
    return {
        "batches_timed": len(seconds),
        "p50_ms": 1e3 * p50,
        "p99_ms": 1e3 * float(np.percentile(seconds, 99)),
        "mean_ms": 1e3 * statistics.fmean(seconds),
        "galaxies_per_s": batch / p50 if p50 > 0 else float("nan"),
        "all_s": seconds,
    }


def _cpu_bf16_flags() -> list[str]:
    """The CPU's bfloat16 instruction-set flags (native bf16 dot products), if any."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(f for f in line.split(":", 1)[1].split() if "bf16" in f)
    except OSError:
        pass
    return []


def _gpu_peak(name: str, fp32: float | None, bf16: float | None) -> dict[str, Any]:
    table = next(((key, f, b) for key, f, b in GPU_PEAK_TFLOPS if key in name), None)
    source = f"built-in datasheet table ({table[0]})" if table else "unknown device"
    peak_fp32 = fp32 if fp32 is not None else (table[1] if table else None)
    peak_bf16 = bf16 if bf16 is not None else (table[2] if table else None)
    if fp32 is not None or bf16 is not None:
        source = "command line" + (f", else {source}" if table else "")
    return {"fp32": peak_fp32, "bf16": peak_bf16, "source": source}


def _environment(device: str, threads: int) -> dict[str, Any]:
    environment: dict[str, Any] = {
        "device": device,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_bf16_flags": _cpu_bf16_flags(),
        "threads": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "requested_threads": threads,
        "load_average_at_start": list(os.getloadavg()),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "csst_photoz": csst_photoz.__version__,
        },
    }
    if device == "cuda":
        environment["gpu"] = torch.cuda.get_device_name()
        environment["versions"]["cuda"] = torch.version.cuda
        environment["versions"]["cudnn"] = torch.backends.cudnn.version()
        environment["tf32"] = {
            "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
            "cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        }
    return environment


# --------------------------------------------------------------------------- inputs and models


def _array_module(device: str) -> tuple[Any, str]:
    """The array library of the photometry (CuPy on CUDA when installed) and a note."""
    if device == "cpu":
        return np, "cpu (NumPy)"
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy, "cuda (CuPy)"
    except Exception:  # CuPy missing or unusable: stamps are cut on the host
        pass
    return np, "cpu (NumPy; CuPy not usable, stamps copied to the GPU once)"


def _inputs(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """Measured fluxes, errors and stamps of one simulated tile."""
    xp, stamp_device = _array_module(device)
    start = time.perf_counter()
    tile, truth = simulate_tile(
        TileSpec(tile_id=0, nx=args.tile_size, ny=args.tile_size, seed=args.seed)
    )
    simulate_s = time.perf_counter() - start
    photometry = measure_tile(tile, xp=xp)
    table = photometry.table
    n = table.num_rows
    if n == 0:
        raise SystemExit(f"no sources detected on the {args.tile_size}^2 tile; use a larger one")
    bands = list(tile.bands)
    fluxes = np.stack([table[f"counts_{b}"].to_numpy() for b in bands], axis=1)
    errors = np.stack([table[f"counts_err_{b}"].to_numpy() for b in bands], axis=1)
    stamps, _ = photometry.stamps(np.arange(n))
    print(f"simulated {args.tile_size}^2 tile: {truth.num_rows} galaxies, {n} detected "
          f"({simulate_s:.1f} s)")  # fmt: skip
    return {
        "tile": tile,
        "truth_galaxies": truth.num_rows,
        "photometry": photometry,
        "bands": bands,
        "fluxes": fluxes,
        "errors": errors,
        "stamps": torch.as_tensor(stamps, device=device),
        "stamp_device": stamp_device,
        "xp": xp,
        "simulate_s": simulate_s,
    }


def _models(device: str, seed: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The shipped networks and a ``Hybrid.from_pretrained(mlp, cnn)``, with their origins."""
    models: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for path in shipped_checkpoints():
        model = load_model(path, map_location=device)
        models[path.stem] = model
        origins[path.stem] = f"shipped checkpoint {path.name} ({model.variant})"
    if "mlp" in models and "cnn" in models and "hybrid" not in models:
        torch.manual_seed(seed)  # the fresh head's initialisation, for reproducible outputs
        models["hybrid"] = Hybrid.from_pretrained(models["mlp"], models["cnn"]).eval()
        origins["hybrid"] = "Hybrid.from_pretrained(mlp, cnn) (untrained head; no checkpoint ships)"
    if not models:
        raise SystemExit("no shipped checkpoints found (csst_photoz/checkpoints/*.pt)")
    return models, origins


def _flops_per_galaxy(model: Any, fluxes: np.ndarray, errors: np.ndarray, stamps: Any) -> dict:
    """Matmul and convolution FLOPs per galaxy of ``model.predict`` (fp32)."""
    index = np.resize(np.arange(fluxes.shape[0]), FLOP_COUNT_BATCH)
    inputs = {
        "fluxes": fluxes[index],
        "flux_errors": errors[index],
        "stamps": stamps[torch.as_tensor(index, device=stamps.device)],
    }
    n = FLOP_COUNT_BATCH
    with FlopCounterMode(display=False) as counter:
        model.predict(**inputs, batch_size=n, seed=0)
    by_op = {str(op): count / n for op, count in counter.get_flop_counts()["Global"].items()}
    return {"flops_per_galaxy": counter.get_total_flops() / n, "by_op": by_op}


# --------------------------------------------------------------------------- measurements


def _precision(device: str, precision: str) -> contextlib.AbstractContextManager:
    """CPU bf16: autocast around the call (predict_catalog's mixed_precision is CUDA-only)."""
    if precision == "bf16" and device == "cpu":
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _catalog_call(
    name: str, model: Any, bands: list[str], fluxes: np.ndarray, errors: np.ndarray,
    cut: Callable[[np.ndarray], Any], batch: int, device: str, precision: str,
) -> Callable[[], Any]:  # fmt: skip
    """One batch through ``predict_catalog``, as the processor calls it, in a precision."""
    mixed = precision == "bf16" and device == "cuda"  # predict_catalog's own CUDA autocast

    def call() -> Any:
        with _precision(device, precision):
            return predict_catalog(
                {name: model}, bands, fluxes, errors, cut, batch_size=batch,
                mixed_precision=mixed, seed=0,
            )  # fmt: skip

    return call


def _inference_rows(
    models: dict[str, Any],
    inputs: dict[str, Any],
    batch_sizes: list[int],
    flops: dict[str, dict],
    peak: dict[str, Any] | None,
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    device = args.device
    sync = _synchronise(device)
    bands = inputs["bands"]
    n = inputs["fluxes"].shape[0]
    rows: list[dict[str, Any]] = []
    for batch in batch_sizes:
        index = np.resize(np.arange(n), batch)
        fluxes, errors = inputs["fluxes"][index], inputs["errors"][index]
        stamps = inputs["stamps"][torch.as_tensor(index, device=inputs["stamps"].device)]

        def cut(rows: np.ndarray, stamps: Any = stamps) -> Any:
            return stamps[int(rows[0]) : int(rows[-1]) + 1]  # a view: cut beforehand

        for name, model in models.items():
            calls = {
                precision: _catalog_call(
                    name, model, bands, fluxes, errors, cut, batch, device, precision
                )
                for precision in PRECISIONS
            }
            timings = _timed_batches(calls, args.repeats, args.min_time, sync, device)
            for precision in PRECISIONS:
                timing = timings[precision]
                z = timing["result"][name].z
                row = {
                    "model": name,
                    "batch_size": batch,
                    "precision": precision,
                    **_latency_summary(timing["seconds"], batch),
                }
                row["gflop_per_s"] = flops[name]["flops_per_galaxy"] * row["galaxies_per_s"] / 1e9
                if peak is not None and peak.get(precision):
                    row["share_of_peak"] = row["gflop_per_s"] / (1e3 * peak[precision])
                if device == "cuda":
                    row["peak_memory_mb"] = timing["peak_memory_mb"]
                row["finite_fraction"] = float(np.isfinite(z).mean())
                rows.append(row)
                print(
                    f"{name:>8s} B={batch:<5d} {precision}: {row['galaxies_per_s']:>10,.0f} "
                    f"galaxies/s, p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms "
                    f"({row['batches_timed']} batches)"
                )
            rows[-1]["dz_vs_fp32"] = _precision_change(
                timings["fp32"]["result"][name].z, timings["bf16"]["result"][name].z
            )
    return rows


def _precision_change(z_fp32: np.ndarray, z_bf16: np.ndarray) -> dict[str, Any] | None:
    """How far bf16 moves the redshifts: |z_bf16 - z_fp32| over the galaxies (finite in both)."""
    finite = np.isfinite(z_fp32) & np.isfinite(z_bf16)
    if not finite.any():
        return None
    difference = np.abs(z_bf16[finite] - z_fp32[finite])
    return {
        "median_abs_dz": float(np.median(difference)),
        "p99_abs_dz": float(np.percentile(difference, 99)),
        "max_abs_dz": float(difference.max()),
        "fraction_over_0.01_1pz": float(np.mean(difference / (1 + z_fp32[finite]) > 0.01)),
        "fraction_over_0.15_1pz": float(np.mean(difference / (1 + z_fp32[finite]) > 0.15)),
    }


def _stamp_rows(inputs: dict[str, Any], batch_sizes: list[int], args: argparse.Namespace) -> list:
    photometry, xp = inputs["photometry"], inputs["xp"]
    sync = (lambda: xp.cuda.Device().synchronize()) if xp is not np else (lambda: None)
    n = inputs["fluxes"].shape[0]
    rows = []
    for batch in batch_sizes:
        index = np.resize(np.arange(n), batch)
        timing = _timed_batches(
            {"stamps": lambda index=index: photometry.stamps(index, seed=0)},
            args.repeats, args.min_time, sync,
        )["stamps"]  # fmt: skip
        rows.append({"batch_size": batch, **_latency_summary(timing["seconds"], batch)})
        print(f"  stamps B={batch:<5d}: {rows[-1]['galaxies_per_s']:>10,.0f} galaxies/s")
    return rows


# --------------------------------------------------------------------------- report


def _markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    device = env.get("gpu", env["cpu_model"])
    threads = env["torch_threads"]
    peak = result.get("gpu_peak_tflops")
    lines = [
        f"# Inference throughput, device: {env['device']}",
        "",
        f"{device}; {env['cpu_count']} CPU cores, torch threads {threads} (BLAS/OpenMP "
        f"{env['threads']['OMP_NUM_THREADS']}); "
        + "; ".join(f"{k} {v}" for k, v in env["versions"].items())
        + (f"; CPU bf16 flags: {', '.join(env['cpu_bf16_flags'])}" if env["cpu_bf16_flags"] else "")
        + ".",
        "",
        f"Inputs: seed {result['tile']['seed']}, {result['tile']['size']}^2 tile, "
        f"{result['tile']['detected_sources']} detected sources (fluxes, errors, 7 x 64 x 64 "
        f"stamps) repeated to the batch size. Each row: one warm-up batch, then at least "
        f"{result['repeats']} batches and {result['min_time_s']} s (fp32 and bf16 batches "
        f"alternating); galaxies/s = batch / median latency. Load average at start "
        f"{env['load_average_at_start'][0]:.2f}, at end "
        f"{result['load_average_at_end'][0]:.2f} (other processes share the cores).",
        "",
        "bf16: " + result["bf16_method"],
        "",
        "## Networks",
        "",
        "| model | origin | parameters | FLOPs / galaxy (matmul + conv) |",
        "| --- | --- | --- | --- |",
    ]
    for name, info in result["models"].items():
        lines.append(
            f"| {name} | {info['origin']} | {info['parameters']:,} "
            f"| {info['flops_per_galaxy'] / 1e6:.3f} M |"
        )
    share = peak is not None
    lines += [
        "",
        "## predict_catalog, one batch per call",
        "",
        "| model | batch | precision | galaxies/s | p50 [ms] | p99 [ms] | batches | GFLOP/s "
        + ("| share of peak " if share else "")
        + "| bf16 vs fp32: median / max abs dz, share with abs dz > 0.01 (1 + z) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- "
        + ("| --- " if share else "")
        + "| --- |",
    ]
    for row in sorted(
        result["inference"],
        key=lambda r: (list(result["models"]).index(r["model"]), r["batch_size"]),
    ):
        dz = row.get("dz_vs_fp32")
        change = (
            f"{dz['median_abs_dz']:.2g} / {dz['max_abs_dz']:.2g}, "
            f"{dz['fraction_over_0.01_1pz']:.1%}"
            if dz
            else ""
        )
        lines.append(
            f"| {row['model']} | {row['batch_size']} | {row['precision']} "
            f"| {row['galaxies_per_s']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} "
            f"| {row['batches_timed']} | {row['gflop_per_s']:.2f} "
            + (f"| {row.get('share_of_peak', float('nan')):.2%} " if share else "")
            + f"| {change} |"
        )
    if share:
        lines += ["", f"Peaks [TFLOP/s]: {peak}."]
    lines += [
        "",
        f"## Stamp cutting (TilePhotometry.stamps, 7 x 64 x 64, on {result['stamp_device']})",
        "",
        "| batch | galaxies/s | p50 [ms] | p99 [ms] |",
        "| --- | --- | --- | --- |",
    ]
    for row in result["stamps"]:
        lines.append(
            f"| {row['batch_size']} | {row['galaxies_per_s']:,.0f} | {row['p50_ms']:.2f} "
            f"| {row['p99_ms']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if (
        args.repeats < 1 or args.min_time < 0 or args.threads < 1 or args.tile_size < 64
        or any(b < 1 for b in args.batch_sizes)
    ):  # fmt: skip
        parser.error("need positive --repeats, --threads, --batch-sizes, --tile-size >= 64")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch finds no usable CUDA device")
    torch.set_num_threads(args.threads)
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel work
        torch.set_num_interop_threads(1)
    environment = _environment(args.device, args.threads)
    peak = (
        _gpu_peak(environment["gpu"], args.peak_tflops_fp32, args.peak_tflops_bf16)
        if args.device == "cuda"
        else None
    )

    inputs = _inputs(args, args.device)
    models, origins = _models(args.device, args.seed)
    model_info = {}
    flops = {}
    for name, model in models.items():
        flops[name] = _flops_per_galaxy(model, inputs["fluxes"], inputs["errors"], inputs["stamps"])
        model_info[name] = {
            "origin": origins[name],
            "variant": model.variant,
            "inputs": list(model.input_names),
            "parameters": sum(p.numel() for p in model.parameters()),
            **flops[name],
        }
        print(f"{name}: {flops[name]['flops_per_galaxy'] / 1e6:.3f} MFLOP per galaxy")

    batch_sizes = list(dict.fromkeys(args.batch_sizes))
    inference = _inference_rows(models, inputs, batch_sizes, flops, peak, args)
    stamps = _stamp_rows(inputs, batch_sizes, args)

    bf16_method = (
        "predict_catalog(..., mixed_precision=True): torch.autocast('cuda', bfloat16) inside it"
        if args.device == "cuda"
        else "predict_catalog(..., mixed_precision=False) called inside "
        "torch.autocast(device_type='cpu', dtype=torch.bfloat16) (its mixed_precision acts on "
        "CUDA only); fp32 rows run the same call without autocast"
    )
    result = {
        "benchmark": "inference",
        "command": (
            "python benchmarks/inference.py " + " ".join(sys.argv[1:] if argv is None else argv)
        ).strip(),
        "environment": environment,
        "repeats": args.repeats,
        "min_time_s": args.min_time,
        "tile": {
            "size": args.tile_size,
            "seed": args.seed,
            "truth_galaxies": inputs["truth_galaxies"],
            "detected_sources": int(inputs["fluxes"].shape[0]),
            "simulate_s": inputs["simulate_s"],
        },
        "bf16_method": bf16_method,
        "flops_counted": "torch.utils.flop_counter.FlopCounterMode over model.predict of "
        f"{FLOP_COUNT_BATCH} galaxies (fp32): matmul and convolution, 2 FLOPs per multiply-add",
        "models": model_info,
        "gpu_peak_tflops": peak,
        "inference": inference,
        "stamp_device": inputs["stamp_device"],
        "stamps": stamps,
        "load_average_at_end": list(os.getloadavg()),
    }
    write_results(args.out, f"inference_{args.device}", result, _markdown(result))


if __name__ == "__main__":
    main()
