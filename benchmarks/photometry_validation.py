"""Photometry against the truth on a simulated tile: completeness, purity and flux residuals.

Usage: python benchmarks/photometry_validation.py [--size 2048] [--seed 2022] [--radius 2]
       [--isolation 3] [--out benchmarks/results]

The tile is rendered once without noise; the noisy tile is that signal plus the simulator's own
noise model (:func:`csst_photoz.sim.detector.add_noise` with the noise stream ``simulate_tile``
uses, then its saturation), so it equals ``simulate_tile(spec)`` while its noiseless twin is at
hand. Then:

* ``measure_tile`` on the noisy tile (default :class:`PhotometryConfig`), and for comparison the
  sep reference recipe (``sep.Background`` per band, ``measure_kron_photometry``);
* matching to the truth (``x``, ``y``) by nearest neighbour within ``--radius`` pixels (scipy
  cKDTree): **completeness** = fraction of truth galaxies with a detection within the radius,
  versus true i magnitude; **purity** = fraction of detections with a truth galaxy within the
  radius, versus measured (1 x Kron) i magnitude;
* **flux residuals** ``(measured - true) / error`` of the Kron-aperture counts in r and i,
  versus true magnitude, for matched, *isolated* galaxies (no other truth galaxy within
  ``--isolation`` Kron radii, i.e. ``isolation x`` the aperture's semi-major axis, and no EDGE,
  MASKED, SATURATED or BAND_MISSING flag). The truth catalogue has total fluxes only, so the
  *true* aperture flux is the same aperture (:func:`~csst_photoz.photometry.apertures.sum_ellipses`,
  same centre, axes and angle) on the noiseless image: the residual is then noise, background
  error and nothing else, and should have median ~0 and robust scatter (1.4826 MAD) ~1.

Writes ``photometry_validation.png`` (2 x 2 panels), ``photometry_validation.json`` and prints a
text table. About 40 s for the default 2048 x 2048 tile on one core (rendering: 30 s).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import sep
from scipy.spatial import cKDTree

import csst_photoz
from csst_photoz.instrument import Instrument
from csst_photoz.photometry import measure_kron_photometry
from csst_photoz.photometry.apertures import ellipse_half_extent, sum_ellipses
from csst_photoz.photometry.flags import SourceFlag
from csst_photoz.photometry.measure import PhotometryConfig
from csst_photoz.photometry.overlap import ellipse_overlap
from csst_photoz.photometry.tile_photometry import measure_tile
from csst_photoz.photometry.windows import gather_windows, window_offsets, window_size_for
from csst_photoz.sim.detector import add_noise, apply_saturation, noise_figures
from csst_photoz.sim.tiles import DetectorEffects, TileSpec, simulate_tile
from csst_photoz.tile import Tile

RESULTS = Path(__file__).parent / "results"
#: ``simulate_tile``'s noise stream: ``spec.seed_for(NOISE_PURPOSE, band)`` (sim/tiles.py).
NOISE_PURPOSE = 2
#: Flags that disqualify a source from the residual sample (data problems, not blending).
BAD_FLAGS = int(
    SourceFlag.EDGE | SourceFlag.MASKED | SourceFlag.SATURATED | SourceFlag.BAND_MISSING
)
NMAD = 1.4826
_AB_ZERO_NJY = 3631.0e9


def noisy_and_clean_tile(spec: TileSpec, instrument: Instrument) -> tuple[Tile, Tile, Any]:
    """The noisy tile of ``simulate_tile(spec)``, its noiseless twin and the truth table."""
    effects = DetectorEffects()
    clean, truth = simulate_tile(
        spec, instrument=instrument, effects=effects.model_copy(update={"noise": False})
    )
    image = np.empty_like(clean.image)
    variance = np.empty_like(clean.variance)
    mask = np.zeros_like(clean.mask)
    for b, figures in enumerate(noise_figures(instrument)):
        rng = np.random.default_rng(spec.seed_for(NOISE_PURPOSE, b))
        image[b], variance[b] = add_noise(clean.image[b], rng, **figures)
        full_well = effects.full_well_e * figures["n_exposures"] - figures["sky_dark_e"]
        apply_saturation(image[b], mask[b], full_well_e=full_well)
    meta = {**clean.meta, "effects": effects.model_dump()}
    noisy = replace(clean, image=image, variance=variance, mask=mask, meta=meta)
    return noisy, clean, truth


def exact_noise_ratio(variance, x, y, semi_a, semi_b, theta) -> np.ndarray:
    """(n_bands, n) ``sqrt(sum w^2 var / sum w var)`` of each aperture (overlap weights ``w``).

    The catalogue's error, ``sqrt(sum w var)``, is the fractional-area convention of sep and
    photutils; the standard deviation of the weighted sum of independent pixels is
    ``sqrt(sum w^2 var)``, smaller where the aperture cuts through pixels (small apertures).
    """
    ratio = np.ones((variance.shape[0], x.size))
    for j in range(x.size):
        size = window_size_for(float(ellipse_half_extent(semi_a[j], semi_b[j], theta[j])))
        x0, y0, dx, dy = window_offsets(x[j : j + 1], y[j : j + 1], size)
        pixels, inside = gather_windows(variance, x0, y0, size)
        weight = ellipse_overlap(dx, dy, semi_a[j], semi_b[j], theta[j]) * inside
        first = np.einsum("nij,bnij->b", weight, pixels)
        second = np.einsum("nij,bnij->b", weight**2, pixels)
        ratio[:, j] = np.sqrt(second / first)
    return ratio


def sep_reference(tile: Tile, config: PhotometryConfig) -> dict[str, np.ndarray]:
    """The sep recipe on the tile: positions and i-band magnitude of its detections."""
    subtracted = tile.image.copy()
    for k in range(subtracted.shape[0]):
        sep.Background(
            tile.image[k], bw=config.background_box, bh=config.background_box,
            fw=config.background_filter, fh=config.background_filter,
        ).subfrom(subtracted[k])  # fmt: skip
    table = measure_kron_photometry(
        subtracted, tile.variance, bands=tile.bands, detection_bands=config.detection_bands,
        kron_factor=config.kron_factor, threshold_sigma=config.threshold_sigma,
        min_area=config.min_area, deblend_cont=config.deblend_cont,
        min_radius_pix=config.min_radius_pix,
    )  # fmt: skip
    i = tile.band_index("i")
    return {
        "x": np.asarray(table["x"], dtype=np.float64),
        "y": np.asarray(table["y"], dtype=np.float64),
        "mag_i": magnitude(np.asarray(table["flux_i"]) / tile.electrons_per_njy()[i]),
    }


def magnitude(flux_njy: np.ndarray) -> np.ndarray:
    """AB magnitude of a flux density [nJy]; NaN where it is not positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(flux_njy > 0, -2.5 * np.log10(flux_njy / _AB_ZERO_NJY), np.nan)


