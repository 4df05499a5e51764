"""The GPU device check: one command, at most 8 minutes, everything the CUDA path needs measured.

Usage::

    python3 benchmarks/gpu_check.py [--wheels .device-wheels] [--budget-s 480] [--tiles 3]
                                    [--copy-to DIR] [--out benchmarks/results]
                                    [--set pipeline.gpu.rmm_pool_size=0.6 ...]
    python3 benchmarks/gpu_check.py --dry-run       # CPU, small sizes (CI runs this)

On a machine with one GPU and Python 3.12 with torch and CuPy (the lent H100/H200), it

1. installs the carried wheels (``benchmarks/prepare_device_wheels.sh``) into a private folder
   (``pip install --no-index --no-deps --target``; wheels whose tags this interpreter does
   not support are left out and named) and puts it and the checkout on ``PYTHONPATH`` for
   every later step;
2. records the device, driver and versions;
3. runs the ``gpu``-marked tests (CuPy photometry equals NumPy's, a CUDA run equals the CPU
   run row for row, torch out-of-memory under the RMM pool names the tile);
4. makes full 9216 x 9232 tiles with a fast generator (a GalSim-rendered 1024^2 patch,
   mirror-tiled: ``gpu_check_phases.mirrored_tile``);
5. times photometry on CuPy (full tile, per stage, with the GPU window cap
   ``max_window_pixels_gpu`` and, for comparison, the CPU cap) against NumPy (quarter tile,
   per stage), and stamps/s;
6. times inference per shipped network, fp32 and bf16, at batch 4096;
7. runs ``csst_photoz.run`` through ``connect`` (a ``LocalCUDACluster`` with the RMM pool of
   ``[pipeline.gpu]``, :mod:`csst_photoz.pipeline.gpu_memory`) over the tiles: galaxies/s,
   tiles per GPU-hour, shares of read, photometry, stamps, inference and write.

``--set`` overrides reach the photometry and pipeline steps as ``csst-photoz run --set`` does;
the report records the window caps and the pool they used.

Each step runs in its own process group under a timeout cut from one hard budget (default
480 s); at the timeout the whole group is killed (dask workers and pool processes included),
so a hung or slow step costs only its share and the rest still run. A step whose input is
missing because an earlier step failed works on a stand-in where it can (inference on
synthetic inputs). The report (JSON and Markdown, with the device, driver and versions, and
each step's status) is written after every step to ``--out/gpu_check_<device>.{json,md}`` and,
with ``--copy-to``, also there with every step's full log (the lent machine's checkout is
discarded: copy to ``$OUT``), so even a run killed from outside leaves the steps done so far.
This script itself imports only the standard library, so it starts before anything is
installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PHASES_SCRIPT = Path(__file__).resolve().parent / "gpu_check_phases.py"
RESULTS = ROOT / "benchmarks" / "results"

#: Disk one full tile takes in the work folder (image, variance, mask: 6.0 GB raw), rounded up.
FULL_TILE_GB = 7.0
#: Seconds one gpu-marked test may run (pytest-timeout, where installed) before the next.
TEST_TIMEOUT_S = 60


@dataclass(frozen=True)
class Step:
    """One step of the check: its name, the share of the budget it may use at most, and the
    seconds it keeps back for itself while earlier steps run (its floor)."""

    name: str
    cap_s: float
    floor_s: float


#: The steps in order, with their caps and floors in seconds for the 480 s budget (scaled with
#: ``--budget-s``). Sum of floors: what the last steps keep however long the first ones take.
STEPS = (
    Step("setup", 60, 20),
    Step("environment", 30, 10),
    Step("tests", 110, 30),
    Step("tiles", 90, 30),
    Step("photometry", 110, 40),
    Step("inference", 60, 20),
    Step("pipeline", 150, 60),
)


def budget_for(step_index: int, remaining_s: float, scale: float) -> float:
    """Seconds step ``step_index`` may run: its cap, less what later steps keep back."""
    later = sum(step.floor_s for step in STEPS[step_index + 1 :]) * scale
    return max(0.0, min(STEPS[step_index].cap_s * scale, remaining_s - later))


def _kill_group(process: subprocess.Popen) -> None:
    """End a step's process group: TERM, then KILL what is left (dask workers, pools)."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        if grace:
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.5)  # children that outlive the leader get the KILL below


