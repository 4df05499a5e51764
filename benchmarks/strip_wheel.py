"""Strip the debug symbols from the shared libraries of a wheel, in place.

Usage: python benchmarks/strip_wheel.py WHEEL [WHEEL ...]

Each ``*.so`` in the wheel is run through ``strip --strip-unneeded`` (its dynamic symbols,
which Python and the loader use, stay), and its ``RECORD`` line gets the new SHA-256 and size,
so pip installs the repacked wheel as it would the original. Used by
``benchmarks/prepare_device_wheels.sh`` to fit the GPU check's wheels into the 64 MiB that
travel with the checkout (GalSim's extension: 199 MB with symbols, 4 MB without).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def strip_wheel(wheel: Path) -> tuple[int, int]:
    """Strip every shared library in ``wheel`` (rewritten in place).

    Parameters
    ----------
    wheel
        A ``.whl`` file.

    Returns
    -------
    before, after
        The wheel's size in bytes before and after.

    Raises
    ------
    FileNotFoundError
        If ``strip`` (binutils) is not installed.
    ValueError
        If the wheel has no ``RECORD`` file.
    """
    if shutil.which("strip") is None:
        raise FileNotFoundError("strip (binutils) is needed to strip a wheel's libraries")
    before = wheel.stat().st_size
    with zipfile.ZipFile(wheel) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    records = [info.filename for info, _ in entries if info.filename.endswith(".dist-info/RECORD")]
    if len(records) != 1:
        raise ValueError(f"{wheel}: expected one .dist-info/RECORD, found {records}")
    changed: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory() as work:
        for info, data in entries:
            if not info.filename.endswith(".so") and ".so." not in info.filename:
                continue
            path = Path(work) / "lib.so"
            path.write_bytes(data)
            subprocess.run(["strip", "--strip-unneeded", str(path)], check=True)
            changed[info.filename] = path.read_bytes()
    lines = []
    text = next(data for info, data in entries if info.filename == records[0]).decode()
    for line in text.splitlines():
        name = line.split(",", 1)[0]
        if name in changed:
            line = f"{name},{_record_hash(changed[name])},{len(changed[name])}"
        lines.append(line)
    record = ("\n".join(lines) + "\n").encode()
    temporary = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in entries:
            if info.filename == records[0]:
                data = record
            target.writestr(info, changed.get(info.filename, data), zipfile.ZIP_DEFLATED)
    temporary.replace(wheel)
    return before, wheel.stat().st_size


def main(argv: list[str] | None = None) -> None:
    for name in argv if argv is not None else sys.argv[1:]:
        before, after = strip_wheel(Path(name))
        print(f"{name}: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
