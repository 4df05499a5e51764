"""Atomic file replacement: write to a temporary name beside the target, then rename."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_destination"]


def _process_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# files get the permissions a plain open() would give them (mkstemp makes them private)
_FILE_MODE = 0o666 & ~_process_umask()


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
        prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
    )
    os.close(handle)
    os.chmod(temporary, _FILE_MODE)
    try:
        yield Path(temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