def _run(command: list[str], timeout_s: float, env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run a command in its own process group under a timeout; its output goes to ``log`` (and
    the tail to the result). At the timeout, and after it exits, nothing of the group is left.
    """
    start = time.perf_counter()
    if timeout_s < 1:
        return {"status": "skipped", "reason": "no time left in the budget", "seconds": 0.0}
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            start_new_session=True,
        )  # fmt: skip
        try:
            code = process.wait(timeout=timeout_s)
            status = "ok" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            status = f"timed out after {timeout_s:.0f} s"
        _kill_group(process)
        process.wait()
    tail = log.read_text(errors="replace")[-3000:]
    return {"status": status, "seconds": time.perf_counter() - start, "log_tail": tail}


def _gpu_test_files() -> list[str]:
    """Test files that hold ``gpu``-marked tests."""
    files = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if "mark.gpu" in path.read_text(errors="replace"):
            files.append(str(path.relative_to(ROOT)))
    return files


def _pytest_counts(output: str) -> dict[str, int]:
    """Passed / failed / skipped / error counts from pytest's last summary line, or, when there
    is none (pytest was killed at the step's timeout), from its ``-v`` lines, one per test."""
    counts = {}
    lines = output.strip().splitlines()
    summary = lines[-1] if lines else ""
    for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", summary):
        counts[word.rstrip("s") if word.startswith("error") else word] = int(number)
    collected = re.search(r"(\d+)(?:/\d+)? tests? collected", summary)
    if collected:
        counts["collected"] = int(collected.group(1))
    if not counts:
        for word in re.findall(r"::\S+ (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b", output):
            counts[word.lower()] = counts.get(word.lower(), 0) + 1
        if counts:
            counts["incomplete"] = 1  # no summary line: the counts stop where pytest did
    return counts


def _supported(wheels: list[Path]) -> tuple[list[Path], list[str]]:
    """The wheels this interpreter can install, and the names of those it cannot (their tags
    are none of ``packaging.tags.sys_tags()``: another Python version or platform)."""
    try:
        from packaging.tags import sys_tags
        from packaging.utils import parse_wheel_filename
    except ImportError:  # no packaging: let pip decide
        return wheels, []
    supported = set(sys_tags())
    usable, refused = [], []
    for wheel in wheels:
        try:
            tags = parse_wheel_filename(wheel.name)[3]
        except ValueError:
            refused.append(f"{wheel.name} (not a wheel file name)")
            continue
        if tags & supported:
            usable.append(wheel)
        else:
            refused.append(f"{wheel.name} (no tag this Python supports)")
    return usable, refused


def _setup(args: argparse.Namespace, timeout_s: float, env: dict[str, str], log: Path) -> dict:
    wheels = sorted(Path(args.wheels).glob("*.whl")) if args.wheels else []
    if not wheels:
        log.write_text(f"no wheels in {args.wheels}: nothing to install\n")
        return {"status": "ok", "seconds": 0.0, "note": f"no wheels in {args.wheels}: none"}
    usable, refused = _supported(wheels)
    site = Path(args.site)
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
        "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(site),
        *map(str, usable),
    ]  # fmt: skip
    result = _run(command, timeout_s, env, log)
    result["wheels"] = [w.name for w in usable]
    result["site"] = str(site)
    if refused:
        result["refused"] = refused
        if result["status"] == "ok":
            result["status"] = f"partial ({len(refused)} wheels not for this Python)"
    return result


def _tests(args: argparse.Namespace, timeout_s: float, env: dict[str, str], log: Path) -> dict:
    files = _gpu_test_files()
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-p", "no:cacheprovider"]
    if args.dry_run:
        command += ["-q", "--collect-only"]
    else:  # one line per test, so a step cut at its timeout still says which passed
        command += ["-v", "-rfE", "--durations=5"]
        if importlib.util.find_spec("pytest_timeout"):  # a hung test costs 60 s, not the step
            command.append(f"--timeout={TEST_TIMEOUT_S}")
    result = _run([*command, *files], timeout_s, env, log)
    result["files"] = files
    result["counts"] = _pytest_counts(log.read_text(errors="replace"))
    return result


def _phase(
    args: argparse.Namespace, name: str, timeout_s: float, env: dict[str, str], log: Path
) -> dict:
    command = [sys.executable, str(PHASES_SCRIPT), name, "--work", str(args.work)]
    command += ["--tiles", str(args.tiles)] + (["--dry-run"] if args.dry_run else [])
    command += [f"--set={assignment}" for assignment in args.set]
    result = _run(command, timeout_s, env, log)
    output = args.work / f"{name}.json"
    if output.is_file():  # a step that overran may have left a partial result
        result["result"] = json.loads(output.read_text())
        result["partial"] = result["status"] != "ok"
    return result


def _device_slug(steps: dict[str, dict], dry_run: bool) -> str:
    if dry_run:
        return "dryrun_cpu"
    device = steps.get("environment", {}).get("result", {}).get("device", {})
    name = str(device.get("name", "unknown_gpu"))
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "unknown_gpu"


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, float):
        return f"{value:,.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _photometry_lines(result: dict[str, Any]) -> list[str]:
    full, gpu = result["full_tile"], result["device"]
    lines = [
        f"Full tile {result['shape']} on {gpu}: {full['seconds']:.2f} s, {full['sources']} "
        f"sources (first call, kernels compiled: {result['first_call_s']:.1f} s); stamps: "
        f"{result['stamps']['stamps_per_s']:,.0f}/s.",
        "",
    ]
    if "max_window_pixels" in result:
        lines[0] = (
            f"{lines[0][:-1]}; window cap `{result['max_window_pixels_key']}` = "
            f"{result['max_window_pixels']:,} px."
        )
    other = result.get("full_tile_other_window_cap")
    if other:
        agreement = other.get("agreement", {})
        lines += [
            f"With the other backend's window cap, {other['max_window_pixels']:,} px: "
            f"{other['seconds']:.2f} s (kron_and_snr "
            f"{other['stages_s'].get('kron_and_snr', float('nan')):.3f} s), {other['sources']} "
            f"sources; same rows: {agreement.get('same_rows')}, largest relative difference "
            f"{agreement.get('max_rel_diff', float('nan')):.2g} ({agreement.get('column')}).",
            "",
        ]
    quarter = result.get("quarter_tile", {})
    cpu, dev = (
        quarter.get("numpy", {}).get("stages_s", {}),
        quarter.get(gpu, {}).get("stages_s", {}),
    )
    speedup = quarter.get("speedup_per_stage", {})
    lines += [
        f"| stage | full tile {gpu} [s] | quarter numpy [s] | quarter {gpu} [s] | speed-up |",
        "| --- | --- | --- | --- | --- |",
    ]
    for stage, seconds in full["stages_s"].items():
        lines.append(
            f"| {stage} | {seconds:.3f} | {cpu.get(stage, float('nan')):.3f} "
            f"| {dev.get(stage, float('nan')):.3f} | {_fmt(speedup.get(stage, float('nan')))} |"
        )
    return lines


