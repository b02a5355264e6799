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
    Manifest,
    SelectionSettings,
    SnapshotError,
    pack,
    read_manifest,
)
from snakemake_executor_plugin_frozen.snapshot.manifest import SelectionRecord

from .errors import RecordError
from .snapshots import Snapshot


def settings_of(manifest: Manifest, data: Iterable[Path]) -> SelectionSettings:
    """The selection settings ``manifest`` records (the defaults for what it does not
    record; never refusing for size: the tree is only compared), with the outputs ``data``
    (absolute) left out as data. The record holds no allow-secrets patterns: the live tree
    leaves out every file that looks like a credential."""
    s = manifest.selection or SelectionRecord()
    root = Path(manifest.code_root())
    recorded_data = [root / p.rstrip("/") for p in s.data_excluded_paths or ()]
    defaults = SelectionSettings()
    return SelectionSettings(
        exclude_folders=defaults.exclude_folders
        if s.exclude_folders is None
        else s.exclude_folders,
        code_suffixes=defaults.code_suffixes if s.code_suffixes is None else s.code_suffixes,
        exclude=s.exclude or (),
        max_size_mb=defaults.max_size_mb if s.max_size_mb is None else s.max_size_mb,
        skip_size_check=True,
        extra_excluded_dirs=tuple(Path(d) for d in s.extra_excluded_dirs or ()),
        data=(*data, *recorded_data),
    )


def live_snapshot(base: Snapshot, data: Iterable[Path], store: Path) -> Snapshot:
    """The code root of ``base`` now, packed into ``store`` (a temporary folder)."""
    root = Path(base.root)
    if not root.is_dir():
        raise RecordError(
            f"the code root {root} of snapshot {base.id[:12]} is no folder any more: there is "
            "no live tree to compare with"
        )
    selection = base.manifest.selection
    named = (selection.explicit if selection else None) or ()
    explicit = [p for p in (Path(os.path.normpath(root / rel)) for rel in named) if p.exists()]
    try:
        result = pack(
            root,
            store,
            settings_of(base.manifest, data),
            explicit=explicit,
            level=1,
            allow_outside=True,
        )
        live = read_manifest(result.manifest)
    except SnapshotError as e:
        raise RecordError(f"cannot select the live tree {root}: {e}") from e
    return Snapshot(result.id, live, result.archive, f"live {root}")
