"""Atomic file replacement: write to a temporary name beside the target, then rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .paths import TEMPORARY_SUFFIX, temporary_prefix

__all__ = ["atomic_destination", "with_default_mode"]


def _process_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# files and folders get the permissions a plain open() / mkdir() would give them (mkstemp and
# mkdtemp make them private, which would hide catalogues and tiles from other users)
_UMASK = _process_umask()
_FILE_MODE = 0o666 & ~_UMASK
_FOLDER_MODE = 0o777 & ~_UMASK


def with_default_mode(path: str | os.PathLike[str]) -> Path:
    """Give a temporary file or folder the permissions of a plain ``open`` / ``mkdir``.

    Parameters
    ----------
    path
        A file or folder made by ``tempfile.mkstemp`` / ``mkdtemp`` (private by default).

    Returns
    -------
    pathlib.Path
        The path.
    """
    path = Path(path)
    path.chmod(_FOLDER_MODE if path.is_dir() else _FILE_MODE)
    return path


@contextmanager
def atomic_destination(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces ``path`` when the block succeeds.

    Readers see either the old file (or none) or the complete new one, never a partial write.
    If the block raises, the temporary file is removed and ``path`` is untouched. Parent
    folders are created. The file gets the permissions of a plain ``open`` under the process's
    umask (not the private mode of a temporary file), so catalogues are readable by others.

    Parameters
    ----------
    path
        The destination file.

    Yields
    ------
    pathlib.Path
        The temporary file to write (it exists, empty).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=temporary_prefix(target), suffix=TEMPORARY_SUFFIX, dir=target.parent
    )
    os.close(handle)
    with_default_mode(temporary)
    try:
        yield Path(temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
