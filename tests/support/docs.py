"""Code blocks read out of the Markdown docs, so tests run exactly what users copy.

A documented query is a bold name line followed by a fenced block: ``**Lag per consumer
group**`` then a block fenced with three backticks and ``promql``. Tests look the blocks up by
those names, so a query cannot be changed in the docs without the change being tested. A page
covers several subjects, each tested by its own module: ``sections`` picks the ``## `` sections
that one module checks.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
METRICS_DOC = ROOT / "docs" / "metrics.md"

_FENCE = re.compile(r"^```(?P<language>\S*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
_NAME = re.compile(r"^\*\*(?P<name>[^*]+)\*\*$")
_SECTION = re.compile(r"^## (?P<title>.+)$", re.MULTILINE)


def _sections(text: str, titles: Collection[str]) -> str:
    """The ``## `` sections of ``text`` titled as in ``titles``, in order, headings included."""
    starts = list(_SECTION.finditer(text))
    ends = [match.start() for match in starts[1:]] + [len(text)]
    return "".join(
        text[match.start() : end] for match, end in zip(starts, ends) if match["title"] in titles
    )


def _read(path: Path, sections: Collection[str] | None) -> str:
    text = path.read_text(encoding="utf-8")
    return text if sections is None else _sections(text, sections)


def named_blocks(
    path: Path, language: str, sections: Collection[str] | None = None
) -> dict[str, str]:
    """Every ``language`` block of ``path`` (of its ``sections`` only, when given), by the bold
    name on the last non-blank line before it.

    Raises ValueError for a block of that language with no name, or a name used twice: either
    would leave a block that no test looks up.
    """
    text = _read(path, sections)
    blocks: dict[str, str] = {}
    for fence in _FENCE.finditer(text):
        if fence["language"] != language:
            continue
        before = text[: fence.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        named = _NAME.match(before)
        line = text.count("\n", 0, fence.start()) + 1
        if named is None:
            raise ValueError(f"{path.name}:{line}: a {language} block without a bold name line")
        name = named["name"].strip()
        if name in blocks:
            raise ValueError(f"{path.name}:{line}: a second {language} block named {name!r}")
        blocks[name] = fence["body"].strip()
    return blocks


def documented_series(path: Path, sections: Collection[str] | None = None) -> dict[str, list[str]]:
    """The Prometheus series each metric is exported as, from the tables of ``path`` (of its
    ``sections`` only, when given) whose rows start with the OpenTelemetry name: the third
    column names the series, a histogram's as ``x_bucket``, ``_sum``, ``_count``."""
    series: dict[str, list[str]] = {}
    for line in _read(path, sections).splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        first, *suffixes = re.findall(r"`([^`]+)`", cells[2])
        base = first.removesuffix("_bucket")
        series[cells[0].strip("`")] = [first, *(base + suffix for suffix in suffixes)]
    return series
