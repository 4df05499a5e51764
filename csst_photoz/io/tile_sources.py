"""Tiles to process, named lazily: zarr tile stores, per-band FITS sets, globs and manifests.

The batch processor takes "tiles" in any of these forms and never materialises more than it
must (a manifest of millions of tiles is read line by line or batch by batch):

* a zarr tile store (a folder ``*.zarr``, see :mod:`.tile_zarr`);
* a per-band FITS file ``tile<id>_<band>.fits`` (see :mod:`.tile_fits`): it names the tile made
  of all its sibling band files; a folder holding such files names every tile in it;
* a glob pattern (``"tiles/*.zarr"``), expanded in sorted order;
* a manifest: a text file ``*.txt`` / ``*.lst`` (one tile per line, ``#`` comments, paths
  relative to the manifest's folder) or a Parquet file with a ``path`` column.

Each tile becomes a :class:`TileSource`, a small picklable record (what Dask tasks carry); its
``key`` (the resolved path) is what the run's manifest records. Its :meth:`TileSource.identity`
(tile id, size and a checksum of the tile's metadata, read without the pixels) is what a run
resumes by, so a survey moved to another folder or file system is recognised.
"""

from __future__ import annotations

import glob
import hashlib
import json
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import zarr
from astropy.io import fits

from ..tile import Tile
from .paths import TILE_FITS_GLOB, parse_tile_fits_name
from .tile_fits import CSST_BANDS, read_tile_fits, tile_fits_path
from .tile_zarr import TileFormatError, read_tile_zarr

__all__ = ["TileIdentity", "TileSource", "iter_tile_sources"]

#: ``on_error(path, reason)``: a named tile that cannot be used.
ErrorHandler = Callable[[str, str], None]
_MANIFEST_SUFFIXES = (".txt", ".lst")
_GLOB_CHARACTERS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class TileIdentity:
    """What a tile is, wherever it lies: its id, size and a checksum of its metadata.

    Attributes
    ----------
    tile_id
        The tile's id.
    shape
        ``(ny, nx)`` pixels of each band.
    checksum
        SHA-256 (hex, 32 digits) of the tile's metadata: a zarr store's attributes (bands,
        zero points, exposure times, WCS, ...) with the image's shape and type, or the primary
        headers of a FITS tile's band files. Paths are not part of it.
    """

    tile_id: int
    shape: tuple[int, int]
    checksum: str

    @property
    def pixels(self) -> int:
        """Pixels per band."""
        return self.shape[0] * self.shape[1]


