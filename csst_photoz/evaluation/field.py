"""Evaluate a batch run on simulated tiles: match the catalogue to the truth, then report.

For each tile partition of a run, the tile's truth table (written by the tile simulator beside
the tile store) is matched to the detections by pixel position
(:func:`~.match.match_positions`). The matched sample of the paper's selection (the truth's
``selected`` column: SNR > 10 in g or i) is evaluated with :func:`~.report.evaluate` for every
``z_<model>`` column of the catalogue, with its p(z) section (calibration, n(z) true vs
estimated per tomographic bin) for models with a compact p(z) column. Detection completeness
of that selection, and the count of detections matched to no galaxy, come with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ..io.paths import tile_truth_path
from ..pz.columns import compact_column
from .match import match_positions

__all__ = ["FieldEvaluation", "evaluate_field", "photoz_columns"]

#: Matching radius [pixels] (0.15" at CSST's 0.075"/pixel).
DEFAULT_MATCH_RADIUS = 2.0


@dataclass(frozen=True)
class FieldEvaluation:
    """The outcome of `evaluate_field`.

    Attributes
    ----------
    n_truth_selected
        Truth galaxies of the selection on the evaluated tiles.
    n_matched_selected
        Of those, matched to a detection (the evaluated sample).
    n_detections
        Catalogue rows on the evaluated tiles.
    n_unmatched_detections
        Catalogue rows matched to no truth galaxy (noise peaks, deblending fragments).
    metrics
        Per model, the overall metrics of :func:`~.report.evaluate`.
    report
        The report's Markdown file.
    """

    n_truth_selected: int
    n_matched_selected: int
    n_detections: int
    n_unmatched_detections: int
    metrics: dict[str, dict[str, object]]
    report: Path

    @property
    def completeness(self) -> float:
        """Share of the selected truth galaxies that were detected."""
        return self.n_matched_selected / self.n_truth_selected if self.n_truth_selected else 0.0


def photoz_columns(names: Sequence[str]) -> list[str]:
    """The model names of a catalogue's ``z_<model>`` columns (``_err``, ``_flag``, p(z) aside)."""
    from .columns import ERROR_SUFFIX, FLAG_SUFFIX, PZ_SUFFIXES

    present = set(names)
    return [
        n[2:]
        for n in names
        if n.startswith("z_")
        and not n.endswith((ERROR_SUFFIX, FLAG_SUFFIX))
        and not (n.endswith(PZ_SUFFIXES) and n.rsplit("_", 1)[0] in present)
    ]


def evaluate_field(
    partitions: Sequence[str | Path],
    truth_dir: str | Path,
    out: str | Path,
    *,
    radius: float = DEFAULT_MATCH_RADIUS,
) -> FieldEvaluation:
    """Match a run's partitions to their truth tables and write the evaluation report.

    Parameters
    ----------
    partitions
        Per-tile catalogue files of a run.
    truth_dir
        Folder of the simulated tiles (``tile_<id>_truth.parquet``).
    out
        Folder of the report.
    radius
        Matching radius in pixels.

    Returns
    -------
    FieldEvaluation

    Raises
    ------
    FileNotFoundError
        When a tile's truth table is missing (naming it).
    ValueError
        When the catalogue has no ``z_<model>`` columns or nothing matched.
    """
    from .report import evaluate

    z_true, magnitude, predictions, pz = [], [], {}, {}
    n_truth = n_matched = n_detections = n_unmatched = 0
    models: list[str] | None = None
    for partition in partitions:
        catalog = pq.read_table(partition)
        tile_id = int(catalog.schema.metadata[b"csst_photoz.tile_id"])
        truth_path = tile_truth_path(truth_dir, tile_id)
        if not truth_path.is_file():
            raise FileNotFoundError(f"{partition}: truth table of tile {tile_id} not found")
        truth = pq.read_table(truth_path)
        models = models if models is not None else photoz_columns(catalog.column_names)
        match = match_positions(
            truth["x"].to_numpy(), truth["y"].to_numpy(),
            catalog["x"].to_numpy(), catalog["y"].to_numpy(), radius=radius,
        )  # fmt: skip
        selected = truth["selected"].to_numpy(zero_copy_only=False)
        keep = selected[match.truth]
        n_truth += int(selected.sum())
        n_matched += int(keep.sum())
        n_detections += catalog.num_rows
        n_unmatched += catalog.num_rows - len(match.detection)
        rows_truth, rows_found = match.truth[keep], match.detection[keep]
        z_true.append(truth["redshift"].to_numpy()[rows_truth])
        magnitude.append(truth["mag_i"].to_numpy()[rows_truth])
        for name in models:
            z = catalog[f"z_{name}"].to_numpy()[rows_found]
            err = catalog[f"z_{name}_err"].to_numpy()[rows_found]
            predictions.setdefault(name, ([], []))
            predictions[name][0].append(z)
            predictions[name][1].append(err)
            if f"z_{name}_pz" in catalog.column_names:
                pz.setdefault(name, []).append(compact_column(catalog, name)[rows_found])
    if not models:
        raise ValueError("the catalogue has no z_<model> columns to evaluate")
    if n_matched == 0:
        raise ValueError("no selected truth galaxy was matched to a detection")
    report = evaluate(
        np.concatenate(z_true),
        {name: (np.concatenate(z), np.concatenate(e)) for name, (z, e) in predictions.items()},
        out=out,
        magnitude=np.concatenate(magnitude),
        magnitude_label="mag_i (truth)",
        pz={name: np.concatenate(codes) for name, codes in pz.items()},
    )
    return FieldEvaluation(
        n_truth_selected=n_truth,
        n_matched_selected=n_matched,
        n_detections=n_detections,
        n_unmatched_detections=n_unmatched,
        metrics=report.metrics,
        report=report.paths["markdown"],
    )
