"""No copy is readable by more people than the files it holds, and the store repairs what
was damaged instead of serving it."""

import importlib
import os
import time
from pathlib import Path

import pytest
from helpers.files import mode, write
from helpers.snapshots import make_repo, pack_tree

from snakemake_executor_plugin_frozen.snapshot.hashing import file_sha256

# The module (the package exports its function of the same name).
pack_module = importlib.import_module("snakemake_executor_plugin_frozen.snapshot.pack")


def test_snapshot_files_are_read_only_and_as_private_as_the_most_private_file(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a"})
    (repo / "a.py").chmod(0o644)
    public = pack_tree(repo)
    assert (mode(public.archive), mode(public.manifest)) == (0o444, 0o444)
    stat_cache = next(public.archive.parent.glob("*cache*"))
    assert mode(stat_cache) == 0o600  # paths and hashes of the whole tree

    write(repo, "group_only.py", "g", mode=0o640)
    grouped = pack_tree(repo)
    assert (mode(grouped.archive), mode(grouped.manifest)) == (0o440, 0o440)

    # Made private after it was stored: same code, same id, and the stored copy follows.
    (repo / "group_only.py").chmod(0o600)
    private = pack_tree(repo)
    assert private.id == grouped.id and not private.created
    assert (mode(private.archive), mode(private.manifest)) == (0o400, 0o400)
    # ... and never widens again.
    (repo / "group_only.py").chmod(0o644)
    assert mode(pack_tree(repo).archive) == 0o400


def test_a_damaged_store_entry_is_made_again_not_served(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.py": "a" * 10_000})
    first = pack_tree(repo)
    data = bytearray(first.archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    first.archive.chmod(0o644)  # a careless edit of the "record" in the rule logs
    first.archive.write_bytes(bytes(data))
    again = pack_tree(repo)
    assert again.id == first.id and again.created
    assert any("did not hold this tree's code" in w for w in again.warnings)
    assert file_sha256(again.archive) == again.archive_sha256
    assert mode(again.archive) == 0o444


def test_the_stored_archive_is_read_again_once_its_stat_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack knows the archive it wrote, and one it found intact, by their stat: later
    packs read the archive again (to find it intact) only once that stat changed."""
    repo = make_repo(tmp_path / "repo", {"a.py": "a" * 10_000})
    first = pack_tree(repo)
    hashed = []
    real = pack_module.earn
    monkeypatch.setattr(pack_module, "earn", lambda *a: hashed.append(a) or real(*a))
    assert not pack_tree(repo).created
    assert hashed == []  # known since it was written
    for check in first.archive.parent.glob("statcache-*.archive.json"):
        check.unlink()
    time.sleep(0.05)  # the archive is no longer in the clock tick of the reading
    pack_tree(repo)
    pack_tree(repo)
    assert len(hashed) == 1  # read once, found intact, known since
    data = bytearray(first.archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    before = first.archive.stat()
    first.archive.chmod(0o644)
    first.archive.write_bytes(bytes(data))  # same size, and the mtime put back
    os.utime(first.archive, ns=(before.st_atime_ns, before.st_mtime_ns))
    again = pack_tree(repo)
    assert len(hashed) == 2
    assert again.id == first.id and again.created
    assert any("did not hold this tree's code" in w for w in again.warnings)
    assert file_sha256(again.archive) == again.archive_sha256
