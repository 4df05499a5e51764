"""The output folder of a batch run: per-tile Parquet partitions, done-markers and failures.

Layout (every path is a function of the tile id or the tile source, so reruns and retried
tasks land on the same names; the names are `~csst_photoz.io.paths.RunLayout`'s)::

    RUN/run.json                       settings and checkpoints of the run (a rerun must match)
    RUN/tiles/tile_<id>.parquet        one catalogue partition per tile (zstd)
    RUN/_claims/tile_<id>              which source owns a tile id (created exclusively)
    RUN/_done/tile_<id>.json           done-marker: source, rows, bytes, SHA-256, timings
    RUN/_failed/<source digest>.json   why a tile failed (removed when a rerun succeeds)
    RUN/manifest.parquet               the done-markers as one table (written at the end)
    RUN/failures.parquet               the failures as one table (written at the end)

Before a task measures a tile it claims the tile id (an exclusive file creation), so two
different sources with the same tile id can never write, or overwrite, one partition, even
when they run at the same time; a retried task finds its own claim and goes on. A partition is
written to a temporary name and renamed; its marker is written (atomically)
after it, so a marker always describes a complete file. A rerun skips a tile whose marker
exists and whose partition still has the recorded size; `verify_partition` also checks the
SHA-256. Partitions are zstd-compressed without dictionary encoding of float columns.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_destination, with_default_mode
from .paths import RunLayout, temporary_prefix

__all__ = [
    "RunAudit",
    "RunLockedError",
    "RunSettingsError",
    "RunStore",
    "TileFailure",
    "TileRecord",
    "file_sha256",
]

_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class RunSettingsError(ValueError):
    """A run folder that holds a run made with other settings.

    The message names the folder, the differing settings and how to discard the earlier run;
    `with_option` gives it for another front end (the command line's ``--overwrite``).

    Parameters
    ----------
    root
        The run folder.
    changed
        Names of the settings that differ from the earlier run's.
    option
        How the caller discards the earlier run (``overwrite=True`` from Python).
    """

    def __init__(
        self, root: str | os.PathLike[str], changed: list[str], option: str = "overwrite=True"
    ) -> None:
        self.root = Path(root)
        self.changed = list(changed)
        self.option = option
        super().__init__(
            f"{self.root} holds a run with other settings (differing: {self.changed}); "
            f"use a new output folder, or {option} to discard it"
        )

    def with_option(self, option: str) -> RunSettingsError:
        """The same refusal naming ``option`` (e.g. ``"--overwrite"``) as the way to discard."""
        return RunSettingsError(self.root, self.changed, option)


class RunLockedError(RuntimeError):
    """Another live process runs in this folder (a usage error: exit status 2)."""

    exit_status = 2


@dataclass(frozen=True)
class TileRecord:
    """The done-marker of one tile (one row of ``manifest.parquet``)."""

    tile_id: int
    source: str
    partition: str
    rows: int
    bytes: int
    sha256: str
    seconds: float
    worker: str = ""
    device: str = ""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # the tile's metadata checksum (TileIdentity.checksum); "" in markers of older runs
    checksum: str = ""


@dataclass(frozen=True)
class TileFailure:
    """Why a tile produced no partition (one row of ``failures.parquet``)."""

    source: str
    reason: str
    tile_id: int | None = None
    # "data": the tile's contents are bad (not retried); "input": the listed tile is missing
    # or not a tile; "error": the task failed after its retries
    kind: str = "data"


@dataclass
class RunAudit:
    """What a run folder holds, checked marker against partition (`RunStore.audit`).

    Attributes
    ----------
    records
        Done-markers whose partition is in place with the recorded size and SHA-256.
    unreadable_markers
        Marker files that cannot be read or parsed.
    bad_partitions
        Per marker whose partition is missing or differs from it: the problem.
    orphan_partitions
        Partitions without a readable marker (a tile whose marker was lost).
    unmarked_manifest_tiles
        Tile ids in ``manifest.parquet`` without a valid marker now.
    failures
        The failure records (tiles that failed in the latest run that tried them).
    """

    records: list[TileRecord] = field(default_factory=list)
    unreadable_markers: list[Path] = field(default_factory=list)
    bad_partitions: list[str] = field(default_factory=list)
    orphan_partitions: list[Path] = field(default_factory=list)
    unmarked_manifest_tiles: list[int] = field(default_factory=list)
    failures: list[TileFailure] = field(default_factory=list)

    def problems(self) -> list[str]:
        """One line per inconsistency between markers, partitions and manifest."""
        lines = [f"{path}: unreadable done-marker" for path in self.unreadable_markers]
        lines += self.bad_partitions
        lines += [f"{path}: partition without a done-marker" for path in self.orphan_partitions]
        lines += [
            f"tile {tile_id}: in manifest.parquet but without a valid done-marker"
            for tile_id in self.unmarked_manifest_tiles
        ]
        return lines


def _write_json(path: Path, record: Mapping[str, Any]) -> None:
    with atomic_destination(path) as temporary:
        temporary.write_text(json.dumps(record, indent=1, sort_keys=True))


class RunStore:
    """The files of one run folder (see the module docstring).

    Parameters
    ----------
    root
        The run folder (created on first write).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.layout = RunLayout(self.root)

    # -- paths ---------------------------------------------------------------------------
    @property
    def tiles_dir(self) -> Path:
        """Folder of the per-tile partitions."""
        return self.layout.tiles_dir

    def partition_path(self, tile_id: int) -> Path:
        """The catalogue partition of a tile."""
        return self.layout.partition(tile_id)

    def marker_path(self, tile_id: int) -> Path:
        """The done-marker of a tile."""
        return self.layout.marker(tile_id)

    def failure_path(self, source_digest: str) -> Path:
        """The failure record of a tile source."""
        return self.layout.failure(source_digest)

    @property
    def settings_path(self) -> Path:
        """The run's settings (``run.json``)."""
        return self.layout.settings

    # -- settings ------------------------------------------------------------------------
    def check_settings(self, settings: Mapping[str, Any], *, overwrite: bool = False) -> None:
        """Record the run's settings, or check that they equal those of the earlier run.

        Parameters
        ----------
        settings
            What makes the run's rows (JSON-able).
        overwrite
            Start a fresh run: the earlier run's files are discarded first (`discard`).

        Raises
        ------
        RunSettingsError
            If the folder holds a run with other settings (models, photometry, ...): mixing
            them would give a catalogue whose rows were made differently. A `ValueError`.
        """
        settings = json.loads(json.dumps(settings, sort_keys=True))
        if overwrite:
            self.discard()
        elif not self.settings_path.exists() and any(self.layout.markers_dir.glob("*")):
            raise RunSettingsError(self.root, ["run.json (missing beside done tiles)"])
        if self.settings_path.exists():
            try:
                earlier = json.loads(self.settings_path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise ValueError(f"{self.settings_path}: unreadable run settings ({exc})") from None
            if earlier != settings:
                changed = sorted(
                    key
                    for key in set(earlier) | set(settings)
                    if earlier.get(key) != settings.get(key)
                )
                raise RunSettingsError(self.root, changed)
            return
        _write_json(self.settings_path, settings)

    def discard(self) -> None:
        """Remove an earlier run's files, so that nothing of it mixes with a new run.

        Each entry (`~csst_photoz.io.paths.RunLayout.run_entries`: the done-markers first,
        ``run.json`` last) is renamed into a hidden folder, which is then deleted. The renames
        are atomic, so an interrupted discard leaves no tile both done and stale: its markers
        are gone first, and its ``run.json`` stays (refusing other settings) until the rest
        is gone. A hidden folder left by a killed discard is deleted by `remove_leftovers`.
        """
        present = [path for path in self.layout.run_entries if path.exists()]
        if not present:
            return
        aside = Path(tempfile.mkdtemp(prefix=RunLayout.DISCARDED_PREFIX, dir=self.root))
        for path in present:
            os.rename(path, aside / path.name)
        shutil.rmtree(aside)

    def remove_leftovers(self) -> list[Path]:
        """Delete what killed writers left: temporary files and half-deleted earlier runs.

        Call it only while holding the folder's `lock` (another live run's temporary files
        would be deleted under it). Returns the paths removed.
        """
        removed = []
        ours = tuple(
            temporary_prefix(path)
            for path in (*self.layout.run_entries, self.layout.lock)
            if path.parent == self.root
        )
        for folder in self.layout.temporary_folders:
            if not folder.is_dir():
                continue
            for path in folder.glob(".*"):
                if path.is_dir() and path.name.startswith(RunLayout.DISCARDED_PREFIX):
                    shutil.rmtree(path)
                elif path.is_file() and (folder != self.root or path.name.startswith(ours)):
                    path.unlink(missing_ok=True)
                else:
                    continue
                removed.append(path)
        return removed

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder's lock for a ``with`` block: one running batch per run folder.

        The lock file (``run.lock``: host, process id, start time) is created exclusively. A
        lock whose process is gone (same host, no such process) is stale and taken over.

        Raises
        ------
        RunLockedError
            While another live process (or one on another host) holds it, naming it.
        """
        path = self.layout.lock
        path.parent.mkdir(parents=True, exist_ok=True)
        mine = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
        for _ in range(3):
            handle, staged = tempfile.mkstemp(prefix=temporary_prefix(path), dir=path.parent)
            try:
                with os.fdopen(handle, "w") as stream:
                    json.dump(mine, stream)
                os.link(staged, path)
            except FileExistsError:
                holder = _lock_holder(path)
                if holder is None or not _alive(holder):
                    path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                raise RunLockedError(
                    f"{self.root} is in use by another run (process {holder.get('pid')} on "
                    f"{holder.get('host')}, lock {path}); wait for it, or delete the lock if "
                    "that process is gone"
                ) from None
            finally:
                os.unlink(staged)
            break
        else:
            raise RunLockedError(f"{path}: could not take the lock (taken and freed repeatedly)")
        try:
            yield
        finally:
            if _lock_holder(path) == mine:
                path.unlink(missing_ok=True)

    def audit(self, *, verify: bool = True) -> RunAudit:
        """Check every done-marker against its partition, and the partitions and manifest back.

        Parameters
        ----------
        verify
            Also compare each partition's SHA-256 with its marker (else its size only).
        """
        audit = RunAudit(failures=self.failures())
        marked = set()
        for path in sorted(self.layout.markers_dir.glob(RunLayout.MARKER_GLOB)):
            try:
                record = TileRecord(**json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError, TypeError):
                audit.unreadable_markers.append(path)
                continue
            marked.add(self.partition_path(record.tile_id).name)
            try:
                if verify:
                    self.verify_partition(record)
                elif not self.is_done(record):
                    raise ValueError(
                        f"{self.partition_path(record.tile_id)}: partition of tile "
                        f"{record.tile_id} is missing or differs from its done-marker"
                    )
            except ValueError as error:
                audit.bad_partitions.append(str(error))
                continue
            audit.records.append(record)
        if self.tiles_dir.is_dir():
            audit.orphan_partitions = sorted(
                path for path in self.tiles_dir.glob("*.parquet") if path.name not in marked
            )
        if self.layout.manifest.is_file():
            listed = pq.read_table(self.layout.manifest, columns=["tile_id"])["tile_id"]
            valid = {record.tile_id for record in audit.records}
            audit.unmarked_manifest_tiles = sorted(set(listed.to_pylist()) - valid)
        return audit

    # -- claims, partitions and markers --------------------------------------------------
    def claim(self, tile_id: int, source: str, checksum: str = "") -> str | None:
        """Claim a tile id for a tile; returns the other source that holds it, or None.

        The claim file is created exclusively and complete (a hard link of a written file), so
        of two tasks racing for one id exactly one wins, and the loser reads the winner's name.
        Claiming again for the same tile succeeds: the same ``checksum`` (the tile's metadata,
        :class:`~csst_photoz.io.tile_sources.TileIdentity`; so a moved tile is the same), or,
        for claims without one, the same ``source``.
        """
        path = self.layout.claim(tile_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        mine = json.dumps({"source": source, "checksum": checksum}) if checksum else source
        # the claim appears complete or not at all: written under a private name, then linked
        # to the claim's name (a hard link fails, atomically, when the name exists)
        handle, staged = tempfile.mkstemp(prefix=temporary_prefix(path), dir=path.parent)
        with_default_mode(staged)
        try:
            with os.fdopen(handle, "w") as stream:
                stream.write(mine)
            os.link(staged, path)
        except FileExistsError:
            holder, holder_checksum = _claim_content(path.read_text())
            same = (checksum and holder_checksum == checksum) or holder == source
            return None if same else holder
        finally:
            os.unlink(staged)
        return None

    def write_partition(self, tile_id: int, table: pa.Table) -> tuple[Path, int, str]:
        """Write a tile's catalogue atomically; returns (path, bytes, SHA-256).

        Parameters
        ----------
        tile_id
            The tile, which names the partition (`partition_path`).
        table
            Its catalogue (schema metadata kept).
        """
        path = self.partition_path(tile_id)
        dictionary_columns = [
            f.name for f in table.schema if not pa.types.is_floating(f.type)
            and f.name not in ("object_id",)
        ]  # fmt: skip
        with atomic_destination(path) as temporary:
            pq.write_table(
                table,
                temporary,
                compression="zstd",
                use_dictionary=dictionary_columns,
                write_statistics=True,
            )
        return path, path.stat().st_size, file_sha256(path)

    def write_marker(self, record: TileRecord) -> None:
        """Mark a tile done (after its partition is in place)."""
        _write_json(self.marker_path(record.tile_id), asdict(record))

    def read_marker(self, tile_id: int) -> TileRecord | None:
        """The tile's done-marker, or None when absent or unreadable."""
        path = self.marker_path(tile_id)
        try:
            return TileRecord(**json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError, TypeError):
            return None

    def is_done(self, record: TileRecord) -> bool:
        """Whether a marker's partition is in place with the recorded size."""
        path = self.partition_path(record.tile_id)
        return path.is_file() and path.stat().st_size == record.bytes

    def verify_partition(self, record: TileRecord) -> None:
        """Check a partition against its marker (size and SHA-256).

        Raises
        ------
        ValueError
            Naming the file, when it is missing or differs from the marker.
        """
        path = self.partition_path(record.tile_id)
        if not path.is_file():
            raise ValueError(f"{path}: partition of tile {record.tile_id} is missing")
        if path.stat().st_size != record.bytes or file_sha256(path) != record.sha256:
            raise ValueError(f"{path}: partition differs from its done-marker (changed on disk)")

    def markers(self) -> Iterator[TileRecord]:
        """Every readable done-marker, in tile-id order."""
        for path in sorted(self.layout.markers_dir.glob(RunLayout.MARKER_GLOB)):
            try:
                yield TileRecord(**json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError, TypeError):
                continue

    def done_tiles(self) -> dict[int, TileRecord]:
        """Tile id -> marker, for tiles whose partitions are in place."""
        return {r.tile_id: r for r in self.markers() if self.is_done(r)}

    def done_sources(self) -> dict[str, TileRecord]:
        """Source key -> marker, for tiles whose partitions are in place."""
        return {r.source: r for r in self.markers() if self.is_done(r)}

    # -- failures ------------------------------------------------------------------------
    def record_failure(self, digest: str, failure: TileFailure) -> None:
        """Write (or replace) the failure record of a tile source."""
        _write_json(self.failure_path(digest), asdict(failure))

    def clear_failure(self, digest: str) -> None:
        """Forget an earlier failure of a tile source (it succeeded now)."""
        self.failure_path(digest).unlink(missing_ok=True)

    def clear_failures_of_tile(self, tile_id: int | None) -> None:
        """Forget every failure recorded for a tile id (the tile is done now)."""
        if tile_id is None or not self.layout.failures_dir.is_dir():
            return
        for path in self.layout.failures_dir.glob(RunLayout.FAILURE_GLOB):
            try:
                recorded = json.loads(path.read_text()).get("tile_id")
            except (OSError, ValueError, AttributeError):
                continue
            if recorded == tile_id:
                path.unlink(missing_ok=True)

    def failures(self) -> list[TileFailure]:
        """Every failure record."""
        records = []
        for path in sorted(self.layout.failures_dir.glob(RunLayout.FAILURE_GLOB)):
            try:
                records.append(TileFailure(**json.loads(path.read_text())))
            except (OSError, json.JSONDecodeError, TypeError):
                continue
        return records

    # -- consolidated tables -------------------------------------------------------------
    def write_manifest(self) -> pa.Table:
        """Write ``manifest.parquet`` (one row per done tile) and return it."""
        rows = [asdict(r) for r in self.markers() if self.is_done(r)]
        for row in rows:
            row["stage_seconds"] = json.dumps(row["stage_seconds"], sort_keys=True)
        schema = pa.schema([
            ("tile_id", pa.int64()), ("source", pa.string()), ("partition", pa.string()),
            ("rows", pa.int64()), ("bytes", pa.int64()), ("sha256", pa.string()),
            ("seconds", pa.float64()), ("worker", pa.string()), ("device", pa.string()),
            ("stage_seconds", pa.string()), ("checksum", pa.string()),
        ])  # fmt: skip
        table = pa.Table.from_pylist(rows, schema=schema)
        with atomic_destination(self.layout.manifest) as temporary:
            pq.write_table(table, temporary)
        return table

    def write_failures(self) -> pa.Table:
        """Write ``failures.parquet`` (one row per failed tile source) and return it."""
        schema = pa.schema([
            ("source", pa.string()), ("reason", pa.string()), ("tile_id", pa.int64()),
            ("kind", pa.string()),
        ])  # fmt: skip
        table = pa.Table.from_pylist([asdict(f) for f in self.failures()], schema=schema)
        with atomic_destination(self.layout.failures_table) as temporary:
            pq.write_table(table, temporary)
        return table

    def partitions(self) -> list[Path]:
        """The partitions of the done tiles, in tile-id order."""
        return [self.partition_path(r.tile_id) for r in self.markers() if self.is_done(r)]


def _lock_holder(path: Path) -> dict[str, Any] | None:
    try:
        holder = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return holder if isinstance(holder, dict) else None


def _alive(holder: Mapping[str, Any]) -> bool:
    """Whether a lock's process may still run (always, for a process on another host)."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, TypeError, ValueError):
        return True
    return True


def _claim_content(text: str) -> tuple[str, str]:
    """(source, checksum) of a claim file (a plain source path in claims without checksum)."""
    try:
        content = json.loads(text)
        return str(content["source"]), str(content["checksum"])
    except (ValueError, KeyError, TypeError):
        return text, ""
