"""Where things live on disk: the one place that knows the project's path grammar.

Every file and folder name the package writes or looks for is built here, from ids and parent
folders, so that a writer and its readers can never disagree on a name:

* tiles: the zarr store ``tile_<id>.zarr`` and truth ``tile_<id>_truth.parquet`` of a simulated
  tile, the per-band FITS files ``tile<id>_<band>.fits`` of a real one;
* a batch run's folder (`RunLayout`): partitions, done-markers, claims, failure records,
  ``run.json``, ``manifest.parquet``, ``failures.parquet``;
* a training set's folder: ``stamps.parquet`` + ``stamps.zarr`` (array ``stamps``), the
  per-block parts of an unfinished one, and the folders of its slices;
* a training run's files beside its best model ``<stem>.pt``: ``<stem>.last.pt`` (training
  state) and ``<stem>.log.jsonl``, and which ``*.pt`` files of a folder are model checkpoints;
* the demo's output folder (`DemoLayout`).

Temporary files are named ``.<final name>.<random>[.tmp]`` in the final file's folder
(`temporary_prefix`), so that a rename puts them in place and a listing never mistakes them for
finished files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CHECKPOINT_GLOB",
    "STAMPS_ARRAY",
    "STAMPS_STORE",
    "TABLE_FILE",
    "TEMPORARY_SUFFIX",
    "TILE_FITS_GLOB",
    "TRAINING_STATE_SUFFIX",
    "DemoLayout",
    "RunLayout",
    "is_training_state",
    "parse_tile_fits_name",
    "parse_training_part",
    "slice_folder",
    "temporary_prefix",
    "tile_fits_path",
    "tile_store_path",
    "tile_truth_path",
    "training_log_path",
    "training_part_path",
    "training_parts_folder",
    "training_stamps_path",
    "training_state_path",
    "training_table_path",
]

PathLike = str | os.PathLike[str]

#: Suffix of a temporary file or folder (after `temporary_prefix` and a random part).
TEMPORARY_SUFFIX = ".tmp"


def temporary_prefix(path: PathLike) -> str:
    """The name prefix of a temporary file that will become ``path``: ``.<name>.``.

    Used with ``tempfile.mkstemp(prefix=..., dir=path.parent)``; the leading dot hides it from
    the globs of this module.
    """
    return f".{Path(path).name}."


# -- tiles -----------------------------------------------------------------------------------


def _tile_stem(tile_id: int) -> str:
    return f"tile_{tile_id:08d}"


def tile_store_path(directory: PathLike, tile_id: int) -> Path:
    """The zarr group of a tile: ``<directory>/tile_<id, 8 digits>.zarr``."""
    return Path(directory) / f"{_tile_stem(tile_id)}.zarr"


def tile_truth_path(directory: PathLike, tile_id: int) -> Path:
    """The truth table of a simulated tile, beside it: ``tile_<id>_truth.parquet``."""
    return Path(directory) / f"{_tile_stem(tile_id)}_truth.parquet"


def tile_fits_path(directory: PathLike, tile_id: int, band: str) -> Path:
    """One band's FITS file of a tile: ``<directory>/tile<id>_<band>.fits`` (id not padded)."""
    return Path(directory) / f"tile{tile_id}_{band}.fits"


#: Glob of the band files of FITS tiles in a folder (`parse_tile_fits_name` confirms a match).
TILE_FITS_GLOB = "tile*_*.fits"
_TILE_FITS_NAME = re.compile(r"^tile(?P<tile_id>\d+)_(?P<band>[A-Za-z]+)\.fits$")


def parse_tile_fits_name(name: str) -> tuple[int, str] | None:
    """``(tile_id, band)`` of a file named like `tile_fits_path`'s, else None."""
    match = _TILE_FITS_NAME.match(name)
    return None if match is None else (int(match["tile_id"]), match["band"])


# -- the folder of a batch run ---------------------------------------------------------------