def _checksum(metadata: object) -> str:
    text = json.dumps(metadata, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class TileSource:
    """One tile to process.

    Attributes
    ----------
    kind
        ``"zarr"`` (``path`` is the tile store) or ``"fits"`` (``path`` is the folder holding
        the band files ``tile<tile_id>_<band>.fits``).
    path
        Absolute path.
    tile_id
        The tile id when the name gives it (FITS), else None (zarr: read from the store).
    """

    kind: str
    path: str
    tile_id: int | None = None

    @property
    def key(self) -> str:
        """Stable identity of the tile in a run's manifest."""
        if self.kind == "fits":
            return str(tile_fits_path(self.path, int(self.tile_id or 0), "*"))
        return self.path

    @property
    def digest(self) -> str:
        """A short hash of :attr:`key` (file names and Dask keys)."""
        return hashlib.sha1(self.key.encode()).hexdigest()[:16]

    def identity(self, bands: tuple[str, ...] = CSST_BANDS) -> TileIdentity:
        """The tile's id, size and metadata checksum, read without its pixels.

        Raises
        ------
        TileFormatError
            Naming the file, when its metadata cannot be read.
        """
        if self.kind == "zarr":
            try:
                group = zarr.open_group(self.path, mode="r")
                attrs = dict(group.attrs)
                image = group["image"]
                shape = tuple(int(n) for n in image.shape)
                metadata = {"attrs": attrs, "shape": shape, "dtype": str(image.dtype)}
                return TileIdentity(int(attrs["tile_id"]), shape[-2:], _checksum(metadata))
            except Exception as error:
                raise TileFormatError(
                    f"tile store {self.path}: metadata unreadable ({type(error).__name__}: {error})"
                ) from None
        headers = []
        for band in bands:
            file = tile_fits_path(self.path, int(self.tile_id or 0), band)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    headers.append(fits.getheader(file, 0).tostring())
            except (OSError, ValueError) as error:
                raise TileFormatError(f"{file}: header unreadable ({error})") from None
        header = fits.Header.fromstring(headers[0])
        shape = (int(header.get("NAXIS2", 0)), int(header.get("NAXIS1", 0)))
        return TileIdentity(int(self.tile_id or 0), shape, _checksum(headers))

    def read(self, bands: tuple[str, ...] = CSST_BANDS) -> Tile:
        """Read and validate the tile.

        Raises
        ------
        TileFormatError
            Naming the file and the problem (missing, corrupt, wrong shape, missing bands).
        """
        if self.kind == "zarr":
            return read_tile_zarr(self.path, expected_bands=bands)
        files = {band: tile_fits_path(self.path, int(self.tile_id or 0), band) for band in bands}
        absent = [band for band, file in files.items() if not file.is_file()]
        if absent:
            raise TileFormatError(
                f"tile {self.tile_id} ({self.key}): band file(s) missing for {absent}"
            )
        return read_tile_fits(files, tile_id=self.tile_id, bands=bands)


def _fits_source(path: Path) -> TileSource:
    parsed = parse_tile_fits_name(path.name)
    if parsed is None:
        raise ValueError(f"{path}: a FITS tile file must be named tile<id>_<band>.fits")
    return TileSource("fits", str(path.parent.resolve()), parsed[0])


def _from_path(path: Path, on_error: ErrorHandler | None = None) -> Iterator[TileSource]:
    """The tiles one existing path names."""
    if path.suffix == ".zarr":
        yield TileSource("zarr", str(path.resolve()))
    elif path.suffix == ".fits":
        yield _fits_source(path)
    elif path.suffix == ".parquet":
        yield from _from_parquet_manifest(path, on_error)
    elif path.suffix in _MANIFEST_SUFFIXES:
        yield from _from_text_manifest(path, on_error)
    elif path.is_dir():
        stores = sorted(path.glob("*.zarr"))
        fits = sorted(file for file in path.glob(TILE_FITS_GLOB) if parse_tile_fits_name(file.name))
        if not stores and not fits:
            raise ValueError(f"{path}: folder holds no tiles (*.zarr or tile<id>_<band>.fits)")
        for store in stores:
            yield TileSource("zarr", str(store.resolve()))
        for file in fits:
            yield _fits_source(file)
    else:
        raise ValueError(
            f"{path}: not a tile (expected a .zarr store, a tile<id>_<band>.fits file, a folder "
            "of those, or a manifest .txt/.lst/.parquet)"
        )


def _entry(
    text: str, base: Path, where: str, on_error: ErrorHandler | None
) -> Iterator[TileSource]:
    path = Path(text)
    path = path if path.is_absolute() else base / path
    try:
        if not path.exists():
            raise FileNotFoundError(f"{where}: tile {text!r} does not exist ({path})")
        if path.suffix not in (".zarr", ".fits"):
            raise ValueError(f"{where}: {text!r} is not a tile (.zarr or .fits)")
        sources = list(_from_path(path))  # one tile
    except (FileNotFoundError, ValueError) as error:
        if on_error is None:
            raise
        on_error(str(path), str(error))
        return
    yield from sources


def _from_text_manifest(path: Path, on_error: ErrorHandler | None) -> Iterator[TileSource]:
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            text = line.split("#", 1)[0].strip()
            if text:
                yield from _entry(text, path.parent, f"{path}:{number}", on_error)


def _from_parquet_manifest(path: Path, on_error: ErrorHandler | None) -> Iterator[TileSource]:
    try:
        manifest = pq.ParquetFile(path)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable Parquet manifest ({exc})") from None
    if "path" not in manifest.schema_arrow.names:
        raise ValueError(f"{path}: a Parquet manifest needs a 'path' column")
    row = 0
    for batch in manifest.iter_batches(columns=["path"], batch_size=65536):
        for text in batch.column(0).to_pylist():
            row += 1
            if text is None:
                raise ValueError(f"{path}: row {row} has no path")
            yield from _entry(str(text), path.parent, f"{path} row {row}", on_error)


def iter_tile_sources(
    tiles: str | Path | TileSource | Iterable[str | Path | TileSource],
    *,
    on_error: ErrorHandler | None = None,
) -> Iterator[TileSource]:
    """The tiles named by paths, globs and manifests, lazily, each tile once.

    Parameters
    ----------
    tiles
        A path, glob or manifest, or an iterable of them (see the module docstring), or of
        `TileSource` records (passed through).
    on_error
        Called as ``on_error(path, reason)`` for a tile named in a list or a manifest that does
        not exist or is not a tile, and the iteration goes on (a survey manifest with one bad
        line still runs). Without it, those raise. A glob matching nothing, an unreadable
        manifest or a folder without tiles always raise.

    Yields
    ------
    TileSource
        In the order given (globs and folders sorted); a tile named twice is yielded once.

    Raises
    ------
    FileNotFoundError
        A path that does not exist, or a glob that matches nothing (naming it).
    ValueError
        A path that is not a tile or a manifest, or a malformed manifest.
    """
    items = [tiles] if isinstance(tiles, (str, Path, TileSource)) else tiles
    seen: set[str] = set()
    for item in items:
        if isinstance(item, TileSource):
            if item.key not in seen:
                seen.add(item.key)
                yield item
            continue
        text = str(item)
        if _GLOB_CHARACTERS.search(text) and not Path(text).exists():
            matches = sorted(glob.glob(text))
            if not matches:
                raise FileNotFoundError(f"no tiles match {text!r}")
            paths = [Path(match) for match in matches]
        else:
            paths = [Path(text)]
        for path in paths:
            if not path.exists():
                if on_error is None:
                    raise FileNotFoundError(f"tile not found: {path}")
                on_error(str(path), f"tile not found: {path}")
                continue
            for source in _from_path(path, on_error):
                if source.key not in seen:
                    seen.add(source.key)
                    yield source
