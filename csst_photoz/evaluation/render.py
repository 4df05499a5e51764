"""Rendering of the evaluation report as Markdown and HTML from one list of blocks.

The report is built once as a list of blocks (headings, paragraphs, tables of strings, images)
by `report_blocks`; `to_markdown` and `to_html` only lay them out, so both documents always
hold the same numbers.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from astropy.table import Table

from csst_photoz.metrics import expected_coverage

__all__ = [
    "Heading",
    "Images",
    "Paragraph",
    "TableBlock",
    "overall_markdown",
    "overall_rows",
    "report_blocks",
    "to_html",
    "to_markdown",
]

_DASH = "–"


@dataclass(frozen=True)
class Heading:
    """A section title of the given level (1 is the document title)."""

    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text."""

    text: str


@dataclass(frozen=True)
class TableBlock:
    """A table of already formatted cells."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Images:
    """Figures, as ``(caption, file name relative to the report)`` pairs."""

    items: tuple[tuple[str, str], ...]


Block = Heading | Paragraph | TableBlock | Images


def _fmt(value: object, spec: str) -> str:
    """Format a number with ``spec``; a trailing ``%`` shows a fraction as percent."""
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return _DASH
    if spec == "d":
        return str(int(value))  # type: ignore[call-overload]
    if spec.endswith("%"):
        return f"{100.0 * float(value):{spec[:-1]}}%"  # type: ignore[arg-type]
    return f"{float(value):{spec}}"  # type: ignore[arg-type]


#: (header, key in a model's metrics, format) of the overall table after the model's name.
_OVERALL_COLUMNS = (
    ("N", "n", "d"),
    ("missing", "n_missing", "d"),
    ("σ_NMAD", "sigma_nmad", ".4f"),
    ("η", "outlier_fraction", ".2f%"),
    ("bias", "bias", "+.4f"),
    (f"cov68 (ideal {expected_coverage(1):.3f})", "coverage_68", ".3f"),
    (f"cov95 (ideal {expected_coverage(2):.3f})", "coverage_95", ".3f"),
    ("CRPS", "crps", ".4f"),
    ("PIT KS", "pit_ks", ".3f"),
    ("paper σ_NMAD", "paper_sigma_nmad", ".3f"),
    ("paper η", "paper_outlier_fraction", ".2f%"),
)
_BINNED_METRICS = (
    ("σ_NMAD", "sigma_nmad", ".4f"),
    ("outlier fraction η", "outlier_fraction", ".2f%"),
    ("bias", "bias", "+.4f"),
)


def overall_rows(metrics: Mapping[str, Mapping[str, object]]) -> TableBlock:
    """The overall table: one row per model, with the paper's numbers where they apply."""
    rows = []
    for name, entry in metrics.items():
        paper = entry.get("paper")
        paper = paper if isinstance(paper, Mapping) else {}
        values = {
            **entry,
            "paper_sigma_nmad": paper.get("sigma_nmad"),
            "paper_outlier_fraction": paper.get("outlier_fraction"),
        }
        rows.append((name, *(_fmt(values.get(key), spec) for _, key, spec in _OVERALL_COLUMNS)))
    header = ("model", *(column[0] for column in _OVERALL_COLUMNS))
    return TableBlock(header, tuple(rows))


def _binned_tables(tables: Mapping[str, Table]) -> list[Block]:
    """Per metric, a table of bins (rows) by models (columns)."""
    if not tables:
        return []
    first = next(iter(tables.values()))
    bins = [
        f"{low:g}–{high:g}" for low, high in zip(first["bin_low"], first["bin_high"], strict=True)
    ]
    counts = np.max([np.asarray(table["n"]) for table in tables.values()], axis=0)
    blocks: list[Block] = []
    for title, key, spec in _BINNED_METRICS:
        rows = tuple(
            (label, str(int(count)), *(_fmt(table[key][i], spec) for table in tables.values()))
            for i, (label, count) in enumerate(zip(bins, counts, strict=True))
        )
        blocks += [Heading(3, title), TableBlock(("bin", "N", *tables), rows)]
    return blocks


