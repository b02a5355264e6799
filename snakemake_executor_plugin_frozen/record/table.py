"""Compact aligned tables and the few value formats the human output shares."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from snakemake_executor_plugin_frozen.shellwords import visible


def render(headers: Sequence[str], rows: Sequence[Sequence[object]], right: str = "") -> str:
    """Columns two spaces apart, each as wide as its widest cell; the columns whose
    header is in ``right`` (space-separated names) are right-aligned, as numbers are. A
    cell's characters a terminal would act on (escape sequences, line breaks: wildcard values
    and file names may hold them) are shown escaped (``shellwords.visible``)."""
    right_aligned = set(right.split())
    cells = [list(headers), *([visible(str(c)) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [
            cell.rjust(width) if header in right_aligned else cell.ljust(width)
            for cell, width, header in zip(row, widths, headers, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def size(n: int) -> str:
    if n < 1000:
        return f"{n} B"
    if n < 1e6:
        return f"{n / 1e3:.1f} kB"
    return f"{n / 1e6:.1f} MB" if n < 1e9 else f"{n / 1e9:.1f} GB"


def parse_time(text: object) -> float | None:
    """Seconds since the epoch of an ISO 8601 time (journal and manifest write UTC with
    "Z"); None when ``text`` is none."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def moment(seconds: float | None) -> str:
    """A time for a table: UTC to the minute ("2026-12-02 00:56Z"), "-" when unknown."""
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%MZ")


def iso(seconds: float | None) -> str | None:
    """A time for JSON output: ISO 8601 UTC, as the journal writes it."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


COMMIT_SHOWN = 10  # hexadecimal digits of a git commit in tables


def commit_text(commit: str | None, dirty: bool | None) -> str:
    """A git commit with its dirty flag ("1a2b3c4d5e dirty"), "(no git)" outside git."""
    if dirty is None:
        return "(no git)"
    return f"{(commit or '(no commit)')[:COMMIT_SHOWN]}{' dirty' if dirty else ''}"
