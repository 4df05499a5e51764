"""Writing a benchmark's figures: JSON for machines, Markdown for people, both in one folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_results(out: Path, stem: str, result: dict[str, Any], markdown: str) -> None:
    """Write ``<out>/<stem>.json`` and ``<out>/<stem>.md`` and print the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown)
    print(markdown)
