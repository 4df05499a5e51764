"""Every code block of ``README.md`` runs as pasted (issue 16: snippets that cannot rot).

The fenced blocks tagged ``bash``, ``python`` or ``toml`` are code; others (``text``: printed
output) are not. An HTML comment on the line just before a fence, invisible in the rendered
README, steers the test, for example ``<!-- test: slow; replace "--n 1000" "--n 64" -->``.
Directives, separated by ``;``:

``replace "OLD" "NEW"``
    Run the block with every OLD replaced by NEW (smaller sizes, fewer epochs).
``slow``
    Run only with ``-m slow`` (blocks that take minutes even when shrunk).
``skip REASON``
    Not run, reported as skipped with the reason (installs, SLURM, a GPU, this test suite).
``schematic``
    A usage line not meant to run as it stands; skipped. The README must say so visibly: the
    word "schematic" in the block's first line (a comment) or in the line of text above.
``load instrument`` / ``load project``
    The loader of a TOML block (default: the project file's).

Bash and Python blocks run in README order in one temporary working folder, so a block uses the
files of the blocks above it; a selected block first runs the earlier blocks not yet run (the
default ones, and the slow ones too when it is slow itself), so default blocks never depend on
slow ones. Bash runs under ``bash -e -o pipefail``; Python as a script file (``python
block.py``), as a user runs it: a LocalCluster then starts worker processes that import it.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
CODE_LANGUAGES = ("bash", "python", "toml")
FENCE = re.compile(r"^```(\w*)\s*$")
DIRECTIVES = re.compile(r"^<!--\s*test:\s*(.*?)\s*-->\s*$")
TIMEOUT_S = {False: 300, True: 1800}  # per block: default, slow


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README and how the test runs it."""

    line: int  # of the opening fence, 1-based
    language: str
    code: str
    slow: bool = False
    skip: str | None = None  # the reason, for skipped and schematic blocks
    loader: str = "project"
    replacements: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return f"L{self.line}-{self.language}"

    @property
    def runs_in_folder(self) -> bool:
        return self.skip is None and self.language in ("bash", "python")

    def script(self) -> str:
        """The code with the replacements made, each checked to apply."""
        code = self.code
        for old, new in self.replacements:
            if old not in code:
                raise AssertionError(f"README line {self.line}: replace {old!r}: not in the block")
            code = code.replace(old, new)
        return code


def _directives(text: str, line: int) -> dict[str, Any]:
    settings: dict[str, Any] = {"replacements": []}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        word, _, rest = part.partition(" ")
        if word == "slow" and not rest:
            settings["slow"] = True
        elif word == "skip" and rest:
            settings["skip"] = rest
        elif word == "schematic" and not rest:
            settings["skip"] = "schematic usage line, not meant to run as it stands"
        elif word == "load" and rest in ("instrument", "project"):
            settings["loader"] = rest
        elif word == "replace" and len(pair := shlex.split(rest)) == 2:
            settings["replacements"].append(tuple(pair))
        else:
            raise ValueError(f"README line {line}: unknown test directive {part!r}")
    settings["replacements"] = tuple(settings["replacements"])
    return settings


def _says_schematic(lines: list[str], fence: int) -> bool:
    """Whether the block's first line or the text just above its marker says "schematic"."""
    above = [line for line in lines[max(0, fence - 4) : fence - 1] if line.strip()]
    return any("schematic" in line.lower() for line in [*above[-1:], lines[fence + 1]])


