"""Faults a survey run meets, tried with real processes; the table of what happens.

Every fault runs the ``csst-photoz`` command line in a subprocess (a local Dask cluster of two
workers, photometry only) on a small simulated field, then compares the catalogue with a clean
run's: rows lost (object ids of the reference missing from the run's partitions) and rows
duplicated (object ids written twice). Run::

    python benchmarks/faults.py [--tiles 4] [--size 256]

Writes ``benchmarks/results/faults.{json,md}`` and the table between the markers of
``docs/reliability.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from _results import cpu_model, write_results

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- faults table: begin -->", "<!-- faults table: end -->"
CLI = [sys.executable, "-m", "csst_photoz.cli"]


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def _run(tiles: list[Path], out: Path, *extra: str) -> subprocess.CompletedProcess:
    return _cli("run", *map(str, tiles), "--out", str(out), "--no-models", "--workers", "2",
                "--quiet", *extra)  # fmt: skip


def _ids(out: Path) -> Counter:
    import pyarrow.parquet as pq

    ids: Counter = Counter()
    for path in sorted((out / "tiles").glob("*.parquet")):
        ids.update(pq.read_table(path, columns=["object_id"])["object_id"].to_pylist())
    return ids


_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d |\s|Traceback|Dask dashboard|tiles:)")


def _last_line(result: subprocess.CompletedProcess) -> str:
    """The line that says what happened: an error, a failed tile, or the summary's first."""
    lines = [
        line
        for line in (result.stderr + "\n" + result.stdout).splitlines()
        if line.strip() and not _LOG_LINE.match(line)
    ]
    telling = [
        line for line in lines if "error:" in line or "FAILED" in line or "interrupted" in line
    ]
    summary = [line for line in lines if line.startswith("run ")]
    line = (telling or summary or lines or [""])[0]
    return line if len(line) < 160 else line[:157] + "..."


class Field:
    """The simulated field, its clean run, and fresh copies for each fault."""

    def __init__(self, work: Path, n_tiles: int, size: int) -> None:
        from csst_photoz.instrument import Instrument
        from csst_photoz.io import write_tile_zarr
        from csst_photoz.io.paths import tile_store_path
        from csst_photoz.sim.tiles import simulate_tile, tile_grid

        self.work = work
        self.tiles_dir = work / "field"
        instrument = Instrument.default()
        self.tiles = []
        for spec in tile_grid(n_tiles, nx=size, ny=size, seed=5):
            tile, _ = simulate_tile(spec, instrument=instrument)
            self.tiles.append(write_tile_zarr(tile, tile_store_path(self.tiles_dir, spec.tile_id)))
        reference = _run(self.tiles, work / "reference")
        if reference.returncode != 0:
            raise RuntimeError(f"the clean run failed: {reference.stderr[-2000:]}")
        self.reference = _ids(work / "reference")
        self.count = 0

    def copy(self) -> list[Path]:
        """A fresh copy of the tiles (a fault may damage them)."""
        self.count += 1
        folder = self.work / f"tiles_{self.count}"
        shutil.copytree(self.tiles_dir, folder)
        return sorted(folder.glob("*.zarr"))

    def out(self) -> Path:
        self.count += 1
        return self.work / f"run_{self.count}"

    def loss(self, out: Path, expected: set[int] | None = None) -> tuple[int, int]:
        """(rows lost, rows duplicated) of a run folder against the clean run."""
        ids = _ids(out)
        reference = set(self.reference) if expected is None else expected
        lost = len(reference - set(ids))
        duplicated = sum(n - 1 for n in ids.values() if n > 1)
        return lost, duplicated


def _spoil_detection_band(store: Path) -> None:
    from csst_photoz.io.tile_zarr import read_tile_zarr, write_tile_zarr
    from csst_photoz.tile import Tile

    tile = read_tile_zarr(store)
    image = tile.image.copy()
    for band in ("g", "r", "i", "z"):  # every detection band: no pixel to detect on
        image[tile.band_index(band)] = float("nan")
    shutil.rmtree(store)
    write_tile_zarr(Tile(**{**tile.__dict__, "image": image}), store)


def fault_nan_band(field: Field) -> dict:
    tiles, out = field.copy(), field.out()
    pristine = field.work / "pristine.zarr"
    shutil.copytree(tiles[1], pristine)
    _spoil_detection_band(tiles[1])
    first = _run(tiles, out)
    shutil.rmtree(tiles[1])
    shutil.copytree(pristine, tiles[1])
    shutil.rmtree(pristine)
    again = _run(tiles, out)
    return {
        "fault": "detection bands (g, r, i, z) all NaN in one tile; repaired, rerun",
        "statuses": [first.returncode, again.returncode],
        "what happens": _last_line(first).replace(str(field.work), "…"),
        "loss": field.loss(out),
    }


