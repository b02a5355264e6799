"""What changed in the live tree since a snapshot, told without reading unchanged files."""

import os
import time
from pathlib import Path

from helpers.snapshots import make_repo, pack_tree

from snakemake_executor_plugin_frozen.snapshot import read_manifest
from snakemake_executor_plugin_frozen.snapshot.drift import edited_since


def test_edited_and_deleted_files_not_touched_or_unchanged_ones(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a", "b.py": "b", "c.py": "c", "d.py": "d"})
    taken = time.time()
    result = pack_tree(repo)
    later = taken + 10
    (repo / "a.py").write_text("edited")
    (repo / "b.py").write_text("b")  # rewritten with the same content
    (repo / "c.py").unlink()
    for name in ("a.py", "b.py"):
        os.utime(repo / name, (later, later))
    assert edited_since(read_manifest(result.manifest), taken + 5) == ["a.py", "c.py"]
    # Files not modified since then are not even read: none is edited before the snapshot.
    assert edited_since(read_manifest(result.manifest), later + 1) == ["c.py"]
