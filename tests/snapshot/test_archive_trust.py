"""Issue 15, items 4 and 6: extraction writes no more than the manifest records, refuses
what the archive writer never produces before a byte of it is written, refuses members too
deep to handle with a clear error and leaves no debris; ``verify`` reads a bounded manifest."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.records import make_site, run_cli
from helpers.snapshots import special_member

from snakemake_executor_plugin_frozen.dirfd import remove_tree
from snakemake_executor_plugin_frozen.snapshot import (
    SnapshotError,
    archive,
    archive_format,
    extract,
    extraction,
    pack,
)
from snakemake_executor_plugin_frozen.snapshot.archive import MANIFEST_NAME
from snakemake_executor_plugin_frozen.snapshot.archive_write import _header

WRONG_SHA = "0" * 64
BIG = 64 * 1024 * 1024  # what a member really holds, compressed to almost nothing


def _manifest(files: dict[str, int], total: int | None = None) -> bytes:
    """A correct-looking manifest recording ``files`` (name: size)."""
    records = [
        {"path": p, "type": "file", "size": s, "mode": "644", "sha256": "0" * 64}
        for p, s in files.items()
    ]
    fields = {
        "format": 1,
        "id": "f" * 64,
        "code_root_in_archive": "",
        "file_count": len(records),
        "bytes": sum(files.values()) if total is None else total,
        "files": records,
    }
    return json.dumps(fields).encode()


def _hand_made(tmp_path: Path, manifest: bytes, build: Callable[[tarfile.TarFile], None]) -> Path:
    """An archive as the writer lays it out (the manifest member in a zstd frame of its own,
    then the rest), its members built with tarfile."""
    zstd = archive._zstd()
    member = _header(MANIFEST_NAME, len(manifest), 0o644, b"0") + manifest
    head = zstd.compress(member + bytes(-len(member) % 512))
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    path = tmp_path / "hand-made.tar.zst"
    path.write_bytes(head + zstd.compress(raw.getvalue()))
    return path


def _zeros(tar: tarfile.TarFile, name: str, size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    tar.addfile(info, io.BytesIO(bytes(size)))


def _pax_sparse(tar: tarfile.TarFile, name: str, realsize: int) -> None:
    """A PAX (GNU 1.0) sparse member: 513 bytes stored, ``realsize`` bytes when extracted."""
    data = f"1\n{realsize - 1}\n1\n".encode().ljust(512, b"\0") + b"x"
    info = tarfile.TarInfo(f"GNUSparseFile.0/{name}")
    info.size = len(data)
    info.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": name,
        "GNU.sparse.realsize": str(realsize),
    }
    tar.addfile(info, io.BytesIO(data))


def _usage(path: Path) -> int:
    """Bytes on disk under ``path`` (st_blocks)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


