"""Which folders of the code a job's view binds whole, decided once on the login node.

A folder is bound whole (see node/view.py) when, at submission, it held nothing but the
snapshot's files: then a file deleted from it since is back in the job's view and a file added
since is not there. A folder that also holds anything else (data, outputs, logs, a gitignored
file the snapshot left out, a secret, `.git`, `.snakemake`) must stay live, so only the
snapshot's own files in it are bound, one by one. Python's byte-code caches (`__pycache__`)
are no reason to keep a folder live: a job never needs them.

Decided at submission rather than on the node, because by the time a job starts the live
tree may have gained files that would make a folder look like data.
"""

import os
import posixpath
from collections.abc import Iterable
from pathlib import Path

_CACHES = frozenset({"__pycache__"})


def _ancestors(path: str) -> Iterable[str]:
    while path:
        path = posixpath.dirname(path)
        yield path


def whole_folders(live_root: Path, files: Iterable[str], data: Iterable[Path]) -> list[str]:
    """The outermost folders below `live_root` (posix paths relative to it, "" for itself)
    that hold only snapshot files: `files` are the snapshot's paths relative to `live_root`,
    `data` the paths the workflow writes (outputs, logs, benchmarks, the plugin's own
    folders), which no whole folder may hold, whether they exist yet or not."""
    snapshot = set(files)
    candidates = {folder for path in snapshot for folder in _ancestors(path)}
    live_data: set[str] = set()
    for path in data:
        if live_root.is_relative_to(path):
            return []  # the whole tree lies in written data: its files are bound one by one
        if path.is_relative_to(live_root):
            relative = path.relative_to(live_root).as_posix()
            live_data.update([relative, *_ancestors(relative)])
    whole: set[str] = set()
    # Deepest first: a folder's verdict needs its subfolders' verdicts.
    for folder in sorted(candidates - live_data, key=lambda f: -f.count("/") - bool(f)):
        if _holds_only(live_root, folder, snapshot, whole):
            whole.add(folder)
    return sorted(f for f in whole if not any(a in whole for a in _ancestors(f)))


def _holds_only(live_root: Path, folder: str, snapshot: set[str], whole: set[str]) -> bool:
    try:
        with os.scandir(live_root / folder) as listing:
            names = [entry.name for entry in listing]
    except OSError:
        return False
    for name in names:
        path = f"{folder}/{name}" if folder else name
        if path not in snapshot and path not in whole and name not in _CACHES:
            return False
    return True