def _inference_lines(result: dict[str, Any]) -> list[str]:
    lines = [
        f"Batch {result['batch']} on {result['device']}; inputs: {result.get('inputs', '?')}.",
        "",
        "| network | fp32 galaxies/s | bf16 galaxies/s |",
        "| --- | --- | --- |",
    ]
    for name, row in result["networks"].items():
        fp32, bf16 = row["fp32"]["galaxies_per_s"], row["bf16"]["galaxies_per_s"]
        lines.append(f"| {name} | {fp32:,.0f} | {bf16:,.0f} |")
    return lines


def _pipeline_lines(result: dict[str, Any], dry_run: bool) -> list[str]:
    shares = ", ".join(f"{k} {100 * v:.0f} %" for k, v in result["stage_shares"].items())
    lines = [
        f"{result['cluster']}: {result['tiles_done']} tiles done, {result['tiles_failed']} "
        f"failed, {result['galaxies']} galaxies in {result['wall_s']:.1f} s: "
        f"{result['galaxies_per_s']:,.0f} galaxies/s, {result['tiles_per_hour']:,.0f} tiles per "
        f"hour on one {'CPU worker' if dry_run else 'GPU'}. Task time: {shares}.",
    ]
    if "gpu_pool" in result:
        lines.append(f"`[pipeline.gpu]`: {result['gpu_pool']}; window cap on the workers "
                     f"{result.get('max_window_pixels', 0):,} px.")  # fmt: skip
    if result.get("pool"):
        lines.append(f"Allocators on the worker: {result['pool']}.")
    if result.get("warning"):
        lines.append(f"**Warning: {result['warning']}.**")
    return lines


