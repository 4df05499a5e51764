"""Summary figures and plots of a simulated truth catalogue."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pyarrow as pa
from astropy.stats import sigma_clipped_stats
from astropy.visualization import make_lupton_rgb
from scipy.stats import gaussian_kde

from ..instrument import Instrument
from ..tile import Tile
from .synthetic_photometry import SyntheticPhotometer
from .templates import TEMPLATE_NAMES

__all__ = [
    "PAPER_SELECTED_NZ",
    "catalog_summary",
    "format_summary",
    "plot_catalog",
    "plot_tile_composite",
]

#: The paper's selected sample (SNR > 10 in g or i): n(z) peak range, median and mean.
PAPER_SELECTED_NZ = {"peak": (0.6, 0.7), "median": 0.8, "mean": 0.9, "z_max": 4.0}
_PERCENTILES = (5, 25, 50, 75, 95)


def _redshift_peak(z: np.ndarray, *, bandwidth: float = 0.1) -> float:
    """Mode of n(z): maximum of a Gaussian kernel density estimate of width ``bandwidth``."""
    if z.size < 2 or np.ptp(z) == 0:
        return float(z[0])
    kde = gaussian_kde(z, bw_method=bandwidth / np.std(z))
    grid = np.linspace(0.0, float(z.max()), 801)
    return float(grid[np.argmax(kde(grid))])


def catalog_summary(table: pa.Table, *, band: str = "i") -> dict[str, dict[str, object]]:
    """Counts, n(z) statistics and magnitude percentiles of all and of selected galaxies.

    Parameters
    ----------
    table
        A truth catalogue (:func:`csst_photoz.sim.simulate_catalog`).
    band
        Band of the magnitude percentiles.

    Returns
    -------
    dict
        ``{"all": {...}, "selected": {...}}`` with keys ``n``, ``z_peak``, ``z_median``,
        ``z_mean``, ``z_max``, ``z_percentiles`` and ``mag_percentiles``.

    """
    z_all = table["redshift"].to_numpy()
    mag_all = table[f"mag_{band}"].to_numpy()
    selected = table["selected"].to_numpy(zero_copy_only=False)
    summary: dict[str, dict[str, object]] = {}
    for name, mask in (("all", np.ones_like(selected)), ("selected", selected)):
        z, mag = z_all[mask], mag_all[mask]
        if z.size == 0:
            summary[name] = {"n": 0}
            continue
        summary[name] = {
            "n": int(z.size),
            "z_peak": _redshift_peak(z),
            "z_median": float(np.median(z)),
            "z_mean": float(np.mean(z)),
            "z_max": float(np.max(z)),
            "z_percentiles": dict(zip(_PERCENTILES, np.percentile(z, _PERCENTILES), strict=True)),
            "mag_percentiles": dict(
                zip(_PERCENTILES, np.nanpercentile(mag, _PERCENTILES), strict=True)
            ),
        }
    return summary


def format_summary(summary: dict[str, dict[str, object]], *, band: str = "i") -> str:
    """Human-readable text of :func:`catalog_summary`, beside the paper's figures."""
    lines = []
    for name, stats in summary.items():
        lines.append(f"{name}: {stats['n']} galaxies")
        if stats["n"] == 0:
            continue
        z_pct = " ".join(f"p{p}={v:.2f}" for p, v in stats["z_percentiles"].items())
        mag_pct = " ".join(f"p{p}={v:.2f}" for p, v in stats["mag_percentiles"].items())
        lines.append(
            f"  z: peak {stats['z_peak']:.2f}  median {stats['z_median']:.3f}  "
            f"mean {stats['z_mean']:.3f}  max {stats['z_max']:.2f}"
        )
        lines.append(f"  z percentiles: {z_pct}")
        lines.append(f"  mag_{band} percentiles: {mag_pct}")
    paper = PAPER_SELECTED_NZ
    lines.append(
        f"paper (selected): peak {paper['peak'][0]}-{paper['peak'][1]}, median ~{paper['median']},"
        f" mean ~{paper['mean']}, reaching z = {paper['z_max']}"
    )
    return "\n".join(lines)


def _template_colour_tracks(instrument: Instrument, z: np.ndarray) -> dict[str, np.ndarray]:
    photometer = SyntheticPhotometer.for_instrument(instrument, z_max=float(z.max()))
    counts = photometer.template_counts(z, np.zeros_like(z))
    rates = instrument.per_band(instrument.zero_point_rate)
    with np.errstate(divide="ignore"):
        mags = -2.5 * np.log10(counts / rates[None, None, :])
    return {name: mags[:, k, :] for k, name in enumerate(TEMPLATE_NAMES)}


