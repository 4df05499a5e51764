"""Photometry on real skies (issue 18): band-dependent defects and CLEAN, before and after.

Usage: python benchmarks/photometry_real_skies.py [--size 1024] [--seed 2022] [--defects 40]
       [--before 6e1227f] [--out benchmarks/results]

One simulated tile with its truth (``simulate_tile``, as ``photometry_validation.py`` renders it,
noiseless twin included), and scenarios of defects that differ from band to band:

* ``clean``: none;
* ``z masked``: z fully masked (NO_DATA);
* ``r half masked``: r masked (NO_DATA) over the left half of the tile;
* ``cosmic rays in z``: ``--defects`` 20 x 20 patches of +5e4 e- (COSMIC_RAY) in z alone, each on a
  galaxy with true i < 24;
* ``NaN blocks in i``: 7 x 7 NaN blocks in i alone on such galaxies;
* ``zero variance in g``: 15 x 15 blocks of zero variance in g alone on such galaxies.

Each scenario is measured by the code at ``--before`` (the commit before issue 18, run from a
``git archive`` of it in a subprocess, at its defaults) and by today's code with the two options
against the noise peaks beside bright galaxies in every combination, whatever the defaults:
``clean`` (CLEAN) and ``snr_mask_neighbours`` (the S/N of the cut without other detections'
pixels), each off or on. Per run:
detections, completeness (truth within ``--radius`` px of a detection) at i < 25 and i < 26,
purity, galaxies lost against the same code's clean-tile run, galaxies split (two or more
detections matched to one galaxy), false detections next to bright galaxies (unmatched, within
``--near`` px of a galaxy with true i < 22), and per band the flux pull (measured - true) /
error of matched, isolated (no other galaxy within 3 Kron aperture radii) galaxies whose band is
unflagged, against the same aperture on the noiseless image, and the fraction of those isolated
galaxies flagged NEIGHBOURS.

Writes ``photometry_real_skies_<size>.json`` / ``.md`` / ``.png``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from photometry_validation import NMAD, match, noisy_and_clean_tile
from scipy.spatial import cKDTree

import csst_photoz
from csst_photoz.instrument import Instrument
from csst_photoz.photometry.apertures import sum_ellipses
from csst_photoz.photometry.flags import SourceFlag
from csst_photoz.photometry.measure import PhotometryConfig
from csst_photoz.photometry.tile_photometry import measure_tile
from csst_photoz.sim.tiles import TileSpec
from csst_photoz.tile import MaskBit, Tile

RESULTS = Path(__file__).parent / "results"
REPOSITORY = Path(__file__).resolve().parents[1]
#: Flags that disqualify a band's flux from the pull sample.
BAD = int(SourceFlag.EDGE | SourceFlag.SATURATED)
BAND_BAD = int(SourceFlag.MASKED | SourceFlag.BAND_MISSING)
#: Runs of today's code, by (clean, snr_mask_neighbours): the suffix of their name.
OPTION_NAMES = {
    (False, False): " (neither)",
    (True, False): " + CLEAN",
    (False, True): " + S/N without neighbours",
    (True, True): " + CLEAN + S/N without neighbours",
}

_WORKER = """
import json, sys
import numpy as np, pyarrow.parquet as pq
from csst_photoz.tile import Tile
from csst_photoz.photometry.tile_photometry import measure_tile
data = np.load(sys.argv[1])
meta = json.loads(str(data["meta"]))
tile = Tile(tile_id=0, bands=tuple(meta["bands"]), image=data["image"],
            variance=data["variance"], mask=data["mask"],
            zero_point_rate=meta["zero_point_rate"], exposure_time=meta["exposure_time"],
            pixel_scale_arcsec=meta["pixel_scale_arcsec"], wcs_header=meta["wcs_header"])
try:
    pq.write_table(measure_tile(tile).table, sys.argv[2])
except Exception as error:
    print(f"{type(error).__name__}: {error}")