def match(from_xy: np.ndarray, to_xy: np.ndarray, radius: float) -> np.ndarray:
    """Index of the nearest ``to`` point within ``radius`` for every ``from`` point, or -1."""
    if len(from_xy) == 0 or len(to_xy) == 0:
        return np.full(len(from_xy), -1)
    distance, index = cKDTree(to_xy).query(from_xy, k=1, distance_upper_bound=radius)
    return np.where(np.isfinite(distance), index, -1)


def fraction_by_bin(values: np.ndarray, hit: np.ndarray, edges: np.ndarray) -> list[dict]:
    """Per bin of ``values``: count and fraction of ``hit`` (NaN values are left out)."""
    rows = []
    which = np.digitize(values, edges) - 1
    for k in range(len(edges) - 1):
        inside = which == k
        n = int(inside.sum())
        rows.append(
            {
                "lo": float(edges[k]),
                "hi": float(edges[k + 1]),
                "n": n,
                "fraction": float(hit[inside].mean()) if n else None,
            }
        )
    return rows


def robust_by_bin(values: np.ndarray, pulls: np.ndarray, edges: np.ndarray, minimum: int = 5):
    """Per bin of ``values``: count, median and 1.4826 x MAD of ``pulls`` (bins of >= minimum)."""
    rows = []
    which = np.digitize(values, edges) - 1
    for k in range(len(edges) - 1):
        sample = pulls[(which == k) & np.isfinite(pulls)]
        if sample.size < minimum:
            continue
        median = float(np.median(sample))
        rows.append(
            {
                "lo": float(edges[k]),
                "hi": float(edges[k + 1]),
                "n": int(sample.size),
                "median": median,
                "nmad": float(NMAD * np.median(np.abs(sample - median))),
            }
        )
    return rows