def read_blocks(path: Path = README) -> list[Block]:
    """The README's code blocks with their test directives, in order."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    k = 0
    while k < len(lines):
        opening = FENCE.match(lines[k])
        if not opening:
            k += 1
            continue
        end = next(j for j in range(k + 1, len(lines)) if lines[j].startswith("```"))
        language = opening.group(1)
        marker = DIRECTIVES.match(lines[k - 1]) if k > 0 else None
        if language in CODE_LANGUAGES:
            settings = _directives(marker.group(1), k) if marker else {}
            code = "\n".join(lines[k + 1 : end]) + "\n"
            if "schematic" in settings.get("skip", "") and not _says_schematic(lines, k):
                raise ValueError(f"README line {k + 1}: a schematic block must say so visibly")
            blocks.append(Block(line=k + 1, language=language, code=code, **settings))
        elif marker:
            raise ValueError(f"README line {k}: test directive before a {language!r} block")
        k = end + 1
    return blocks


BLOCKS = read_blocks()


def _param(block: Block) -> Any:
    marks = [pytest.mark.slow] if block.slow else []
    return pytest.param(block, marks=marks, id=block.name)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> tuple[Path, dict[int, bool]]:
    """The working folder the blocks share, and which blocks ran there (line -> passed)."""
    return tmp_path_factory.mktemp("readme"), {}


def _execute(block: Block, folder: Path) -> subprocess.CompletedProcess:
    script = folder / f"block_{block.line}.{'py' if block.language == 'python' else 'sh'}"
    script.write_text(block.script())
    command = (
        [sys.executable, script.name]
        if block.language == "python"
        else ["bash", "-e", "-o", "pipefail", script.name]
    )
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True,
        timeout=TIMEOUT_S[block.slow],
    )  # fmt: skip


def _run_in_folder(block: Block, folder: Path, ran: dict[int, bool]) -> None:
    """Run the earlier blocks it may depend on, then the block; fail with its output."""
    for earlier in BLOCKS:
        if earlier.line >= block.line:
            break
        if not earlier.runs_in_folder or earlier.line in ran or (earlier.slow and not block.slow):
            continue
        ran[earlier.line] = _execute(earlier, folder).returncode == 0
    failed = [line for line, passed in ran.items() if not passed and line < block.line]
    if failed:
        pytest.fail(f"README block(s) at line(s) {failed}, run before this one, failed")
    result = _execute(block, folder)
    ran[block.line] = result.returncode == 0
    if result.returncode != 0:
        pytest.fail(
            f"README block at line {block.line} exited with {result.returncode}:\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
        )


def _default_throughput_files(document: Mapping[str, Any], folder: Path) -> None:
    """Write each missing ``throughput_file`` as the packaged model curve of its band."""
    from csst_photoz.instrument import Instrument

    default = Instrument.default()
    for band, settings in document.get("bands", {}).items():
        name = settings.get("throughput_file")
        if name is not None and not (folder / name).exists():
            curve = default.bandpass(band)
            np.savetxt(
                folder / name,
                np.column_stack([curve.wavelength_angstrom, curve.throughput]),
                header="wavelength [Angstrom], throughput",
            )


def _check_values(loaded: Any, document: Mapping[str, Any], where: str) -> None:
    """Every number and boolean of the TOML document is the loaded configuration's value."""
    for key, value in document.items():
        current = loaded[key] if isinstance(loaded, Mapping) else getattr(loaded, key)
        if isinstance(value, Mapping):
            _check_values(current, value, f"{where}.{key}")
        elif isinstance(value, bool | int | float):
            assert current == value, f"{where}.{key}: loaded {current!r}, the README has {value!r}"


def _load_toml(block: Block, folder: Path) -> None:
    path = folder / f"block_{block.line}.toml"
    path.write_text(block.script())
    document = tomllib.loads(block.script())
    if block.loader == "instrument":
        from csst_photoz.instrument import Instrument

        _default_throughput_files(document, folder)
        instrument = Instrument.from_toml(path)
        instrument.bandpasses  # noqa: B018 - reads every throughput file
        _check_values(instrument.config, document, "instrument")
    else:
        from csst_photoz.project_config import load_project_config

        _check_values(load_project_config(path), document, "project")


def test_readme_has_code_blocks_and_every_directive_is_understood():
    assert {block.language for block in BLOCKS} == set(CODE_LANGUAGES)
    for block in BLOCKS:
        block.script()  # every replacement applies


def test_directives_steer_the_blocks_and_text_blocks_are_not_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        '<!-- test: slow; replace "--n 1000" "--n 4" -->\n```bash\nrun --n 1000\n```\n'
        "```text\nprinted output\n```\n"
        "Usage (schematic):\n\n<!-- test: schematic -->\n```bash\ntool [--flag]\n```\n"
        "<!-- test: load instrument -->\n```toml\nx = 1\n```\n"
        "<!-- test: skip needs SLURM -->\n```python\nprint()\n```\n"
    )
    bash, schematic, toml, python = read_blocks(page)
    assert (bash.line, bash.slow, bash.script()) == (2, True, "run --n 4\n")
    assert schematic.skip.startswith("schematic") and not schematic.runs_in_folder
    assert (toml.loader, toml.slow, toml.skip) == ("instrument", False, None)
    assert python.skip == "needs SLURM"


@pytest.mark.parametrize(
    "text, message",
    [
        ("<!-- test: slowly -->\n```bash\nx\n```\n", "unknown test directive 'slowly'"),
        ("Usage:\n\n<!-- test: schematic -->\n```bash\nx [-y]\n```\n", "say so visibly"),
        ("<!-- test: slow -->\n```text\nx\n```\n", "before a 'text' block"),
    ],
    ids=["unknown", "unmarked schematic", "not code"],
)
def test_bad_directives_are_errors(tmp_path, text, message):
    page = tmp_path / "page.md"
    page.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_blocks(page)


def test_a_replacement_that_no_longer_applies_is_an_error():
    block = Block(line=3, language="bash", code="run --n 10\n", replacements=(("--n 1", "x"),))
    assert block.script() == "run x0\n"
    stale = Block(line=3, language="bash", code="run\n", replacements=(("--n 1", "x"),))
    with pytest.raises(AssertionError, match="line 3: replace '--n 1': not in the block"):
        stale.script()


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_readme_block_runs(block: Block, workdir):
    if block.skip is not None:
        pytest.skip(f"README line {block.line}: {block.skip}")
    folder, ran = workdir
    if block.language == "toml":
        _load_toml(block, folder)
    else:
        _run_in_folder(block, folder, ran)
