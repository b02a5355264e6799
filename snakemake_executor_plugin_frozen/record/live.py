"""``live``: the code root as it is now, selected by the rules a snapshot was taken with.

The tree is packed into a temporary store with the selection settings its manifest records
(apples to apples), the files it named explicitly that still exist, and as data every
output the journal names and the data paths the manifest lists, so that outputs written
since are not mistaken for new code.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from snakemake_executor_plugin_frozen.snapshot import (
    SelectionSettings,
    SnapshotError,
    pack,
    read_manifest,
)

from .errors import RecordError
from .snapshots import Snapshot


def settings_of(manifest: dict, data: Iterable[Path]) -> SelectionSettings:
    """The selection settings ``manifest`` records (never refusing for size: the tree is
    only compared), with the outputs ``data`` (absolute) left out as data."""
    selection = manifest.get("selection") or {}
    root = Path(manifest["root"])
    recorded_data = [root / p.rstrip("/") for p in selection.get("data_excluded_paths", [])]
    defaults = SelectionSettings()
    return SelectionSettings(
        exclude_folders=tuple(selection.get("exclude_folders", defaults.exclude_folders)),
        code_suffixes=tuple(selection.get("code_suffixes", defaults.code_suffixes)),
        exclude=tuple(selection.get("exclude", ())),
        allow_secrets=tuple(selection.get("allow_secrets", ())),
        max_size_mb=selection.get("max_size_mb", defaults.max_size_mb),
        skip_size_check=True,
        extra_excluded_dirs=tuple(Path(d) for d in selection.get("extra_excluded_dirs", [])),
        data=(*data, *recorded_data),
    )


def live_snapshot(base: Snapshot, data: Iterable[Path], store: Path) -> Snapshot:
    """The code root of ``base`` now, packed into ``store`` (a temporary folder)."""
    manifest = base.manifest
    root = Path(manifest["root"])
    if not root.is_dir():
        raise RecordError(
            f"the code root {root} of snapshot {base.id[:12]} is no folder any more: there is "
            "no live tree to compare with"
        )
    named = (manifest.get("selection") or {}).get("explicit", [])
    explicit = [p for p in (Path(os.path.normpath(root / rel)) for rel in named) if p.exists()]
    try:
        result = pack(
            root, store, settings_of(manifest, data), explicit=explicit, level=1, allow_outside=True
        )
        live = read_manifest(result.manifest)
    except SnapshotError as e:
        raise RecordError(f"cannot select the live tree {root}: {e}") from e
    return Snapshot(result.id, live, result.archive, f"live {root}")