def _summary(pulls: np.ndarray) -> dict[str, Any]:
    pulls = pulls[np.isfinite(pulls)]
    if pulls.size == 0:
        return {"n": 0, "median": None, "nmad": None}
    median = float(np.median(pulls))
    return {
        "n": int(pulls.size),
        "median": median,
        "nmad": float(NMAD * np.median(np.abs(pulls - median))),
    }


def plot(result: dict, path: Path) -> None:
    """The 2 x 2 figure: completeness, purity, and the r and i residuals."""
    figure, axes = plt.subplots(2, 2, figsize=(11, 8.5), constrained_layout=True)
    for name, style in (("ours", "-o"), ("sep", "--s")):
        for ax, key in ((axes[0, 0], "completeness"), (axes[0, 1], "purity")):
            rows = [r for r in result[key][name] if r["n"] > 0]
            centre = [(r["lo"] + r["hi"]) / 2 for r in rows]
            ax.plot(centre, [r["fraction"] for r in rows], style, ms=3, label=name)
    axes[0, 0].set(xlabel="true i [AB mag]", ylabel="completeness", ylim=(0, 1.05))
    axes[0, 1].set(xlabel="measured i (1 x Kron) [AB mag]", ylabel="purity", ylim=(0, 1.05))
    for ax in axes[0]:
        ax.grid(alpha=0.3)
        ax.legend(title=f"match within {result['match_radius_pix']} px")
    for ax, band in zip(axes[1], ("r", "i"), strict=True):
        points = result["_points"][band]
        ax.scatter(points["mag"], points["pull"], s=2, alpha=0.25, color="0.5", rasterized=True)
        rows = result["residuals"][band]["bins"]
        centre = np.array([(r["lo"] + r["hi"]) / 2 for r in rows])
        median = np.array([r["median"] for r in rows])
        spread = np.array([r["nmad"] for r in rows])
        ax.fill_between(centre, median - spread, median + spread, alpha=0.3, label="1.4826 MAD")
        ax.plot(centre, median, "-o", ms=3, label="median")
        for level, line in ((0, "-"), (-1, ":"), (1, ":")):
            ax.axhline(level, color="k", lw=0.8, ls=line)
        overall = result["residuals"][band]["all"]
        ax.set(
            xlabel=f"true {band} [AB mag]",
            ylabel="(measured - true) / error",
            ylim=(-5, 5),
            title=f"{band}, 1 x Kron, isolated: n = {overall['n']}, median "
            f"{overall['median']:.2f}, scatter {overall['nmad']:.2f}",
        )
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
    tile = result["tile"]
    figure.suptitle(
        f"Photometry vs truth: {tile['size']}^2 px tile, seed {tile['seed']}, "
        f"{tile['truth_galaxies']} galaxies; ours {result['detections']['ours']} detections, "
        f"sep {result['detections']['sep']}"
    )
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _text(result: dict) -> str:
    lines = [
        "completeness vs true i / purity vs measured i",
        f"{'bin':>11} {'n_true':>6} {'ours':>6} {'sep':>6}   {'n_det':>6} {'ours':>6} {'sep':>6}",
    ]

    def fmt(value: float | None) -> str:
        return "   -  " if value is None else f"{value:6.3f}"

    for k, row in enumerate(result["completeness"]["ours"]):
        sep_c = result["completeness"]["sep"][k]
        pur, sep_p = result["purity"]["ours"][k], result["purity"]["sep"][k]
        lines.append(
            f"{row['lo']:5.1f}-{row['hi']:<5.1f} {row['n']:6d} {fmt(row['fraction'])} "
            f"{fmt(sep_c['fraction'])}   {pur['n']:6d} {fmt(pur['fraction'])} "
            f"{fmt(sep_p['fraction'])}"
        )
    for band, residual in result["residuals"].items():
        lines += ["", f"(measured - true) / error, {band}, isolated galaxies, 1 x Kron aperture"]
        lines.append(f"{'bin':>11} {'n':>5} {'median':>7} {'nmad':>6}")
        for row in residual["bins"]:
            lines.append(
                f"{row['lo']:5.1f}-{row['hi']:<5.1f} {row['n']:5d} {row['median']:7.3f} "
                f"{row['nmad']:6.3f}"
            )
        overall = residual["all"]
        if overall["n"]:
            lines.append(
                f"{'all':>11} {overall['n']:5d} {overall['median']:7.3f} {overall['nmad']:6.3f}"
            )
    lines += [
        "",
        "all bands, isolated galaxies: median / 1.4826 MAD of (measured - true) / error: all,",
        "true mag < 24, all with error sqrt(sum w^2 var) instead of the catalogue's sum w var",
    ]
    for band, summary in result["residuals_all_bands"].items():
        both = [summary["all"], summary["mag_lt_24"], summary["with_error_sqrt_sum_w2_var"]]
        text = ["   -  /   -  " if s["n"] == 0 else f"{s['median']:6.3f}/{s['nmad']:5.3f}"
                for s in both]  # fmt: skip
        detection = "detection band" if summary["in_detection_image"] else ""
        lines.append(f"{band:>4}  {text[0]} (n={both[0]['n']})  {text[1]} "
                     f"(n={both[1]['n']})  {text[2]}  {detection}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="tile side [pixels]")
    parser.add_argument("--seed", type=int, default=2022, help="simulation seed")
    parser.add_argument("--radius", type=float, default=2.0, help="match radius [pixels]")
    parser.add_argument(
        "--isolation", type=float, default=3.0,
        help="no other truth galaxy within this many Kron radii (aperture semi-major axes)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help="output folder")
    args = parser.parse_args(argv)
    if args.size < 64 or not args.radius > 0 or not args.isolation >= 0:
        parser.error("need --size >= 64, --radius > 0 and --isolation >= 0")

    clock = time.perf_counter()
    instrument = Instrument.default()
    spec = TileSpec(tile_id=0, nx=args.size, ny=args.size, seed=args.seed)
    noisy, clean, truth = noisy_and_clean_tile(spec, instrument)
    simulate_s = time.perf_counter() - clock
    config = PhotometryConfig()
    clock = time.perf_counter()
    measured = measure_tile(noisy, config=config)
    measure_s = time.perf_counter() - clock
    table = measured.table
    reference = sep_reference(noisy, config)
    print(f"simulated in {simulate_s:.1f} s, measured in {measure_s:.1f} s")

    truth_xy = np.column_stack([truth["x"].to_numpy(), truth["y"].to_numpy()])
    ours_xy = np.column_stack([table["x"].to_numpy(), table["y"].to_numpy()])
    sep_xy = np.column_stack([reference["x"], reference["y"]])
    true_i = truth["mag_i"].to_numpy()
    edges = np.arange(18.0, 29.01, 0.5)  # completeness and purity
    wide = np.arange(18.0, 29.01, 1.0)  # residuals (fewer objects)
    result: dict[str, Any] = {
        "benchmark": "photometry_validation",
        "command": "python benchmarks/photometry_validation.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "csst_photoz": csst_photoz.__version__,
        "sep": sep.__version__,
        "numpy": np.__version__,
        "tile": {"size": args.size, "seed": args.seed, "truth_galaxies": truth.num_rows},
        "config": json.loads(config.model_dump_json()),
        "match_radius_pix": args.radius,
        "isolation_kron_radii": args.isolation,
        "timing_s": {"simulate (noiseless + noise)": simulate_s, "measure_tile": measure_s},
        "detections": {"ours": table.num_rows, "sep": len(sep_xy)},
        "completeness": {},
        "purity": {},
        "totals": {},
    }
    for name, xy, mag_i in (
        ("ours", ours_xy, table["mag_i"].to_numpy(zero_copy_only=False)),
        ("sep", sep_xy, reference["mag_i"]),
    ):
        found = match(truth_xy, xy, args.radius) >= 0
        real = match(xy, truth_xy, args.radius) >= 0
        result["completeness"][name] = fraction_by_bin(true_i, found, edges)
        result["purity"][name] = fraction_by_bin(mag_i, real, edges)
        result["totals"][name] = {
            "detections": len(xy),
            "matched_detections": int(real.sum()),
            "purity": float(real.mean()) if len(xy) else None,
            "purity_mag_i_lt_26": float(real[mag_i < 26].mean()) if (mag_i < 26).any() else None,
            "matched_truth": int(found.sum()),
            "completeness_i_lt_25": float(found[true_i < 25].mean()),
            "completeness_i_lt_26": float(found[true_i < 26].mean()),
        }

    # residuals of isolated, matched galaxies against the same aperture on the noiseless image
    index = match(ours_xy, truth_xy, args.radius)
    aperture_a = table["aperture_a"].to_numpy()
    if len(truth_xy) > 1 and len(ours_xy):
        neighbours, _ = cKDTree(truth_xy).query(truth_xy, k=2)
        nearest_other = neighbours[:, 1]
    else:
        nearest_other = np.full(len(truth_xy), np.inf)
    flags = table["flags"].to_numpy()
    matched = index >= 0
    isolated = matched & ((flags & BAD_FLAGS) == 0)
    isolated[matched] &= nearest_other[index[matched]] > args.isolation * aperture_a[matched]
    rows = np.flatnonzero(isolated)
    true_counts = np.zeros((len(noisy.bands), rows.size))
    shapes = (aperture_a[rows], table["aperture_b"].to_numpy()[rows])
    shapes += (table["theta"].to_numpy()[rows],)
    if rows.size:
        true_counts = sum_ellipses(
            clean.image, clean.variance, ours_xy[rows, 0], ours_xy[rows, 1], *shapes
        ).flux[0]
    noise_ratio = exact_noise_ratio(noisy.variance, ours_xy[rows, 0], ours_xy[rows, 1], *shapes)
    result["residuals"] = {}
    result["_points"] = {}
    result["residuals_all_bands"] = {}
    for k, band in enumerate(noisy.bands):
        counts = table[f"counts_{band}"].to_numpy()[rows]
        error = table[f"counts_err_{band}"].to_numpy()[rows]
        pull = (counts - true_counts[k]) / error
        mag = truth[f"mag_{band}"].to_numpy()[index[rows]]
        total = truth[f"flux_{band}"].to_numpy()[index[rows]]
        summary = {
            "all": _summary(pull),
            "mag_lt_24": _summary(pull[mag < 24]),
            "median_aperture_fraction_of_total_flux": (
                float(np.median(true_counts[k] / total)) if rows.size else None
            ),
            "in_detection_image": band in config.detection_bands,
            "with_error_sqrt_sum_w2_var": _summary(pull / noise_ratio[k]),
        }
        result["residuals_all_bands"][band] = summary
        if band in ("r", "i"):
            result["residuals"][band] = {"bins": robust_by_bin(mag, pull, wide), **summary}
            result["_points"][band] = {"mag": mag, "pull": pull}
    result["isolated_galaxies"] = int(rows.size)
    result["median_error_ratio_sqrt_w2_over_w"] = (
        float(np.median(noise_ratio[noisy.band_index("i")])) if rows.size else None
    )
    args.out.mkdir(parents=True, exist_ok=True)
    plot(result, args.out / "photometry_validation.png")
    del result["_points"]
    (args.out / "photometry_validation.json").write_text(json.dumps(result, indent=2) + "\n")
    print(_text(result))
    print(
        json.dumps({"totals": result["totals"], "isolated": result["isolated_galaxies"]}, indent=1)
    )


if __name__ == "__main__":
    main()
