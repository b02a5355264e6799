"""Symbolic links: inside the root kept as links, files outside stored as content, folders
outside refused, dangling links and loops skipped with a warning."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.files import write
from helpers.snapshots import manifest_records, pack_tree, packed

from snakemake_executor_plugin_frozen.snapshot import SnapshotError, extract

# The `root` fixture's tree, inside and outside git (tests/snapshot/conftest.py).
pytestmark = pytest.mark.tree({"src/lib/util.py": "u = 1\n", "config/base.yaml": "a: 1\n"})


def test_links_inside_the_root_are_stored_as_links(root: Path, tmp_path: Path) -> None:
    os.symlink("src/lib/util.py", root / "util.py")
    os.symlink("src/lib", root / "lib")
    os.symlink(root / "config" / "base.yaml", root / "config" / "current.yaml")  # absolute
    result = pack_tree(root)
    records = manifest_records(result)
    assert records["util.py"] == {"path": "util.py", "type": "link", "target": "src/lib/util.py"}
    assert records["lib"]["target"] == "src/lib"
    # An absolute link into the root would point at the live tree once extracted.
    assert records["config/current.yaml"]["target"] == "base.yaml"
    out = tmp_path / "out"
    extract(result.archive, out, result.archive_sha256)
    assert os.readlink(out / "lib") == "src/lib"
    assert (out / "util.py").read_text() == "u = 1\n"
    assert (out / "lib" / "util.py").read_text() == "u = 1\n"
    assert (out / "config" / "current.yaml").read_text() == "a: 1\n"


def test_link_to_a_file_outside_is_stored_as_its_content(root: Path, tmp_path: Path) -> None:
    shared = write(tmp_path, "shared/common.py", "shared = True\n", mode=0o755)
    os.symlink(shared, root / "common.py")
    result = pack_tree(root)
    record = manifest_records(result)["common.py"]
    assert record["type"] == "file"
    assert record["mode"] == "755"
    assert record["link_to"] == str(shared)
    out = tmp_path / "out"
    extract(result.archive, out, result.archive_sha256)
    assert not (out / "common.py").is_symlink()
    assert (out / "common.py").read_text() == "shared = True\n"
    assert os.access(out / "common.py", os.X_OK)


def test_link_to_a_folder_outside_is_an_error_naming_it(root: Path, tmp_path: Path) -> None:
    (tmp_path / "scratch").mkdir()
    os.symlink(tmp_path / "scratch", root / "big")
    with pytest.raises(SnapshotError, match=r"symbolic link big points to the folder .*scratch"):
        pack_tree(root)
    # The message's advice works.
    write(root, ".frozenignore", "/big\n")
    assert "big" not in packed(pack_tree(root))


def test_link_named_like_an_excluded_folder_is_excluded(root: Path, tmp_path: Path) -> None:
    (tmp_path / "scratch").mkdir()
    os.symlink(tmp_path / "scratch", root / "outputs")
    assert "outputs" not in packed(pack_tree(root))


def test_dangling_links_and_loops_are_skipped_with_a_warning(root: Path) -> None:
    os.symlink("does-not-exist.py", root / ".#util.py")  # an editor's lock file
    os.symlink("loop-b", root / "loop-a")
    os.symlink("loop-a", root / "loop-b")
    result = pack_tree(root)
    assert packed(result) == {"src/lib/util.py", "config/base.yaml"}
    assert any(w.startswith("dangling") and ".#util.py" in w for w in result.warnings)
    assert any(w.startswith("symbolic link loops") and "loop-a" in w for w in result.warnings)


def test_link_identity_is_its_target(root: Path) -> None:
    os.symlink("src/lib/util.py", root / "alias.py")
    first = pack_tree(root)
    (root / "alias.py").unlink()
    os.symlink("config/base.yaml", root / "alias.py")
    second = pack_tree(root)
    assert first.id != second.id
    manifest = json.loads(second.manifest.read_text())
    assert {"path": "alias.py", "type": "link", "target": "config/base.yaml"} in manifest["files"]
