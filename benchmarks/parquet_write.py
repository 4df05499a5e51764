"""Writing a catalogue partition: the batch processor's writer beside plain pyarrow, and reading.

Usage: python benchmarks/parquet_write.py [--rows 100000] [--repeats 9] [--threads 1]
       [--tile-size 1024] [--seed 2022] [--scratch DIR] [--out benchmarks/results]

The table is a real partition: one simulated tile (``simulate_tile``, ``--tile-size`` pixels a
side) measured with ``measure_tile``, with the ``z_<model>`` / ``z_<model>_err`` float32 columns
(and schema metadata) that the batch processor appends, from the shipped checkpoints run on the
tile through ``predict_catalog``. It is then tiled up to ``--rows`` rows. Plain repetition
would let zstd find the copies and overstate the compression, so every copy after the first is
a random permutation of the tile's rows with each floating-point value multiplied by
``1 + 1e-3 N(0, 1)`` (NaNs stay NaN), and ``object_id`` is renumbered so that it is unique, as
in a real partition. The compressed size of the single measured tile is recorded beside the
tiled table's, to show the tiling keeps the bytes per row realistic.

Writers, each the median of ``--repeats`` timed calls after an untimed warm-up call, the file
removed before every call (none of them fsyncs, so these are page-cache rates). The calls are
interleaved (each round writes once with every writer, then hashes the partition), so that load
from other processes on shared cores falls on all the writers alike; reading back likewise:

* ``RunStore.write_partition``: what the processor does (zstd, dictionary encoding off for
  floating-point columns and ``object_id``, statistics, written under a temporary name and
  renamed, then the file's SHA-256 for the done-marker);
* zstd with the same options, straight to the file: no rename, no SHA-256;
* ``pyarrow.parquet.write_table`` defaults (snappy, dictionary encoding everywhere);
* the SHA-256 of the partition on its own;
* reading each file back with ``pyarrow.parquet.read_table``.

Rates: rows/s; MB/s of the in-memory Arrow table (``Table.nbytes``, the same data for every
writer) and of the file written or read. Threads: the Arrow CPU and I/O pools and the BLAS/OpenMP
pools get ``--threads`` (default 1, one worker process per core as in the processor), set before
NumPy and pyarrow are imported. The load average at the start and end is recorded.

Writes ``parquet_write.json`` and ``parquet_write.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from _results import THREAD_VARIABLES, cpu_model, pin_threads, write_results

RESULTS = Path(__file__).parent / "results"
JITTER = 1e-3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the partition")
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds per measurement")
    parser.add_argument("--threads", type=int, default=1, help="Arrow / BLAS / OpenMP threads")
    parser.add_argument("--tile-size", type=int, default=1024, help="simulated tile side [px]")
    parser.add_argument("--seed", type=int, default=2022, help="simulation and tiling seed")
    parser.add_argument(
        "--scratch", type=Path, default=None,
        help="folder for the files written (default: a temporary folder, removed afterwards)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    return parser


# pin the thread pools before anything imports NumPy or pyarrow (when run as a script)
_THREADS = _parser().parse_known_args()[0].threads if __name__ == "__main__" else 1
pin_threads(_THREADS)

import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

import csst_photoz  # noqa: E402
from csst_photoz.io.run_store import RunStore, file_sha256  # noqa: E402
from csst_photoz.photometry import measure_tile  # noqa: E402
from csst_photoz.photometry.catalog import object_ids  # noqa: E402
from csst_photoz.pipeline import PipelineConfig, resolve_checkpoints  # noqa: E402
from csst_photoz.pipeline.tile_task import TileJob  # noqa: E402
from csst_photoz.pipeline.tile_task import _with_photoz as with_photoz  # noqa: E402
from csst_photoz.sim.tiles import TileSpec, simulate_tile  # noqa: E402

MB = 1e6


# --------------------------------------------------------------------------- machinery


def _interleaved(
    functions: dict[str, Callable[[], Any]], repeats: int, before: dict[str, Callable[[], None]]
) -> dict[str, dict[str, Any]]:
    """Median wall time of each function over ``repeats`` rounds, after one warm-up round.

    Every round calls each function once, in turn (``before[name]`` untimed before it), so
    that load from other processes on shared cores falls on all of them alike.
    """
    seconds: dict[str, list[float]] = {name: [] for name in functions}
    for round_ in range(repeats + 1):  # the first round is the warm-up
        for name, function in functions.items():
            before.get(name, lambda: None)()
            start = time.perf_counter()
            function()
            if round_:
                seconds[name].append(time.perf_counter() - start)
    return {
        name: {"median_s": statistics.median(values), "all_s": values}
        for name, values in seconds.items()
    }


def _filesystem(path: Path) -> str | None:
    """The filesystem type of the mount holding ``path`` (from /proc/mounts), if known."""
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return None
    resolved = str(path.resolve())
    best = max(
        (m for m in mounts if len(m) > 2 and resolved.startswith(m[1].rstrip("/") + "/")),
        key=lambda m: len(m[1]),
        default=None,
    )
    return f"{best[2]} ({best[1]})" if best else None


def _environment(threads: int) -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "threads": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "arrow_cpu_count": pa.cpu_count(),
        "arrow_io_thread_count": pa.io_thread_count(),
        "requested_threads": threads,
        "load_average_at_start": list(os.getloadavg()),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pyarrow": pa.__version__,
            "csst_photoz": csst_photoz.__version__,
        },
    }


# --------------------------------------------------------------------------- the table


def _partition_of_tile(args: argparse.Namespace, scratch: Path) -> tuple[pa.Table, dict]:
    """One measured tile with the processor's photo-z columns and metadata."""
    import torch

    from csst_photoz.models import load_model
    from csst_photoz.models.inference import predict_catalog

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    tile, truth = simulate_tile(
        TileSpec(tile_id=0, nx=args.tile_size, ny=args.tile_size, seed=args.seed)
    )
    simulate_s = time.perf_counter() - start
    photometry = measure_tile(tile)
    table = photometry.table
    if table.num_rows == 0:
        raise SystemExit(f"no sources detected on the {args.tile_size}^2 tile; use a larger one")
    refs = tuple(resolve_checkpoints(None))
    config = PipelineConfig()
    bands = list(tile.bands)
    fluxes = np.stack([table[f"counts_{b}"].to_numpy() for b in bands], axis=1)
    errors = np.stack([table[f"counts_err_{b}"].to_numpy() for b in bands], axis=1)
    models = {ref.name: load_model(ref.path) for ref in refs}
    estimates = predict_catalog(
        models, bands, fluxes, errors,
        lambda rows: photometry.stamps(rows, seed=config.stamp_seed)[0],
        batch_size=config.inference_batch_size("cpu"), mixed_precision=False,
        seed=config.stamp_seed,
    )  # fmt: skip
    job = TileJob(str(scratch), config.model_dump_json(), refs, tuple(bands))
    print(f"simulated {args.tile_size}^2 tile: {truth.num_rows} galaxies, {table.num_rows} rows")
    info = {
        "size": args.tile_size,
        "seed": args.seed,
        "truth_galaxies": truth.num_rows,
        "rows": table.num_rows,
        "simulate_s": simulate_s,
        "models": [ref.name for ref in refs],
    }
    return with_photoz(table, estimates, job), info