def _kill_midway(tiles: list[Path], out: Path, sig: int) -> subprocess.CompletedProcess:
    process = subprocess.Popen(
        [*CLI, "run", *map(str, tiles), "--out", str(out), "--no-models", "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((out / "_done").glob("*.json")):
        time.sleep(0.05)
    os.killpg(process.pid, sig) if sig == signal.SIGKILL else process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def fault_sigint(field: Field) -> dict:
    out = field.out()
    stopped = _kill_midway(field.tiles, out, signal.SIGINT)
    again = _run(field.tiles, out)
    return {
        "fault": "SIGINT (Ctrl-C) of the client after its first tile; rerun",
        "statuses": [stopped.returncode, again.returncode],
        "what happens": _last_line(stopped)
        + ("" if "Traceback" not in stopped.stderr else " (with a traceback)"),
        "loss": field.loss(out),
    }


def fault_sigkill(field: Field) -> dict:
    out = field.out()
    killed = _kill_midway(field.tiles, out, signal.SIGKILL)
    again = _run(field.tiles, out)
    return {
        "fault": "SIGKILL of the client and its workers after the first tile; rerun",
        "statuses": [killed.returncode, again.returncode],
        "what happens": "stale lock taken over, leftovers removed, the rest done: "
        + _last_line(again),
        "loss": field.loss(out),
    }


def fault_corrupt_chunk(field: Field) -> dict:
    tiles, out = field.copy(), field.out()
    chunk = next(p for p in sorted((tiles[2] / "image").rglob("*")) if p.is_file())
    chunk.write_bytes(b"garbage")
    first = _run(tiles, out)
    lost_tile = {i for i in field.reference if i >> 32 == 2}
    return {
        "fault": "garbage zarr chunk in one tile",
        "statuses": [first.returncode],
        "what happens": "tile failed, named with its reason; the others done",
        "loss": field.loss(out, set(field.reference) - lost_tile),
    }


def fault_lost_marker(field: Field) -> dict:
    out = field.out()
    _run(field.tiles, out)
    next(iter(sorted((out / "_done").glob("*.json")))).unlink()
    refused = _cli("catalog", "finalize", str(out), "--workers", "1")
    again = _run(field.tiles, out)
    return {
        "fault": "a done-marker deleted; finalize, then rerun",
        "statuses": [refused.returncode, again.returncode],
        "what happens": "finalize refuses, naming the partition without a done-marker"
        if "partition without a done-marker" in refused.stderr
        else _last_line(refused),
        "loss": field.loss(out),
    }


def fault_two_runs(field: Field) -> dict:
    out = field.out()
    first = subprocess.Popen(
        [*CLI, "run", *map(str, field.tiles), "--out", str(out), "--no-models", "--workers",
         "1", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "run.lock").exists():
        time.sleep(0.05)
    second = _run(field.tiles, out)
    first.communicate(timeout=300)
    return {
        "fault": "a second run on the same folder while the first runs",
        "statuses": [first.returncode, second.returncode],
        "what happens": "second refused: " + _last_line(second).split("error: ")[-1][:100],
        "loss": field.loss(out),
    }


def fault_overwrite(field: Field) -> dict:
    out = field.out()
    _run(field.tiles, out)
    fresh = _run(field.tiles[:2], out, "--overwrite", "--set", "photometry.threshold_sigma=2.0")
    partitions = sorted(p.name for p in (out / "tiles").glob("*.parquet"))
    return {
        "fault": "--overwrite with another threshold on 2 of the tiles",
        "statuses": [fresh.returncode],
        "what happens": f"fresh run: partitions {partitions} only",
        "loss": (0, 0),
    }


def fault_moved(field: Field) -> dict:
    out = field.out()
    _run(field.tiles, out)
    moved = field.copy()
    again = _run(moved, out)
    return {
        "fault": "tiles moved to another folder; rerun",
        "statuses": [again.returncode],
        "what happens": _last_line(again).split("\n")[0] if again.stdout else _last_line(again),
        "loss": field.loss(out),
    }


def fault_worker_killed(field: Field) -> dict:
    import psutil

    out = field.out()
    process = subprocess.Popen(
        [*CLI, "run", *map(str, field.tiles), "--out", str(out), "--no-models", "--workers", "2",
         "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list((out / "_done").glob("*.json")):
        time.sleep(0.05)
    workers = [  # LocalCluster's worker processes: spawned children of the client
        child for child in psutil.Process(process.pid).children()
        if "spawn_main" in " ".join(child.cmdline())
    ]  # fmt: skip
    os.kill(workers[0].pid, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=300)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return {
        "fault": "SIGKILL of one worker process after the first tile",
        "statuses": [result.returncode],
        "what happens": "Dask restarts it and retries its tile: " + _last_line(result),
        "loss": field.loss(out),
    }


def fault_code_in_checkpoint(field: Field) -> dict:
    import torch

    evil, witness = field.work / "evil.pt", field.work / "pwned"
    torch.save({"tensors": _Payload(str(witness))}, evil)
    result = _cli("run", str(field.tiles[0]), "--out", str(field.out()), "--models", str(evil),
                  "--workers", "1", "--quiet")  # fmt: skip
    ran = "code RAN" if witness.exists() else "nothing executed"
    return {
        "fault": "a checkpoint holding pickled code (--models evil.pt)",
        "statuses": [result.returncode],
        "what happens": f"refused, {ran}: " + _last_line(result)[:110],
        "loss": None,
    }


class _Payload:
    """Pickles as a call of ``open(path, "w")``: what a hostile checkpoint could run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (self.path, "w"))


def _usage(extra: list[str], options: list[str], label: str, field: Field) -> Callable[[], dict]:
    """A refused command: ``extra`` tile arguments and ``options`` after one good tile."""

    def fault() -> dict:
        result = _run([field.tiles[0], *map(Path, extra)], field.out(), *options)
        return {
            "fault": label,
            "statuses": [result.returncode],
            "what happens": _last_line(result).replace(str(field.work), "…"),
            "loss": None,
        }

    return fault


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--only", nargs="+", help="run only these faults (a check; no files)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="faults-"))
    try:
        field = Field(work, args.tiles, args.size)
        (work / "notes").mkdir()
        (work / "file.txt").write_text("")
        faults = [
            fault_nan_band, fault_corrupt_chunk, fault_sigint, fault_sigkill, fault_lost_marker,
            fault_two_runs, fault_overwrite, fault_moved, fault_worker_killed,
            fault_code_in_checkpoint,
            _usage([], ["--scheduler-file", str(work / "no-scheduler.json")],
                   "--scheduler-file that never appears (60 s timeout)", field),
            _usage([str(work / "notes")], [], "a folder without tiles among the tiles", field),
            _usage([], ["--memory-limit", "1MB"], "--memory-limit 1MB", field),
            _usage([], ["--memory-limit=-5GB"], "--memory-limit=-5GB", field),
            _usage([], ["--device", "cuda"], "--device cuda without a GPU", field),
        ]  # fmt: skip
        if args.only:
            faults = [f for f in faults if f.__name__ in args.only]
        rows = []
        for fault in faults:
            start = time.perf_counter()
            row = fault(field) if fault.__name__.startswith("fault_") else fault()
            row["seconds"] = round(time.perf_counter() - start, 1)
            print(json.dumps(row), flush=True)
            rows.append(row)
        if args.only:
            return
        file_out = _run(field.tiles[:1], work / "file.txt")
        rows.append({"fault": "--out names a file", "statuses": [file_out.returncode],
                     "what happens": _last_line(file_out).replace(str(work), "…"), "loss": None,
                     "seconds": 0})  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = [
        "| fault | exit statuses | what happens | rows lost / duplicated |",
        "| --- | --- | --- | --- |",
    ]
    for row in rows:
        loss = (
            "n/a (refused before any tile)"
            if row["loss"] is None
            else "{} / {}".format(*row["loss"])
        )
        happens = row["what happens"].replace(str(work), "…").replace("|", "\\|")
        statuses = ", ".join(map(str, row["statuses"]))
        table.append(f"| {row['fault']} | {statuses} | {happens} | {loss} |")
    header = (
        f"`python benchmarks/faults.py --tiles {args.tiles} --size {args.size}` on "
        f"{cpu_model()} ({len(field.reference)} rows in the clean run; photometry only; "
        "statuses in order of the commands run)."
    )
    markdown = "\n".join([header, "", *table, ""])
    write_results(args.out, "faults", {"cpu": cpu_model(), "rows": rows}, markdown)
    text = DOC.read_text()
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        DOC.write_text(f"{before}{BEGIN}\n{markdown}{END}{rest.split(END, 1)[1]}")


if __name__ == "__main__":
    main()
