"""The end-to-end demo: simulate a small field, run the batch processor, finalise, evaluate.

``csst-photoz demo --out DIR`` (and `run_demo`) does what a survey run does, on a field small
enough for a laptop: it simulates ``n_tiles`` CSST tiles (2048 x 2048 by default) with their
truth tables, runs :func:`~.batch.run` over them on one Dask cluster with the shipped checkpoints,
turns the per-tile partitions into a HATS catalogue, matches the catalogue to the truth and
writes the evaluation report (metrics and plots). Every step resumes: a second call reuses the
tiles, partitions and catalogue already written.

Layout of ``DIR``::

    tiles/        simulated tile stores and truth tables
    run/          the batch run (per-tile partitions, manifest, failures)
    catalog/      the HATS catalogue (``lsdb.read_hats(DIR / "catalog")``)
    report/       report.md / report.html / metrics.json and the PNG figures
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..evaluation.field import FieldEvaluation, evaluate_field
from ..instrument import Instrument
from ..io.paths import DemoLayout, tile_store_path
from ..io.run_store import RunStore
from ..sim.tiles import tile_grid
from .batch import RunSummary, run
from .cluster import connect
from .config import PipelineConfig
from .simulate import simulate_tiles

__all__ = ["DemoResult", "run_demo"]


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced, with the wall time of each step [s]."""

    out: Path
    run: RunSummary
    catalog: Path | None
    evaluation: FieldEvaluation
    seconds: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        ev = self.evaluation
        lines = [
            str(self.run),
            f"catalogue: {self.catalog or 'not finalised'}",
            f"truth matching: {ev.n_matched_selected}/{ev.n_truth_selected} selected galaxies "
            f"detected ({ev.completeness:.1%}); {ev.n_unmatched_detections} of "
            f"{ev.n_detections} detections match no galaxy",
        ]
        for name, metrics in ev.metrics.items():
            lines.append(
                f"  z_{name}: sigma_NMAD {metrics['sigma_nmad']:.4f}, outliers "
                f"{metrics['outlier_fraction']:.2%}, bias {metrics['bias']:+.4f} "
                f"(n = {metrics['n']})"
            )
            lines += _pz_lines(metrics)
        lines.append(f"report: {ev.report}")
        lines.append("steps: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.seconds.items()))
        return "\n".join(lines)


def _pz_lines(metrics: dict[str, object]) -> list[str]:
    """The p(z) and n(z) figures of one model's metrics (none for a model without p(z))."""
    pz, nz = metrics.get("pz"), metrics.get("nz")
    if not isinstance(pz, dict) or not isinstance(nz, dict):
        return []
    biases = ", ".join(f"{b:.4f}" for b in nz["mean_bias"])
    return [
        f"    p(z): PIT KS {pz['pit_ks']:.3f}, coverage 68/95 {pz['coverage_68']:.3f} / "
        f"{pz['coverage_95']:.3f}, CRPS {pz['crps']:.4f}",
        f"    n(z) bias |<z>_est - <z>_true| / (1 + <z>_true) per bin: {biases}",
    ]


def run_demo(
    out: str | os.PathLike[str],
    *,
    n_tiles: int = 3,
    size: int = 2048,
    seed: int = 2022,
    models: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    n_workers: int | None = None,
    finalize: bool = True,
    config: PipelineConfig | None = None,
    progress: bool = True,
) -> DemoResult:
    """Simulate a field, process it, finalise the catalogue and evaluate it against the truth.

    Parameters
    ----------
    out
        Output folder (see the module docstring).
    n_tiles, size, seed
        The field: tiles of ``size`` x ``size`` pixels from a master seed.
    models
        Checkpoints (default: those shipped with the package).
    n_workers
        Local Dask workers (default: one per core, or per GPU).
    finalize
        Also build the HATS catalogue (needs ``hats-import``).
    config
        Pipeline settings.
    progress
        Progress bars.

    Returns
    -------
    DemoResult
    """
    out = Path(out)
    layout = DemoLayout(out)
    tiles_dir, run_dir = layout.tiles, layout.run
    instrument = Instrument.default()
    specs = tile_grid(
        n_tiles, nx=size, ny=size, seed=seed,
        pixel_scale_arcsec=instrument.config.pixel_scale_arcsec,
    )  # fmt: skip
    seconds: dict[str, float] = {}
    catalog = None
    with connect(n_workers=n_workers) as client:
        start = time.perf_counter()
        simulate_tiles(specs, tiles_dir, client=client, instrument=instrument, progress=progress)
        seconds["simulate"] = time.perf_counter() - start
        start = time.perf_counter()
        summary = run(
            [tile_store_path(tiles_dir, spec.tile_id) for spec in specs], run_dir,
            models=models, client=client, config=config, progress=progress,
        )  # fmt: skip
        seconds["run"] = time.perf_counter() - start
        if finalize:
            from .finalize import finalize_catalog

            start = time.perf_counter()
            catalog = layout.catalog
            if not catalog.exists():
                catalog = finalize_catalog(RunStore(run_dir).partitions(), out, client=client)
            seconds["finalize"] = time.perf_counter() - start
    start = time.perf_counter()
    evaluation = evaluate_field(RunStore(run_dir).partitions(), tiles_dir, layout.report)
    seconds["evaluate"] = time.perf_counter() - start
    return DemoResult(out, summary, catalog, evaluation, seconds)