def _tiled(table: pa.Table, rows: int, seed: int) -> pa.Table:
    """``table`` repeated to ``rows`` rows: later copies permuted and their floats jittered."""
    n = table.num_rows
    rng = np.random.default_rng(seed)
    copies = -(-rows // n)
    order = np.concatenate([np.arange(n)] + [rng.permutation(n) for _ in range(copies - 1)])
    order = order[:rows]
    tiled = table.take(pa.array(order))
    jitter = np.ones(rows)
    jitter[n:] += JITTER * rng.standard_normal(max(rows - n, 0))
    for i, field in enumerate(tiled.schema):
        if field.name == "object_id":
            tile_id = int(table.schema.metadata[b"csst_photoz.tile_id"])
            column = pa.array(object_ids(tile_id, rows), type=field.type)
        elif pa.types.is_floating(field.type):
            values = tiled.column(i).to_numpy().astype(np.float64)
            column = pa.array((values * jitter).astype(field.type.to_pandas_dtype()))
        else:
            continue
        tiled = tiled.set_column(i, field, column)
    return tiled


# --------------------------------------------------------------------------- measurements


def _dictionary_columns(table: pa.Table) -> list[str]:
    """The columns RunStore.write_partition dictionary-encodes (not floats, not object_id)."""
    return [
        f.name
        for f in table.schema
        if not pa.types.is_floating(f.type) and f.name not in ("object_id",)
    ]


def _data_bytes(path: Path) -> int:
    """Compressed bytes of the column chunks of a Parquet file (the file less its footer)."""
    metadata = pq.ParquetFile(path).metadata
    return sum(
        metadata.row_group(g).column(c).total_compressed_size
        for g in range(metadata.num_row_groups)
        for c in range(metadata.num_columns)
    )


def _same(read: pa.Table, written: pa.Table) -> bool:
    """Whether a table read back holds the values written (NaN equal to NaN)."""
    if not read.schema.equals(written.schema) or read.num_rows != written.num_rows:
        return False
    for name in written.column_names:
        a, b = read[name].to_numpy(), written[name].to_numpy()
        floating = np.issubdtype(a.dtype, np.floating)
        if not np.array_equal(a, b, equal_nan=floating):
            return False
    return True


def _measure(table: pa.Table, scratch: Path, repeats: int) -> dict[str, Any]:
    store = RunStore(scratch / "run")
    tile_id = int(table.schema.metadata[b"csst_photoz.tile_id"])
    partition = store.partition_path(tile_id)
    zstd_path = scratch / "zstd.parquet"
    default_path = scratch / "default.parquet"
    dictionary = _dictionary_columns(table)

    def remove(path: Path) -> Callable[[], None]:
        return lambda: path.unlink(missing_ok=True)

    def write_zstd() -> None:
        pq.write_table(
            table, zstd_path, compression="zstd", use_dictionary=dictionary, write_statistics=True
        )

    writers = {
        "RunStore.write_partition (zstd, no float dictionary, atomic rename, SHA-256)": (
            lambda: store.write_partition(tile_id, table),
            partition,
        ),
        "zstd as RunStore, no rename, no SHA-256": (write_zstd, zstd_path),
        "pyarrow write_table defaults (snappy, dictionary)": (
            lambda: pq.write_table(table, default_path),
            default_path,
        ),
    }
    sha256 = "SHA-256 of the RunStore partition"
    write_timings = _interleaved(
        {**{name: write for name, (write, _) in writers.items()},
         sha256: lambda: file_sha256(partition)},
        repeats,
        {name: remove(path) for name, (_, path) in writers.items()},
    )  # fmt: skip
    read_timings = _interleaved(
        {name: lambda path=path: pq.read_table(path) for name, (_, path) in writers.items()},
        repeats,
        {},
    )
    nbytes = table.nbytes
    results: dict[str, Any] = {"writers": {}, "read": {}}
    for name, (_, path) in writers.items():
        size = path.stat().st_size
        if not _same(pq.read_table(path), table):
            raise RuntimeError(f"{name}: the file read back differs from the table written")
        for section, timing in (("writers", write_timings[name]), ("read", read_timings[name])):
            results[section][name] = {
                **timing,
                "rows_per_s": table.num_rows / timing["median_s"],
                "arrow_mb_per_s": nbytes / MB / timing["median_s"],
                "file_mb_per_s": size / MB / timing["median_s"],
            }
        results["writers"][name].update(
            file_bytes=size,
            bytes_per_row=size / table.num_rows,
            column_data_bytes_per_row=_data_bytes(path) / table.num_rows,
            compression_ratio=nbytes / size,
        )
        print(
            f"{name}: write {results['writers'][name]['rows_per_s']:,.0f} rows/s, read "
            f"{results['read'][name]['rows_per_s']:,.0f} rows/s, {size / MB:.2f} MB"
        )
    size = partition.stat().st_size
    results["sha256"] = {
        **write_timings[sha256],
        "file_mb_per_s": size / MB / write_timings[sha256]["median_s"],
    }
    return results


# --------------------------------------------------------------------------- report


def _markdown(result: dict[str, Any]) -> str:
    env, table = result["environment"], result["table"]
    lines = [
        f"# Parquet partition write, {table['rows']:,} rows x {table['columns']} columns",
        "",
        f"{env['cpu_model']}; {env['cpu_count']} CPU cores, Arrow CPU threads "
        f"{env['arrow_cpu_count']}, I/O threads {env['arrow_io_thread_count']}; "
        + "; ".join(f"{k} {v}" for k, v in env["versions"].items())
        + f". Files in {result['scratch_filesystem'] or 'a temporary folder'} (no fsync: "
        "page-cache rates).",
        "",
        f"Table: the processor's partition of a {result['tile']['size']}^2 tile (seed "
        f"{result['tile']['seed']}, {result['tile']['rows']} rows, photo-z columns of "
        f"{', '.join(result['tile']['models'])}), tiled to {table['rows']:,} rows (copies "
        f"permuted, floats x (1 + {JITTER:g} N(0,1)), unique object_id); Arrow size "
        f"{table['arrow_bytes'] / MB:.1f} MB. Medians of {result['repeats']} interleaved rounds "
        "after a warm-up round. "
        f"Load average at start {env['load_average_at_start'][0]:.2f}, at end "
        f"{result['load_average_at_end'][0]:.2f} (other processes share the cores).",
        "",
        "## Write",
        "",
        "| writer | time [ms] | rows/s | Arrow MB/s | file MB/s | file [MB] | bytes/row "
        "| Arrow / file |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in result["writers"].items():
        lines.append(
            f"| {name} | {1e3 * row['median_s']:.1f} | {row['rows_per_s']:,.0f} "
            f"| {row['arrow_mb_per_s']:,.0f} | {row['file_mb_per_s']:,.0f} "
            f"| {row['file_bytes'] / MB:.2f} | {row['bytes_per_row']:.0f} "
            f"| {row['compression_ratio']:.2f} |"
        )
    sha = result["sha256"]
    single = result["single_tile_partition"]
    runstore = next(iter(result["writers"].values()))
    lines += [
        "",
        f"SHA-256 of the partition alone: {1e3 * sha['median_s']:.1f} ms "
        f"({sha['file_mb_per_s']:,.0f} MB/s). Column data (file less footer) per row: "
        f"{runstore['column_data_bytes_per_row']:.0f} bytes in the tiled table's partition, "
        f"{single['column_data_bytes_per_row']:.0f} bytes in the partition of the single "
        f"measured tile ({single['rows']} rows): the tiled copies should compress no better "
        "than measured data.",
        "",
        "## Read back (pyarrow.parquet.read_table)",
        "",
        "| file written by | time [ms] | rows/s | Arrow MB/s | file MB/s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, row in result["read"].items():
        lines.append(
            f"| {name} | {1e3 * row['median_s']:.1f} | {row['rows_per_s']:,.0f} "
            f"| {row['arrow_mb_per_s']:,.0f} | {row['file_mb_per_s']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeats < 1 or args.threads < 1 or args.tile_size < 64:
        parser.error("need positive --rows, --repeats, --threads and --tile-size >= 64")
    pa.set_cpu_count(args.threads)
    pa.set_io_thread_count(args.threads)
    environment = _environment(args.threads)

    with tempfile.TemporaryDirectory(prefix="parquet_write_", dir=args.scratch) as folder:
        scratch = Path(folder)
        single, tile = _partition_of_tile(args, scratch)
        single_id = int(single.schema.metadata[b"csst_photoz.tile_id"])
        single_store = RunStore(scratch / "single")
        single_path, single_bytes, _ = single_store.write_partition(single_id, single)
        single_data_bytes = _data_bytes(single_path)
        table = _tiled(single, args.rows, args.seed)
        print(f"table: {table.num_rows} rows, {table.num_columns} columns, "
              f"{table.nbytes / MB:.1f} MB in Arrow")  # fmt: skip
        measured = _measure(table, scratch, args.repeats)
        filesystem = _filesystem(scratch)

    result = {
        "benchmark": "parquet_write",
        "command": (
            "python benchmarks/parquet_write.py " + " ".join(sys.argv[1:] if argv is None else argv)
        ).strip(),
        "environment": environment,
        "repeats": args.repeats,
        "scratch_filesystem": filesystem,
        "tile": tile,
        "single_tile_partition": {
            "rows": single.num_rows,
            "file_bytes": single_bytes,
            "bytes_per_row": single_bytes / single.num_rows,
            "column_data_bytes_per_row": single_data_bytes / single.num_rows,
        },
        "table": {
            "rows": table.num_rows,
            "columns": table.num_columns,
            "arrow_bytes": table.nbytes,
            "photoz_columns": [n for n in table.column_names if n.startswith("z_")],
            "dictionary_columns_runstore": _dictionary_columns(table),
            "tiling": f"copies after the first permuted, floats x (1 + {JITTER:g} N(0,1)), "
            "object_id renumbered",
        },
        **measured,
        "load_average_at_end": list(os.getloadavg()),
    }
    write_results(args.out, "parquet_write", result, _markdown(result))


if __name__ == "__main__":
    main()