"""


def scenarios(tile: Tile, truth: pa.Table, count: int, seed: int) -> dict[str, Tile]:
    """The tile with each scenario's defects (see the module docstring)."""
    rng = np.random.default_rng(seed)
    x, y = truth["x"].to_numpy(), truth["y"].to_numpy()
    ny, nx = tile.shape
    bright = np.flatnonzero(
        (truth["mag_i"].to_numpy() < 24) & (x > 12) & (x < nx - 12) & (y > 12) & (y < ny - 12)
    )
    chosen = rng.choice(bright, size=min(count, bright.size), replace=False)

    def boxes(half: int) -> list[tuple[slice, slice]]:
        return [
            (
                slice(round(y[j]) - half, round(y[j]) + half),
                slice(round(x[j]) - half, round(x[j]) + half),
            )
            for j in chosen
        ]

    def copy(**planes: np.ndarray) -> Tile:
        return Tile(**{**tile.__dict__, **planes})

    out = {"clean": tile}
    mask = tile.mask.copy()
    mask[tile.band_index("z")] |= np.uint16(MaskBit.NO_DATA)
    out["z masked"] = copy(mask=mask)
    mask = tile.mask.copy()
    mask[tile.band_index("r"), :, : nx // 2] |= np.uint16(MaskBit.NO_DATA)
    out["r half masked"] = copy(mask=mask)
    image, mask = tile.image.copy(), tile.mask.copy()
    for box in boxes(10):
        image[(tile.band_index("z"), *box)] += 5e4
        mask[(tile.band_index("z"), *box)] |= np.uint16(MaskBit.COSMIC_RAY)
    out["cosmic rays in z"] = copy(image=image, mask=mask)
    image = tile.image.copy()
    for ys, xs in boxes(3):
        image[tile.band_index("i"), ys.start : ys.start + 7, xs.start : xs.start + 7] = np.nan
    out["NaN blocks in i"] = copy(image=image)
    variance = tile.variance.copy()
    for ys, xs in boxes(7):
        variance[tile.band_index("g"), ys.start : ys.start + 15, xs.start : xs.start + 15] = 0.0
    out["zero variance in g"] = copy(variance=variance)
    return out


def measure_before(tile: Tile, commit: str, folder: Path) -> pa.Table | str:
    """The catalogue of the code at ``commit`` (run in a subprocess), or its error message."""
    source = folder / f"src_{commit}"
    if not source.exists():
        source.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPOSITORY), "archive", commit, "csst_photoz"],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive.stdout, check=True)
    planes = folder / "tile.npz"
    meta = {
        "bands": list(tile.bands), "zero_point_rate": list(tile.zero_point_rate),
        "exposure_time": list(tile.exposure_time), "pixel_scale_arcsec": tile.pixel_scale_arcsec,
        "wcs_header": dict(tile.wcs_header),
    }  # fmt: skip
    np.savez(planes, image=tile.image, variance=tile.variance, mask=tile.mask,
             meta=json.dumps(meta))  # fmt: skip
    out = folder / "before.parquet"
    out.unlink(missing_ok=True)
    run = subprocess.run(
        [sys.executable, "-c", _WORKER, str(planes), str(out)],
        env={"PYTHONPATH": str(source), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        cwd=folder, capture_output=True, text=True, check=True,  # not this checkout's code
    )  # fmt: skip
    return pq.read_table(out) if out.exists() else run.stdout.strip()


def evaluate(
    table: pa.Table, truth: pa.Table, clean: Tile, reference: np.ndarray | None, args: Any
) -> dict[str, Any]:
    """The figures of one run (see the module docstring); ``reference``: matched in clean."""
    truth_xy = np.column_stack([truth["x"].to_numpy(), truth["y"].to_numpy()])
    xy = np.column_stack([table["x"].to_numpy(), table["y"].to_numpy()])
    true_i = truth["mag_i"].to_numpy()
    found = match(truth_xy, xy, args.radius) >= 0
    index = match(xy, truth_xy, args.radius)
    real = index >= 0
    mag_i = table["mag_i"].to_numpy(zero_copy_only=False)
    per_galaxy = np.bincount(index[real], minlength=len(truth_xy))
    bright_xy = truth_xy[true_i < 22]
    near_bright = np.zeros(len(xy), dtype=bool)
    if len(bright_xy) and len(xy):
        distance, _ = cKDTree(bright_xy).query(xy, k=1)
        near_bright = distance < args.near
    result = {
        "detections": len(xy),
        "completeness_i_lt_25": float(found[true_i < 25].mean()),
        "completeness_i_lt_26": float(found[true_i < 26].mean()),
        "purity": float(real.mean()) if len(xy) else None,
        "purity_mag_i_lt_26": float(real[mag_i < 26].mean()) if (mag_i < 26).any() else None,
        "split_galaxies": int((per_galaxy > 1).sum()),
        "false_next_to_bright": int((~real & near_bright).sum()),
        "false": int((~real).sum()),
        "lost_vs_clean_tile": None if reference is None else int((reference & ~found).sum()),
        "pulls": {},
    }
    # pulls: matched, isolated galaxies, per band unflagged, against the noiseless aperture
    nearest_other = cKDTree(truth_xy).query(truth_xy, k=2)[0][:, 1]
    aperture_a = table["aperture_a"].to_numpy()
    flags = table["flags"].to_numpy()
    rows = np.flatnonzero(real & ((flags & BAD) == 0))
    rows = rows[nearest_other[index[rows]] > 3 * aperture_a[rows]]
    if rows.size == 0:
        return result
    result["isolated_with_neighbours_flag"] = float(
        np.mean((flags[rows] & int(SourceFlag.NEIGHBOURS)) != 0)
    )
    true_counts = sum_ellipses(
        clean.image, clean.variance, xy[rows, 0], xy[rows, 1], aperture_a[rows],
        table["aperture_b"].to_numpy()[rows], table["theta"].to_numpy()[rows],
    ).flux[0]  # fmt: skip
    for k, band in enumerate(clean.bands):
        band_flags = (
            table[f"flags_{band}"].to_numpy()[rows]
            if f"flags_{band}" in table.column_names
            else flags[rows]  # before issue 18: any band's bits
        )
        usable = (band_flags & BAND_BAD) == 0
        counts = table[f"counts_{band}"].to_numpy()[rows]
        pull = ((counts - true_counts[k]) / table[f"counts_err_{band}"].to_numpy()[rows])[usable]
        pull = pull[np.isfinite(pull)]
        median = float(np.median(pull)) if pull.size else None
        result["pulls"][band] = {
            "n": int(pull.size),
            "median": median,
            "nmad": float(NMAD * np.median(np.abs(pull - median))) if pull.size else None,
        }
    return result


def _is_default(config: PhotometryConfig) -> bool:
    """Whether ``config`` holds the defaults of the two options compared."""
    default = PhotometryConfig()
    return (config.clean, config.snr_mask_neighbours) == (
        default.clean,
        default.snr_mask_neighbours,
    )


def markdown(result: dict[str, Any]) -> str:
    """The Markdown table of the results."""
    lines = [
        "# Photometry on real skies (issue 18)",
        "",
        f"`{result['command']}`: {result['tile']['size']}^2 px tile, seed "
        f"{result['tile']['seed']}, {result['tile']['truth_galaxies']} galaxies; before = commit "
        f"`{result['before']}`. Today's code runs with `clean` and `snr_mask_neighbours` in "
        f"every combination; the defaults are the row `{result['default_run']}`.",
        "",
        "| scenario | code | rows | compl. i<25 | compl. i<26 | purity | purity i<26 | lost "
        "| split | false next to bright | isolated with NEIGHBOURS | pull i median/nmad |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def cell(value: Any, fmt: str = "{:.3f}") -> str:
        return "-" if value is None else fmt.format(value)

    for scenario, runs in result["scenarios"].items():
        for code, run in runs.items():
            if isinstance(run, str):
                lines.append(f"| {scenario} | {code} | error: {run} |" + " |" * 9)
                continue
            pull = run["pulls"].get("i", {})
            pull_text = f"{pull['median']:+.2f} / {pull['nmad']:.2f}" if pull.get("n") else "-"
            lines.append(
                f"| {scenario} | {code} | {run['detections']} "
                f"| {cell(run['completeness_i_lt_25'])} "
                f"| {cell(run['completeness_i_lt_26'])} | {cell(run['purity'])} "
                f"| {cell(run['purity_mag_i_lt_26'])} | {cell(run['lost_vs_clean_tile'], '{}')} "
                f"| {run['split_galaxies']} | {run['false_next_to_bright']} "
                f"| {cell(run.get('isolated_with_neighbours_flag'), '{:.1%}')} | {pull_text} |"
            )
    lines += ["", "Flux pulls (measured - true) / error per band, clean tile:", ""]
    bands = list(next(iter(result["scenarios"]["clean"].values()))["pulls"])
    lines.append("| code | " + " | ".join(bands) + " |")
    lines.append("| --- |" + " --- |" * len(bands))
    for code, run in result["scenarios"]["clean"].items():
        if isinstance(run, str):
            continue
        cells = [
            f"{run['pulls'][b]['median']:+.2f} / {run['pulls'][b]['nmad']:.2f}"
            if run["pulls"].get(b, {}).get("n") else "-"
            for b in bands
        ]  # fmt: skip
        lines.append(f"| {code} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    """Completeness at i < 26, galaxies lost and false detections next to bright galaxies."""
    names = list(result["scenarios"])
    codes = list(result["scenarios"]["clean"])
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5), constrained_layout=True)
    width = 0.8 / len(codes)
    for j, code in enumerate(codes):
        runs = [result["scenarios"][n][code] for n in names]
        offsets = np.arange(len(names)) + (j - (len(codes) - 1) / 2) * width
        for ax, key in zip(
            axes,
            ("completeness_i_lt_26", "lost_vs_clean_tile", "false_next_to_bright"),
            strict=True,
        ):
            values = [np.nan if isinstance(r, str) else (r[key] or 0) for r in runs]
            ax.bar(offsets, values, width, label=code)
    titles = ("completeness, true i < 26", "galaxies found on the clean tile, lost here",
              "false detections next to i < 22 galaxies")  # fmt: skip
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xticks(np.arange(len(names)), names, rotation=30, ha="right")
        ax.set_title(title)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylim(0, 1.05)
    axes[0].legend(loc="lower left")
    figure.suptitle(f"Photometry on real skies: {result['tile']['size']}^2 px, seed "
                    f"{result['tile']['seed']} (before = {result['before']})")  # fmt: skip
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="tile side [pixels]")
    parser.add_argument("--seed", type=int, default=2022, help="simulation seed")
    parser.add_argument("--defects", type=int, default=40, help="defects per scenario")
    parser.add_argument("--radius", type=float, default=2.0, help="match radius [pixels]")
    parser.add_argument("--near", type=float, default=40.0, help="'next to' a bright galaxy [px]")
    parser.add_argument("--before", default="6e1227f", help="commit before issue 18 ('' skips)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    args = parser.parse_args(argv)

    clock = time.perf_counter()
    spec = TileSpec(tile_id=0, nx=args.size, ny=args.size, seed=args.seed)
    noisy, clean, truth = noisy_and_clean_tile(spec, Instrument.default())
    print(f"simulated in {time.perf_counter() - clock:.1f} s: {truth.num_rows} galaxies")
    configs = {  # explicit: the two options in every combination, whatever the defaults
        f"after{OPTION_NAMES[(clean, masked)]}": PhotometryConfig(
            clean=clean, snr_mask_neighbours=masked
        )
        for clean, masked in OPTION_NAMES
    }
    result: dict[str, Any] = {
        "benchmark": "photometry_real_skies",
        "command": "python benchmarks/photometry_real_skies.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "csst_photoz": csst_photoz.__version__,
        "tile": {"size": args.size, "seed": args.seed, "truth_galaxies": truth.num_rows},
        "before": args.before or None,
        "default_run": next(code for code, config in configs.items() if _is_default(config)),
        "match_radius_pix": args.radius,
        "near_bright_pix": args.near,
        "scenarios": {},
    }
    reference: dict[str, np.ndarray] = {}
    truth_xy = np.column_stack([truth["x"].to_numpy(), truth["y"].to_numpy()])
    with tempfile.TemporaryDirectory() as temporary:
        for name, tile in scenarios(noisy, truth, args.defects, args.seed).items():
            tables: dict[str, pa.Table | str] = {}
            if args.before:
                tables["before"] = measure_before(tile, args.before, Path(temporary))
            for code, config in configs.items():
                tables[code] = measure_tile(tile, config=config).table
            runs = {}
            for code, table in tables.items():
                if isinstance(table, str):
                    runs[code] = table
                    continue
                if name == "clean":
                    xy = np.column_stack([table["x"].to_numpy(), table["y"].to_numpy()])
                    reference[code] = match(truth_xy, xy, args.radius) >= 0
                runs[code] = evaluate(table, truth, clean, reference.get(code), args)
            result["scenarios"][name] = runs
            print(
                name, {c: (r if isinstance(r, str) else r["detections"]) for c, r in runs.items()}
            )
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(result)
    stem = args.out / f"photometry_real_skies_{args.size}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(text)
    plot(result, stem.with_suffix(".png"))
    print(text)


if __name__ == "__main__":
    main()
