"""Snapshot ids, the content-addressed store, the stat cache and files that change."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from helpers.files import write
from helpers.snapshots import OpenCounter, git, pack_tree, packed

from snakemake_executor_plugin_frozen.snapshot import PackResult, SnapshotError, read_manifest
from snakemake_executor_plugin_frozen.snapshot.entries import FILE, Entry
from snakemake_executor_plugin_frozen.snapshot.hashing import StatCache, snapshot_id
from snakemake_executor_plugin_frozen.snapshot.store import Store

FILES = {
    "Snakefile": "rule all:\n    input: 'x'\n",
    "scripts/run.py": "print('run')\n" * 50,
    "config/config.yaml": "samples: [a, b]\n",
    "data/table.csv": "1,2,3\n" * 1000,
}


# The `repo` fixture's tree (tests/conftest.py), settled: no file counts as modified in the
# same tick of the coarse filesystem clock as the first pack's reads.
pytestmark = pytest.mark.tree(FILES, untracked={"scripts/run.sh": "#!/bin/sh\n"}, settle=True)


def _stored(store: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in store.iterdir()}


def test_same_id_after_touch_different_after_one_byte_or_chmod(repo: Path) -> None:
    first = pack_tree(repo)
    os.utime(repo / "scripts/run.py", (1, 1))
    (repo / "config/config.yaml").touch()
    assert pack_tree(repo).id == first.id
    (repo / "scripts/run.sh").chmod(0o664)  # group write: a mode bit that does not matter
    assert pack_tree(repo).id == first.id

    (repo / "scripts/run.sh").chmod(0o755)
    executable = pack_tree(repo)
    assert executable.id != first.id
    (repo / "scripts/run.sh").chmod(0o644)
    content = (repo / "scripts/run.py").read_bytes()
    (repo / "scripts/run.py").write_bytes(content[:-1] + b"!")
    edited = pack_tree(repo)
    assert len({first.id, executable.id, edited.id}) == 3
    (repo / "scripts/run.py").write_bytes(content)
    reverted = pack_tree(repo)
    assert reverted.id == first.id and not reverted.created


def test_same_id_in_a_fresh_clone_elsewhere_whatever_the_level(repo: Path, tmp_path: Path) -> None:
    (repo / "scripts/run.sh").chmod(0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "exec")
    first = pack_tree(repo)
    clone = tmp_path / "elsewhere" / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    again = pack_tree(clone, store=tmp_path / "other-store", level=19)
    assert again.id == first.id
    assert again.created and again.archive_sha256 != first.archive_sha256


def test_the_id_encoding_is_stable(tmp_path: Path) -> None:
    # Pinned: a change of the encoding would make every stored snapshot unreachable.
    write(tmp_path / "plain", "Snakefile", "rule a:\n")
    write(tmp_path / "plain", "s/x.py", "x = 1\n")
    write(tmp_path / "plain", "s/run.sh", "#!/bin/sh\n", mode=0o755)
    result = pack_tree(tmp_path / "plain")
    assert result.id == "49d6335dd59ec3096fad519c436caf6d62932737a1d544e18e5d8d567124792e"


def test_id_ignores_the_order_of_the_walk() -> None:
    entries = [
        Entry(f"f{i}", FILE, 1, i % 2 == 0, "", f"/x/f{i}", (1, 0, 0, i), "") for i in range(20)
    ]
    digests = {e.path: f"{i:064x}" for i, e in enumerate(entries)}
    assert snapshot_id(entries, digests) == snapshot_id(entries[::-1], digests)


def test_a_stored_id_writes_nothing(repo: Path) -> None:
    first = pack_tree(repo)
    store = first.archive.parent
    before = _stored(store)
    second = pack_tree(repo)
    assert second == first.__class__(**{**first.__dict__, "created": False})
    assert _stored(store) == before


def test_unchanged_tree_reads_no_file_contents(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = pack_tree(repo)
    counter = OpenCounter(repo, monkeypatch)
    again = pack_tree(repo)
    assert counter.opened == []
    assert again.id == first.id
    (repo / "config/config.yaml").write_text("samples: [a, b, c]\n")
    counter.opened.clear()
    changed = pack_tree(repo)
    # Only the edited file is hashed; writing the new archive then reads every file once
    # (the edited one from memory).
    hashed = counter.opened[: counter.opened.index("Snakefile")]
    assert hashed == ["config/config.yaml"]
    assert sorted(counter.opened[1:]) == sorted(packed(changed) - {"config/config.yaml"})


def _packed_sha256(result: PackResult, path: str) -> str:
    return next(f.sha256 for f in read_manifest(result.manifest).files if f.path == path)


def test_an_edit_between_two_packs_is_always_seen(repo: Path) -> None:
    """Edits of the same size in quick succession, half of them with the old mtime put
    back (then only the ctime tells): the stat cache never vouches for the old content."""
    target = repo / "scripts" / "run.py"
    pack_tree(repo)
    for i in range(20):
        content = f"print({i:04d})\n".encode() * 50
        before = target.stat()
        target.write_bytes(content)
        if i % 2:
            os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
        result = pack_tree(repo)
        assert _packed_sha256(result, "scripts/run.py") == hashlib.sha256(content).hexdigest()


def test_a_tree_changed_back_is_found_stored_whichever_way_it_is_hashed(repo: Path) -> None:
    """Most content changed: files are hashed while archived and the id comes last; if that
    id is stored after all, nothing is written."""
    first = pack_tree(repo)
    store = first.archive.parent
    files = [p for p in repo.rglob("*") if p.is_file() and not {".git", ".snakemake"} & {*p.parts}]
    originals = {path: path.read_bytes() for path in files}
    for path, content in originals.items():
        path.write_bytes(content.upper() + b"#")
    changed = pack_tree(repo)
    assert changed.created and changed.id != first.id
    for path, content in originals.items():
        path.write_bytes(content)
    before = _stored(store)
    back = pack_tree(repo)
    assert back.id == first.id and not back.created
    assert back.archive_sha256 == first.archive_sha256
    after = _stored(store)
    assert set(after) == set(before)  # no temporary file left, no archive added
    assert all(after[name] == before[name] for name in after if not name.startswith("statcache"))


def test_cache_does_not_trust_files_modified_in_the_tick_of_the_read(tmp_path: Path) -> None:
    entries = [
        Entry("old", FILE, 1, False, "", "/x/old", (1, 100, 100, 1), ""),
        Entry("new", FILE, 1, False, "", "/x/new", (1, 100, 200, 2), ""),  # ctime at stamp
    ]
    cache = StatCache(tmp_path / "cache.json", "/x", {})
    cache.record(entries, {"old": "a" * 64, "new": "b" * 64}, stamp_ns=200)
    assert cache.lookup(entries[0]) == "a" * 64
    assert cache.lookup(entries[1]) is None


def _on_open(monkeypatch: pytest.MonkeyPatch, target: Path, action) -> None:
    real = os.open

    def patched(path, *args, **kwargs):
        if os.fspath(path) == str(target):
            action()
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", patched)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda p: p.open("a").write("more\n"), id="grows"),
        pytest.param(lambda p: p.write_text(p.read_text().upper()), id="rewritten"),
        pytest.param(lambda p: (p.unlink(), p.write_text("new\n")), id="replaced"),
    ],
)
def test_file_changing_while_packed_is_refused(
    repo: Path, monkeypatch: pytest.MonkeyPatch, change
) -> None:
    target = repo / "scripts" / "run.py"
    _on_open(monkeypatch, target, lambda: change(target))
    store = repo / ".snakemake" / "frozen" / "snapshots"
    with pytest.raises(SnapshotError, match=r"scripts/run\.py changed while being packed"):
        pack_tree(repo)
    assert sorted(p.name for p in store.iterdir()) == ["CACHEDIR.TAG"]  # no partial archive
    monkeypatch.undo()
    assert "scripts/run.py" in packed(pack_tree(repo))


def test_file_changing_while_archived_is_refused(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack_tree(repo)  # run.py is now vouched for by the stat cache: first read when archiving
    (repo / "Snakefile").write_text("rule all:\n    input: 'y'\n")
    target = repo / "scripts" / "run.py"
    _on_open(monkeypatch, target, lambda: target.open("a").write("# edit\n"))
    with pytest.raises(SnapshotError, match=r"scripts/run\.py changed while being packed"):
        pack_tree(repo)


def test_stale_cache_entry_is_caught_and_forgotten(repo: Path) -> None:
    clean = pack_tree(repo, store=repo.parent / "clean-store")
    store = repo / ".snakemake" / "frozen" / "snapshots"
    pack_tree(repo)
    # Pretend the cache vouches for other content with the same stat (clock trouble):
    # the archive would no longer match its id.
    (cache_file,) = [p for p in store.glob("statcache-*.json") if ".archive." not in p.name]
    data = json.loads(cache_file.read_text())
    data["entries"]["scripts/run.py"][4] = "0" * 64
    cache_file.write_text(json.dumps(data))
    with pytest.raises(SnapshotError, match="changed while being packed; try again"):
        pack_tree(repo)
    assert pack_tree(repo).id == clean.id


def test_unreadable_file_is_a_clear_error(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def deny() -> None:
        raise PermissionError(13, "Permission denied")

    _on_open(monkeypatch, repo / "config" / "config.yaml", deny)
    with pytest.raises(SnapshotError, match=r"cannot read config/config\.yaml: Permission denied"):
        pack_tree(repo)


def test_size_guard_counts_selected_bytes_and_names_the_largest(repo: Path) -> None:
    write(repo, "results/huge.bin", b"\0" * 3_000_000)  # not selected: does not count
    (repo / ".gitignore").write_text("results/\n")
    write(repo, "models/weights.bin", b"\1" * 1_500_000)
    write(repo, "models/small.bin", b"\1" * 200_000)
    with pytest.raises(SnapshotError) as refused:
        pack_tree(repo, max_size_mb=1.5)
    message = str(refused.value)
    first_line, *listing = message.splitlines()
    assert first_line.startswith("the selected files total 1.7 MB, above max_size_mb=1.5")
    assert "models/weights.bin" in listing[0]
    assert any(line.strip().endswith("models/") for line in listing)
    assert "results" not in message
    assert "exclude" in listing[-1] and "skip_size_check" in listing[-1]
    assert pack_tree(repo, max_size_mb=1.5, skip_size_check=True).bytes > 1_500_000
    assert pack_tree(repo, max_size_mb=1.5, exclude=("/models/",)).bytes < 100_000


def test_of_two_racing_packs_the_first_stored_wins(repo: Path) -> None:
    first = pack_tree(repo)
    store = Store(first.archive.parent)
    late = store.temp_path(".tar.zst")
    late.write_bytes(b"another archive of the same code")
    earlier = store.commit(first.id, late, b'{"id": "late"}', 0o444)
    assert earlier.as_json() == json.loads(first.manifest.read_text())
    assert first.archive.read_bytes() != b"another archive of the same code"
    late.unlink()