def plot_tile_composite(
    tile: Tile,
    path: str | Path,
    *,
    bands: tuple[str, str, str] = ("i", "r", "g"),
    stretch_sigma: float = 4.0,
    q: float = 8.0,
    dpi: int = 100,
) -> Path:
    """Save an RGB composite of a tile (Lupton et al. 2004 asinh stretch) as PNG.

    Each band is converted to nJy first, so colours are true flux-density ratios.

    Parameters
    ----------
    tile
        The tile.
    path
        PNG to write.
    bands
        Bands for red, green and blue.
    stretch_sigma
        Linear range of the stretch in units of the green band's background noise.
    q
        Asinh softening of :func:`astropy.visualization.make_lupton_rgb`.
    dpi
        Resolution of the 8-inch figure.
    """
    per_njy = tile.electrons_per_njy()
    red, green, blue = (
        tile.image[tile.band_index(band)] / per_njy[tile.band_index(band)] for band in bands
    )
    _, _, noise = sigma_clipped_stats(green, sigma=3.0, maxiters=5)
    rgb = make_lupton_rgb(red, green, blue, stretch=stretch_sigma * noise, Q=q)
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(rgb, origin="lower")
    ax.set(
        title=f"tile {tile.tile_id}: {'/'.join(bands)}, {tile.shape[1]}x{tile.shape[0]} px",
        xticks=[],
        yticks=[],
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_catalog(
    table: pa.Table, path: str | Path, *, instrument: Instrument | None = None
) -> Path:
    """Plot n(z) (all and selected) and colour-redshift tracks of the templates.

    Parameters
    ----------
    table
        A truth catalogue.
    path
        PNG to write.
    instrument
        The camera used for the template tracks (default: the paper's).

    Returns
    -------
    pathlib.Path
        The written PNG.

    """
    instrument = instrument if instrument is not None else Instrument.default()
    bands = instrument.band_names
    z = table["redshift"].to_numpy()
    selected = table["selected"].to_numpy(zero_copy_only=False)
    colours = [(bands[k], bands[k + 1]) for k in range(len(bands) - 1)]
    fig, axes = plt.subplots(2, 4, figsize=(16, 7.5))
    axes = axes.ravel()
    bins = np.arange(0.0, max(4.0, float(z.max())) + 0.05, 0.05)
    axes[0].hist(z, bins=bins, histtype="step", label=f"all ({z.size})", density=True)
    axes[0].hist(
        z[selected],
        bins=bins,
        histtype="step",
        label=f"SNR>10 g|i ({selected.sum()})",
        density=True,
    )
    axes[0].axvspan(*PAPER_SELECTED_NZ["peak"], color="0.85", label="paper peak")
    axes[0].set(xlabel="redshift", ylabel="n(z) (normalised)", title="redshift distribution")
    axes[0].legend(fontsize=8)

    z_track = np.linspace(0.0, 4.0, 401)
    tracks = _template_colour_tracks(instrument, z_track)
    shown = np.flatnonzero(selected)[:3000]
    for ax, (blue, red) in zip(axes[1:], colours, strict=False):
        colour = table[f"mag_{blue}"].to_numpy()[shown] - table[f"mag_{red}"].to_numpy()[shown]
        ax.scatter(z[shown], colour, s=1, color="0.6", alpha=0.5, rasterized=True)
        b, r = bands.index(blue), bands.index(red)
        for name, mags in tracks.items():
            ax.plot(z_track, mags[:, b] - mags[:, r], label=name)
        ax.set(xlabel="redshift", ylabel=f"{blue} - {red}", ylim=(-1.0, 4.0))
    axes[1].legend(fontsize=8, title="CWW templates")
    magnitudes = table["mag_i"].to_numpy()
    axes[-1].hist(magnitudes, bins=np.arange(16, 30, 0.25), histtype="step", label="all")
    axes[-1].hist(
        magnitudes[selected], bins=np.arange(16, 30, 0.25), histtype="step", label="selected"
    )
    axes[-1].set(xlabel="mag_i (AB)", ylabel="galaxies per 0.25 mag", yscale="log")
    axes[-1].legend(fontsize=8)
    for ax in axes[len(colours) + 1 : -1]:
        ax.set_visible(False)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