@pytest.fixture
def peak_usage(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The disk usage of the temporary folder when extraction gives up, just before it is
    removed (whichever way the extraction removes it)."""
    peaks = [0]

    def measured(remove, by_keyword: bool):
        def wrapper(*args, **kwargs):
            # shutil.rmtree(name, dir_fd=folder, ...) or remove_tree(folder, name)
            folder, target = (kwargs.get("dir_fd"), args[0]) if by_keyword else args[:2]
            if isinstance(folder, int) and isinstance(target, str):
                peaks[0] = max(peaks[0], _usage(Path(f"/proc/self/fd/{folder}/{target}")))
            return remove(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(shutil, "rmtree", measured(shutil.rmtree, True))
    monkeypatch.setattr(extraction, "remove_tree", measured(extraction.remove_tree, False))
    return peaks


def _refused(archive_path: Path, dest: Path, member: str) -> SnapshotError:
    with pytest.raises(SnapshotError) as caught:
        extract(archive_path, dest, WRONG_SHA)
    message = str(caught.value)
    assert "refusing to extract" in message and str(archive_path) in message, message
    assert member in message, message
    assert os.listdir(dest.parent) == []  # neither the destination nor a temporary folder
    return caught.value


def test_a_member_larger_than_recorded_is_refused_before_it_is_written(
    tmp_path: Path, peak_usage: list[int]
) -> None:
    evil = _hand_made(
        tmp_path,
        _manifest({"small.txt": 10, "big.bin": 10}),
        lambda t: (
            _zeros(t, "small.txt", 10),
            _zeros(t, "big.bin", BIG),
        ),
    )
    assert evil.stat().st_size < 100_000
    error = _refused(evil, tmp_path / "node" / "code", "big.bin")
    assert "size" in str(error)
    assert peak_usage[0] <= 64 * 1024  # at most the recorded sizes (in whole blocks)


def test_more_than_the_manifest_total_is_refused(tmp_path: Path, peak_usage: list[int]) -> None:
    evil = _hand_made(
        tmp_path,
        _manifest({"a": BIG, "b": BIG}, total=100),
        lambda t: (
            _zeros(t, "a", BIG),
            _zeros(t, "b", BIG),
        ),
    )
    _refused(evil, tmp_path / "node" / "code", "a")
    assert peak_usage[0] <= 64 * 1024


def test_a_member_the_manifest_does_not_list_is_refused(
    tmp_path: Path, peak_usage: list[int]
) -> None:
    evil = _hand_made(tmp_path, _manifest({"a": 1}), lambda t: _zeros(t, "unlisted", BIG))
    _refused(evil, tmp_path / "node" / "code", "unlisted")
    assert peak_usage[0] <= 64 * 1024


def test_a_pax_sparse_member_is_refused_before_writing(
    tmp_path: Path, peak_usage: list[int]
) -> None:
    size = 200 * 1024 * 1024
    evil = _hand_made(tmp_path, _manifest({"hole": size}), lambda t: _pax_sparse(t, "hole", size))
    assert evil.stat().st_size < 2000
    error = _refused(evil, tmp_path / "node" / "code", "hole")
    assert "sparse" in str(error)
    assert peak_usage[0] <= 8192  # the manifest alone


def test_a_sparse_manifest_member_is_refused(tmp_path: Path, peak_usage: list[int]) -> None:
    zstd = archive._zstd()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _pax_sparse(tar, MANIFEST_NAME, 200 * 1024 * 1024)
    evil = tmp_path / "sparse-manifest.tar.zst"
    evil.write_bytes(zstd.compress(raw.getvalue()))
    _refused(evil, tmp_path / "node" / "code", MANIFEST_NAME)
    assert peak_usage[0] == 0


def test_an_oversized_manifest_member_is_refused(tmp_path: Path) -> None:
    too_big = archive.MANIFEST_MAX_BYTES + 1
    evil = _hand_made(tmp_path, b" " * 8, lambda t: None)
    # The recorded size of the manifest member is what counts: rewrite its header.
    zstd = archive._zstd()
    member = _header(MANIFEST_NAME, too_big, 0o644, b"0") + bytes(512)
    evil.write_bytes(zstd.compress(member))
    _refused(evil, tmp_path / "node" / "code", MANIFEST_NAME)


@pytest.mark.parametrize(
    ("case", "build"),
    [
        ("hard link", lambda t: (_zeros(t, "a", 1), special_member(t, "b", tarfile.LNKTYPE, "a"))),
        ("fifo", lambda t: special_member(t, "b", tarfile.FIFOTYPE)),
        ("character device", lambda t: special_member(t, "b", tarfile.CHRTYPE)),
    ],
)
def test_hard_links_and_special_files_are_refused(tmp_path: Path, case: str, build) -> None:
    evil = _hand_made(tmp_path, _manifest({"a": 1, "b": 0}), build)
    _refused(evil, tmp_path / "node" / "code", "'b'")


def test_a_member_3000_folders_deep_is_refused_clearly(tmp_path: Path) -> None:
    name = "d/" * 3000 + "f"
    evil = _hand_made(tmp_path, _manifest({name: 1}), lambda t: _zeros(t, name, 1))
    dest = tmp_path / "node" / "code"
    with pytest.raises(SnapshotError) as caught:
        extract(evil, dest, WRONG_SHA)
    message = str(caught.value)
    assert "refusing to extract" in message and "deep" in message, message
    assert not isinstance(caught.value.__context__, RecursionError)
    assert os.listdir(dest.parent) == []  # no debris to block the next attempt


def test_verify_reads_a_huge_sparse_manifest_member_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    zstd = archive._zstd()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _pax_sparse(tar, MANIFEST_NAME, 300 * 1024 * 1024)
    snapshot.archive.unlink()
    snapshot.archive.write_bytes(zstd.compress(raw.getvalue()))
    tracemalloc.start()
    started = time.monotonic()
    try:
        code, out, _ = run_cli(capsys, "-C", str(site.workdir), "verify", "--json")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    problems = " ".join(d["problem"] for d in report["damaged"])
    assert "manifest" in problems, problems
    assert peak < 32 * 1024 * 1024, peak
    assert elapsed < 20, elapsed


def _deep_tree(root: Path, depth: int) -> str:
    """A file ``depth`` folders deep (``os.makedirs`` recurses: folder by folder by fd)."""
    root.mkdir()
    (root / "Snakefile").write_text("rule a:\n")
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        out = os.open("x.py", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, b"x = 1\n")
        os.close(out)
    finally:
        os.close(fd)
    return "d/" * depth + "x.py"


def test_a_tree_deeper_than_a_snapshot_may_hold_is_refused_when_packed(tmp_path: Path) -> None:
    """1,500 folders (deeper than Python's recursion limit): a clear refusal at packing,
    naming the file, not a RecursionError, nor an archive every job would refuse."""
    _deep_tree(tmp_path / "tree", 1500)
    try:
        with pytest.raises(SnapshotError) as caught:
            pack(tmp_path / "tree", tmp_path / "store")
        assert "1501 folders deep" in str(caught.value) and "x.py" in str(caught.value)
        assert not list((tmp_path / "store").glob("*.tar.zst"))
    finally:  # pytest's clean-up of old temporary folders recurses
        parent = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            remove_tree(parent, "tree")
        finally:
            os.close(parent)


def test_a_tree_as_deep_as_a_snapshot_may_hold_is_packed_and_extracted(tmp_path: Path) -> None:
    deep = _deep_tree(tmp_path / "tree", archive_format.MAX_DEPTH - 1)
    result = pack(tmp_path / "tree", tmp_path / "store")
    extract(result.archive, tmp_path / "node", result.archive_sha256)
    assert (tmp_path / "node" / deep).read_text() == "x = 1\n"