@dataclass(frozen=True)
class RunLayout:
    """The file names of a batch run's folder (see `csst_photoz.io.run_store`).

    Parameters
    ----------
    root
        The run folder.
    """

    root: Path

    #: Glob of the done-markers in `markers_dir` and of the failure records in `failures_dir`.
    MARKER_GLOB = "tile_*.json"
    FAILURE_GLOB = "*.json"

    def __init__(self, root: PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def tiles_dir(self) -> Path:
        """Folder of the per-tile partitions: ``tiles/``."""
        return self.root / "tiles"

    @property
    def markers_dir(self) -> Path:
        """Folder of the done-markers: ``_done/``."""
        return self.root / "_done"

    @property
    def claims_dir(self) -> Path:
        """Folder of the tile-id claims: ``_claims/``."""
        return self.root / "_claims"

    @property
    def failures_dir(self) -> Path:
        """Folder of the failure records: ``_failed/``."""
        return self.root / "_failed"

    @property
    def settings(self) -> Path:
        """The run's settings: ``run.json``."""
        return self.root / "run.json"

    @property
    def manifest(self) -> Path:
        """The done-markers as one table: ``manifest.parquet``."""
        return self.root / "manifest.parquet"

    @property
    def failures_table(self) -> Path:
        """The failure records as one table: ``failures.parquet``."""
        return self.root / "failures.parquet"

    def partition(self, tile_id: int) -> Path:
        """The catalogue partition of a tile: ``tiles/tile_<id>.parquet``."""
        return self.tiles_dir / f"{_tile_stem(tile_id)}.parquet"

    def marker(self, tile_id: int) -> Path:
        """The done-marker of a tile: ``_done/tile_<id>.json``."""
        return self.markers_dir / f"{_tile_stem(tile_id)}.json"

    def claim(self, tile_id: int) -> Path:
        """The claim of a tile id: ``_claims/tile_<id>``."""
        return self.claims_dir / _tile_stem(tile_id)

    def failure(self, source_digest: str) -> Path:
        """The failure record of a tile source: ``_failed/<source digest>.json``."""
        return self.failures_dir / f"{source_digest}.json"

    @property
    def lock(self) -> Path:
        """The lock of the process running the batch: ``run.lock`` (host, pid, start)."""
        return self.root / "run.lock"

    #: Prefix of the hidden folder an earlier run's files are moved into before deletion.
    DISCARDED_PREFIX = ".discarded-"

    @property
    def run_entries(self) -> tuple[Path, ...]:
        """What a run writes but its lock, done-markers first: what ``overwrite`` discards."""
        return (
            self.markers_dir, self.manifest, self.tiles_dir, self.claims_dir,
            self.failures_dir, self.failures_table, self.settings,
        )  # fmt: skip

    @property
    def temporary_folders(self) -> tuple[Path, ...]:
        """The folders where a killed writer can leave a temporary file (`temporary_prefix`)."""
        return (self.root, self.tiles_dir, self.markers_dir, self.claims_dir, self.failures_dir)


# -- training sets ---------------------------------------------------------------------------

#: The table of a training-set folder (one row per stamp).
TABLE_FILE = "stamps.parquet"
#: The zarr group of a training-set folder, and the stamp array in it.
STAMPS_STORE = "stamps.zarr"
STAMPS_ARRAY = "stamps"
# the table rows of finished blocks of an unfinished training set (removed when it is finished)
_PARTS_FOLDER = "_parts"
_PART_NAME = re.compile(r"^rows_(?P<start>\d{10})_(?P<stop>\d{10})\.parquet$")


def training_table_path(folder: PathLike) -> Path:
    """The table of a training-set folder: ``<folder>/stamps.parquet``."""
    return Path(folder) / TABLE_FILE


def training_stamps_path(folder: PathLike) -> Path:
    """The stamp group of a training-set folder: ``<folder>/stamps.zarr``."""
    return Path(folder) / STAMPS_STORE


def training_parts_folder(folder: PathLike) -> Path:
    """Where an unfinished training set keeps its finished blocks' rows: ``<folder>/_parts``."""
    return Path(folder) / _PARTS_FOLDER


def training_part_path(folder: PathLike, start: int, stop: int) -> Path:
    """The table rows ``[start, stop)`` of an unfinished training set, as a part.

    ``<folder>/_parts/rows_<start>_<stop>.parquet``, both numbers of 10 digits, so the names
    sort in row order.
    """
    return training_parts_folder(folder) / f"rows_{start:010d}_{stop:010d}.parquet"


def parse_training_part(name: str) -> tuple[int, int] | None:
    """``(start, stop)`` of a `training_part_path` file name; None for any other name."""
    match = _PART_NAME.match(name)
    return None if match is None else (int(match["start"]), int(match["stop"]))


def slice_folder(directory: PathLike, index: int) -> Path:
    """The folder of slice ``index`` of a sliced training set: ``<directory>/slice_<index>``."""
    return Path(directory) / f"slice_{index}"


# -- training runs and checkpoints -----------------------------------------------------------

#: Model checkpoints in a folder: ``*.pt`` files that are not training states.
CHECKPOINT_GLOB = "*.pt"
#: Suffix of a training state (the resumable ``last`` checkpoint) beside a best model.
TRAINING_STATE_SUFFIX = ".last.pt"


def _run_stem(checkpoint: Path) -> str:
    return checkpoint.stem if checkpoint.suffix else checkpoint.name


def training_state_path(checkpoint: PathLike) -> Path:
    """The training state beside a best model ``<stem>.pt``: ``<stem>.last.pt``."""
    best = Path(checkpoint)
    return best.with_name(f"{_run_stem(best)}{TRAINING_STATE_SUFFIX}")


def training_log_path(checkpoint: PathLike) -> Path:
    """The per-epoch log beside a best model ``<stem>.pt``: ``<stem>.log.jsonl``."""
    best = Path(checkpoint)
    return best.with_name(f"{_run_stem(best)}.log.jsonl")


def is_training_state(path: PathLike) -> bool:
    """Whether a ``*.pt`` file is a training state (`training_state_path`), not a model."""
    return Path(path).name.endswith(TRAINING_STATE_SUFFIX)


# -- the demo --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoLayout:
    """The folders of ``csst-photoz demo --out DIR``.

    Parameters
    ----------
    root
        ``DIR``.
    """

    root: Path

    def __init__(self, root: PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def tiles(self) -> Path:
        """Simulated tile stores and truth tables: ``tiles/``."""
        return self.root / "tiles"

    @property
    def run(self) -> Path:
        """The batch run: ``run/``."""
        return self.root / "run"

    @property
    def catalog(self) -> Path:
        """The HATS catalogue: ``catalog/`` (the name `finalize_catalog` gives by default)."""
        return self.root / "catalog"

    @property
    def report(self) -> Path:
        """The evaluation report: ``report/``."""
        return self.root / "report"
