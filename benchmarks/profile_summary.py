"""Summarise a py-spy profile (collapsed stacks) of a tile task: where the time goes.

Usage: python benchmarks/profile_summary.py PROFILE.txt [--within process_tile]
       [--without _warm_up] [--top 25] [--out benchmarks/results/profile_tile_cpu.md]

``PROFILE.txt`` is ``py-spy record --format raw`` output (one ``frame;frame;... count`` line
per distinct stack). Only samples whose stack passes through a frame named ``--within`` and
none named ``--without`` are counted (defaults: the tile task, but not the warm-up task of
``profile_tile.py``, so imports and set-up are left out). Prints, as Markdown:

* the share of samples *inside* each function of this project (inclusive: the function or
  anything it calls), for the ``--top`` largest;
* the share of samples whose innermost frame of this project is each function (its own code
  plus library calls it makes directly, e.g. a NumPy ufunc), for the ``--top`` largest.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<name>.+?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")
_OURS = ("csst_photoz/",)


def parse(path: Path) -> list[tuple[list[tuple[str, str]], int]]:
    """(stack as [(function, file)], samples) per line of a collapsed-stack file."""
    stacks = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        frames_text, _, count = line.rpartition(" ")
        frames = []
        for frame in frames_text.split(";"):
            match = _FRAME.match(frame)
            frames.append((match["name"], match["file"]) if match else (frame, ""))
        stacks.append((frames, int(count)))
    return stacks


def summarise(stacks, within: str, without: str = "") -> tuple[int, Counter, Counter]:
    """Total samples within ``within`` (and not ``without``), inclusive and innermost-own
    counts per function."""
    total, inclusive, innermost = 0, Counter(), Counter()
    for frames, count in stacks:
        names = [name for name, _ in frames]
        if within not in names or (without and without in names):
            continue
        total += count
        ours = [
            f"{name} ({file.split('csst_photoz/')[-1]})"
            for name, file in frames[names.index(within) :]
            if any(marker in file for marker in _OURS)
        ]
        for label in set(ours):
            inclusive[label] += count
        if ours:
            innermost[ours[-1]] += count
    return total, inclusive, innermost


def to_markdown(source: Path, within: str, total: int, inclusive, innermost, top: int) -> str:
    lines = [
        f"# Where a tile task spends its time (py-spy, `{source.name}`)",
        "",
        f"{total:,} samples inside `{within}` (warm-up left out).",
        "",
        "| function (inclusive) | share |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {count / total:.1%} |" for name, count in inclusive.most_common(top)]
    lines += ["", "| innermost function of this project | share |", "| --- | --- |"]
    lines += [f"| {name} | {count / total:.1%} |" for name, count in innermost.most_common(top)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path, help="py-spy --format raw output")
    parser.add_argument("--within", default="process_tile", help="count samples under this")
    parser.add_argument("--without", default="_warm_up", help="but not under this")
    parser.add_argument("--top", type=int, default=25, help="rows per table")
    parser.add_argument("--out", type=Path, help="also write the Markdown here")
    args = parser.parse_args(argv)
    total, inclusive, innermost = summarise(parse(args.profile), args.within, args.without)
    if total == 0:
        raise SystemExit(f"{args.profile}: no sample passes through {args.within!r}")
    markdown = to_markdown(args.profile, args.within, total, inclusive, innermost, args.top)
    print(markdown)
    if args.out is not None:
        args.out.write_text(markdown)


if __name__ == "__main__":
    main()