def report_blocks(
    metrics: Mapping[str, Mapping[str, object]],
    binned: Mapping[str, Mapping[str, Table]],
    figures: Sequence[tuple[str, str]],
    *,
    n_galaxies: int,
    threshold: float,
    training_size: int | None,
) -> list[Block]:
    """The whole report as blocks.

    Parameters
    ----------
    metrics : mapping
        Per model, its overall metrics (`csst_photoz.evaluation.EvaluationReport.metrics`).
    binned : mapping
        ``{quantity label: {model: binned_metrics table}}``; empty mappings are skipped.
    figures : sequence of (str, str)
        ``(caption, file name)`` of each figure.
    n_galaxies : int
        Galaxies evaluated.
    threshold : float
        Outlier threshold.
    training_size : int or None
        Row of the paper's table used, None if none.

    Returns
    -------
    list
        `Heading`, `Paragraph`, `TableBlock` and `Images` blocks in document order.

    """
    paper = (
        f"Paper columns: Zhou et al. (2022), {training_size:,} training galaxies, for models "
        "named after one of its networks (MLP, CNN, Hybrid, Hybrid-transfer)."
        if training_size is not None
        else "Paper columns: not requested."
    )
    blocks: list[Block] = [
        Heading(1, "Photo-z evaluation"),
        Paragraph(
            f"{n_galaxies} galaxies. Δz = z_phot - z_true; σ_NMAD = 1.48 median(|Δz - "
            f"median Δz| / (1 + z)); η: share with |Δz| / (1 + z) > {threshold:g}; bias: median "
            "Δz / (1 + z). For models with a Gaussian uncertainty σ: share of galaxies within "
            "±1σ (cov68) and ±2σ (cov95), mean CRPS (redshift units, lower is better) and the "
            "Kolmogorov-Smirnov distance of the PIT values to the uniform law (PIT KS, 0 is "
            "flat). Missing predictions are left out and counted."
        ),
        Paragraph(paper),
        Heading(2, "Overall"),
        overall_rows(metrics),
    ]
    if figures:
        blocks += [Heading(2, "Figures"), Images(tuple(figures))]
    for label, tables in binned.items():
        if tables:
            blocks += [Heading(2, f"Metrics in bins of {label}"), *_binned_tables(tables)]
    return blocks


def _markdown_table(table: TableBlock) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    rows = [line(table.header), "|" + "---|" * len(table.header)]
    return "\n".join(rows + [line(row) for row in table.rows])


def to_markdown(blocks: Sequence[Block]) -> str:
    """Lay the blocks out as a Markdown document."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append("#" * block.level + " " + block.text)
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, TableBlock):
            parts.append(_markdown_table(block))
        else:
            parts.append("\n".join(f"![{caption}]({name})" for caption, name in block.items))
    return "\n\n".join(parts) + "\n"


_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1400px}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "td,th{border:1px solid #bbb;padding:0.2em 0.6em;text-align:right}"
    "th{background:#eee}td:first-child{text-align:left}"
    ".figures{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}img{max-width:560px}"
)


def to_html(blocks: Sequence[Block], *, title: str = "Photo-z evaluation") -> str:
    """Lay the blocks out as a standalone HTML page (figures by relative link)."""
    escape = html.escape
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{escape(block.text)}</p>")
        elif isinstance(block, TableBlock):
            head = "".join(f"<th>{escape(cell)}</th>" for cell in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
                for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            figures = "".join(
                f"<figure><img src='{escape(name)}' alt='{escape(caption)}'>"
                f"<figcaption>{escape(caption)}</figcaption></figure>"
                for caption, name in block.items
            )
            body.append(f"<div class='figures'>{figures}</div>")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def overall_markdown(metrics: Mapping[str, Mapping[str, object]]) -> str:
    """The overall metrics as a Markdown table (one row per model, paper columns included).

    Parameters
    ----------
    metrics : mapping
        Per model, the entries of `csst_photoz.evaluation.EvaluationReport.metrics`.

    Returns
    -------
    str
        The table.

    """
    return _markdown_table(overall_rows(metrics))