def _section(title: str, step: dict[str, Any], render: Any) -> list[str]:
    """A step's section; a partial result (the step overran) is said to be so."""
    result = step.get("result")
    if not result:
        return []
    try:
        body = render(result)
    except (KeyError, TypeError, ValueError) as error:
        body = [f"(incomplete result: {type(error).__name__} {error}; see the JSON)"]
    note = [f"*Partial: the step {step['status']}.*", ""] if step.get("partial") else []
    return ["", f"## {title}", "", *note, *body]


def to_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: steps with their status, then each measurement."""
    steps = report["steps"]
    lines = [
        f"# GPU device check ({'dry run, CPU' if report['dry_run'] else report['device']})",
        "",
        f"Command: `{report['command']}`; budget {report['budget_s']:.0f} s, "
        f"used {report['wall_s']:.0f} s.",
        "",
    ]
    if report.get("settings"):
        lines += [f"Settings: {', '.join(f'`{a}`' for a in report['settings'])}.", ""]
    if report.get("note"):
        lines += [f"Note: {report['note']}.", ""]
    lines += [
        "| step | status | seconds |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {n} | {s['status']} | {s.get('seconds', 0):.1f} |" for n, s in steps.items()]
    lines += _section("Environment", steps.get("environment", {}),
                      lambda r: ["```", json.dumps(r, indent=1), "```"])  # fmt: skip
    if steps.get("tests"):
        lines += ["", f"## gpu-marked tests: {steps['tests'].get('counts')}"]
    lines += _section("Tiles", steps.get("tiles", {}),
                      lambda r: [f"{r['generator']}; made in {r['wall_s']:.1f} s."])  # fmt: skip
    lines += _section("Photometry", steps.get("photometry", {}), _photometry_lines)
    lines += _section("Inference", steps.get("inference", {}), _inference_lines)
    lines += _section("End to end (`csst_photoz.run`)", steps.get("pipeline", {}),
                      lambda r: _pipeline_lines(r, report["dry_run"]))  # fmt: skip
    for name, step in steps.items():
        if step["status"] != "ok":
            lines += [
                "",
                f"## {name}: {step['status']}",
                "",
                "```",
                step.get("log_tail", ""),
                "```",
            ]
    return "\n".join(lines) + "\n"


def _work_folder(dry_run: bool) -> Path:
    """A scratch folder on the file system with the most free space (full tiles are large)."""
    candidates = [Path(tempfile.gettempdir())]
    if not dry_run:  # the checkout's disk, where /tmp is small (a RAM disk)
        candidates.append(ROOT / ".device-wheels")
    for folder in candidates:
        folder.mkdir(parents=True, exist_ok=True)
    best = max(candidates, key=lambda folder: shutil.disk_usage(folder).free)
    return Path(tempfile.mkdtemp(prefix="gpu_check_", dir=best))


def _tiles_that_fit(args: argparse.Namespace) -> tuple[int, str | None]:
    """``args.tiles``, or fewer if the work folder cannot hold them (at least one)."""
    if args.dry_run:
        return args.tiles, None
    free_gb = shutil.disk_usage(args.work).free / 1e9
    fit = max(1, int(free_gb // FULL_TILE_GB))
    if fit >= args.tiles:
        return args.tiles, None
    return fit, f"{args.tiles} tiles asked, {fit} fit in {free_gb:.0f} GB free in {args.work}"


def _write_report(report: dict[str, Any], folders: list[Path], work: Path) -> None:
    """The report as JSON (first: it holds everything) and Markdown in every folder; the steps'
    full logs beside the copy (``--copy-to``)."""
    stem = f"gpu_check_{report['device']}"
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    markdown = to_markdown(report)
    for folder in folders:
        (folder / f"{stem}.md").write_text(markdown)
    for folder in folders[1:]:
        logs = folder / "gpu_check_logs"
        logs.mkdir(exist_ok=True)
        for path in [*work.glob("*.log"), *work.glob("*.json")]:
            shutil.copyfile(path, logs / path.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, small sizes (CI)")
    parser.add_argument("--budget-s", type=float, default=480.0, help="hard wall-time budget")
    parser.add_argument("--tiles", type=int, default=3, help="tiles for the end-to-end run")
    parser.add_argument("--wheels", default=str(ROOT / ".device-wheels"), help="carried wheels")
    parser.add_argument("--site", default="/tmp/csst_photoz_site", help="where wheels go")
    parser.add_argument("--work", type=Path, default=None, help="scratch (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--copy-to", type=Path, default=None, help="also copy results here")
    parser.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="configuration override for the photometry and pipeline steps (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--steps", nargs="+", choices=[s.name for s in STEPS], default=[s.name for s in STEPS],
        help="run only these steps (later ones need the tiles of the tiles step)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    start = time.monotonic()
    scale = args.budget_s / 480.0
    keep_work = args.work is not None
    args.work = Path(args.work) if keep_work else _work_folder(args.dry_run)
    args.work.mkdir(parents=True, exist_ok=True)
    args.tiles, tiles_note = _tiles_that_fit(args)
    if args.dry_run and args.wheels == str(ROOT / ".device-wheels"):
        args.wheels = None  # CI installs nothing: the environment is already complete
    env = dict(os.environ)
    paths = [args.site, str(ROOT)] if args.wheels else [str(ROOT)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONUNBUFFERED"] = "1"
    steps: dict[str, dict] = {}
    report = {
        "benchmark": "gpu_check",
        "command": "python3 benchmarks/gpu_check.py " + " ".join(sys.argv[1:] if argv is None
                                                                  else argv),
        "dry_run": args.dry_run,
        "budget_s": args.budget_s,
        "wall_s": 0.0,
        "device": "dryrun_cpu" if args.dry_run else "unknown_gpu",
        "work": str(args.work),
        "tiles": args.tiles,
        "settings": list(args.set),
        "steps": steps,
    }  # fmt: skip
    if tiles_note:
        report["note"] = tiles_note
    folders = [args.out] + ([args.copy_to] if args.copy_to else [])
    for index, step in enumerate(STEPS):
        if step.name not in args.steps:
            continue
        timeout_s = budget_for(index, args.budget_s - (time.monotonic() - start), scale)
        log = args.work / f"{step.name}.log"
        print(f"[gpu_check] {step.name}: up to {timeout_s:.0f} s", flush=True)
        if step.name == "setup":
            steps[step.name] = _setup(args, timeout_s, env, log)
        elif step.name == "tests":
            steps[step.name] = _tests(args, timeout_s, env, log)
        else:
            steps[step.name] = _phase(args, step.name, timeout_s, env, log)
        print(f"[gpu_check] {step.name}: {steps[step.name]['status']}", flush=True)
        report["wall_s"] = time.monotonic() - start
        device = _device_slug(steps, args.dry_run)
        if device != report["device"]:  # named after the device once the environment says it
            for folder in folders:
                for suffix in (".json", ".md"):
                    (folder / f"gpu_check_{report['device']}{suffix}").unlink(missing_ok=True)
            report["device"] = device
        _write_report(report, folders, args.work)  # a run killed from outside keeps this much
    print(to_markdown(report))
    if not keep_work:
        shutil.rmtree(args.work, ignore_errors=True)
    return 0 if all(s["status"] == "ok" for s in steps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
