"""Snapshot ids by any unique prefix, as git resolves abbreviated object names."""

from __future__ import annotations

import string
from collections.abc import Iterable

from .errors import RecordError

MIN_PREFIX = 4  # as git: shorter abbreviations are refused, not guessed
SHORT = 12  # the length shown in tables and used for the rule-log copies' names
_HEX = frozenset(string.hexdigits.lower())


def looks_like_id(text: str) -> bool:
    return len(text) >= MIN_PREFIX and set(text.lower()) <= _HEX


def resolve(prefix: str, ids: Iterable[str], where: str) -> str:
    """The one id of ``ids`` starting with ``prefix``; ``where`` names the ids' origin in
    the messages (exit 2 for an unknown, short or ambiguous prefix)."""
    wanted = prefix.lower()
    if not looks_like_id(wanted):
        raise RecordError(
            f"{prefix!r} is not a snapshot id: give at least {MIN_PREFIX} hexadecimal digits "
            "of one (snakemake-frozen list shows them)"
        )
    matches = sorted(i for i in set(ids) if i.startswith(wanted))
    if not matches:
        raise RecordError(f"no snapshot {prefix} in {where} (snakemake-frozen list shows them)")
    if len(matches) > 1:
        shown = "\n".join(f"  {m}" for m in matches)
        raise RecordError(
            f"snapshot id {prefix} is ambiguous in {where}; it starts {len(matches)} ids:\n"
            f"{shown}\ngive more digits"
        )
    return matches[0]
