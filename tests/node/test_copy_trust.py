"""Trust on the node, second round (issue 15, items 5 and 6): a FIFO in place of the archive
copy, a lock held forever, and a tree thousands of folders deep must each end in a clear
error or be cleaned up, never hang a job or break every later job of that snapshot."""

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.node import deadline, enter_args, exports, node, user_folder

from snakemake_executor_plugin_frozen import dirfd
from snakemake_executor_plugin_frozen.node import copy as node_copy
from snakemake_executor_plugin_frozen.node.scratch import NodeError, open_user_folder
from snakemake_executor_plugin_frozen.snapshot import PackResult

DEPTH = 3000


def deep_tree(folder: int, name: str, depth: int = DEPTH, read_only: bool = True) -> None:
    """`name` in `folder`, `depth` folders deep, a file at the bottom and a link on the way
    (to a folder outside, which must survive); made through fds, as no path could name it."""
    os.mkdir(name, dir_fd=folder)
    fd = os.open(name, dirfd.FOLDER, dir_fd=folder)
    made = [fd]
    try:
        for level in range(depth):
            if level == depth // 2:
                os.symlink("/etc", "link", dir_fd=fd)
            os.mkdir("d", dir_fd=fd)
            fd = os.open("d", dirfd.FOLDER, dir_fd=fd)
            made.append(fd)
            if len(made) > 64:  # never hold thousands of fds while building either
                fd_done = made.pop(0)
                if read_only:
                    os.fchmod(fd_done, 0o555)
                os.close(fd_done)
        with dirfd.new_file(fd, "bottom", 0o444) as f:
            f.write(b"deep")
    finally:
        for fd in made:
            if read_only:
                os.fchmod(fd, 0o555)
            os.close(fd)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- item 5: a FIFO as the archive, a lock held forever ---------------------------------------


def test_a_fifo_in_place_of_the_archive_is_refused_at_once(
    tmp_path: Path, snapshot: tuple[Path, PackResult]
) -> None:
    """Before: `enter` blocked in open() for ever, holding the snapshot's lock."""
    code, result = snapshot
    result.archive.unlink()
    os.mkfifo(result.archive)
    holder = subprocess.Popen(["sleep", "60"])
    started = time.monotonic()
    try:
        entered = subprocess.run(
            [
                sys.executable, "-P", "-m", "snakemake_executor_plugin_frozen.node",
                *enter_args(code, result, tmp_path, holder.pid),
            ],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert time.monotonic() - started < 20
    assert entered.returncode == 1, entered.stderr
    assert entered.stdout == ""
    assert str(result.archive) in entered.stderr
    assert "not a regular file" in entered.stderr
    assert "a named pipe" in entered.stderr
    assert "snakemake" in entered.stderr  # what to do: run the workflow again to re-pack
    assert "Traceback" not in entered.stderr
    copy = tmp_path / f"snakemake-frozen-{os.getuid()}" / result.id
    assert not copy.exists()


def test_a_symlink_in_place_of_the_archive_is_refused(
    tmp_path: Path, snapshot: tuple[Path, PackResult]
) -> None:
    """The archive is opened without following a link: the store's own file or nothing."""
    code, result = snapshot
    real = result.archive.with_name("elsewhere.tar.zst")
    result.archive.rename(real)
    result.archive.symlink_to(real)
    holder = subprocess.Popen(["sleep", "60"])
    try:
        entered = node(*enter_args(code, result, tmp_path, holder.pid))
    finally:
        holder.kill()
        holder.wait()
    assert entered.returncode == 1
    assert str(result.archive) in entered.stderr
    assert "link" in entered.stderr
    assert "Traceback" not in entered.stderr


def test_a_lock_held_for_ever_ends_in_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: `locked` waited on the flock without a bound."""
    base, folder = open_user_folder(tmp_path, create=True)
    lock = folder / "abc.lock"
    holder = subprocess.Popen(
        [
            sys.executable, "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDONLY | os.O_CREAT, 0o600)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    monkeypatch.setattr(node_copy, "LOCK_WAIT", 1.0, raising=False)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        started = time.monotonic()
        with deadline(20), pytest.raises(NodeError) as refused, node_copy.locked(base, "abc"):
            pass
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
        os.close(base)
    assert 0.9 < waited < 10
    message = str(refused.value)
    assert str(lock) in message
    assert f"pid {holder.pid}" in message  # the holder, found in /proc/locks
    assert f"kill {holder.pid}" in message  # what to do


def test_a_fifo_at_the_lock_name_is_refused_not_waited_on(tmp_path: Path) -> None:
    base, folder = open_user_folder(tmp_path, create=True)
    os.mkfifo(folder / "abc.lock")
    try:
        refused = pytest.raises(NodeError, match=r"abc\.lock.*named pipe")
        with deadline(20), refused, node_copy.locked(base, "abc"):
            pass
    finally:
        os.close(base)


def test_a_lock_freed_while_waiting_is_taken(tmp_path: Path) -> None:
    base, folder = open_user_folder(tmp_path, create=True)
    lock = folder / "abc.lock"
    holder = subprocess.Popen(
        [
            sys.executable, "-c",
            "import fcntl, os, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDONLY | os.O_CREAT, 0o600)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(1)\n",
        ],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with deadline(20), node_copy.locked(base, "abc"):
            assert holder.wait(5) == 0  # it let go by ending
    finally:
        holder.kill()
        holder.wait()
        os.close(base)


# -- item 6: thousands of folders deep --------------------------------------------------------


def test_remove_tree_removes_a_tree_thousands_deep_with_few_fds(tmp_path: Path) -> None:
    """Before: RecursionError, and one fd held open per level."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "kept").write_text("kept")
    base = os.open(tmp_path, dirfd.FOLDER)
    try:
        deep_tree(base, "deep")
        os.symlink(outside, "to-outside", dir_fd=os.open("deep", dirfd.FOLDER, dir_fd=base))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_fds() + 64, hard))
        try:
            dirfd.remove_tree(base, "deep")
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    finally:
        os.close(base)
    assert not (tmp_path / "deep").exists()
    assert (outside / "kept").read_text() == "kept"  # a link is removed, never followed
    assert Path("/etc/passwd").exists()


def test_remove_tree_of_a_file_a_link_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    (tmp_path / "l").symlink_to(tmp_path / "target")
    (tmp_path / "target").mkdir()
    base = os.open(tmp_path, dirfd.FOLDER)
    try:
        for name in ("f", "l", "missing"):
            dirfd.remove_tree(base, name)
    finally:
        os.close(base)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


def test_debris_thousands_deep_does_not_block_the_next_enter(
    tmp_path: Path, snapshot: tuple[Path, PackResult]
) -> None:
    """Before: every `enter` of that id ended in a RecursionError while removing the debris
    of a half-made copy."""
    code, result = snapshot
    base_path = user_folder(tmp_path)
    base = os.open(base_path, dirfd.FOLDER)
    try:
        deep_tree(base, f".{result.id}.0123456789ab.tmp")
        deep_tree(base, f".{result.id}.deleting.0123456789ab")
    finally:
        os.close(base)
    holder = subprocess.Popen(["sleep", "60"])
    try:
        entered = node(*enter_args(code, result, tmp_path, holder.pid))
        assert entered.returncode == 0, entered.stderr[-2000:]
        assert " extracted at " in entered.stderr
        environment = exports(entered.stdout)
        assert Path(environment["FROZEN_DIR"], "Snakefile").is_file()
        assert [p.name for p in base_path.iterdir() if p.name.startswith(".")] == []
        assert node("leave", env=environment).returncode == 0
    finally:
        holder.kill()
        holder.wait()


def test_a_copy_thousands_deep_is_sealed_and_checked(tmp_path: Path) -> None:
    """A copy holding a tree that deep is sealed and compared without recursion, and a
    difference deep down is seen."""
    base = os.open(tmp_path, dirfd.FOLDER)
    try:
        deep_tree(base, "abc", read_only=False)
        sealed = node_copy.seal(base, "abc", "0" * 64)
        assert sealed.count(b"\0d\0") == DEPTH + 1  # the top folder and every level
        assert node_copy.seal(base, "abc", "0" * 64) == sealed
        bottom = "abc/" + "/".join(["d"] * DEPTH)
        fd = os.open(bottom, dirfd.FOLDER, dir_fd=base) if len(bottom) < 4000 else None
        if fd is None:  # too long for one path: walk down
            fd = os.open("abc", dirfd.FOLDER, dir_fd=base)
            for _ in range(DEPTH):
                fd = dirfd.descend(fd, "d")
        try:
            os.unlink("bottom", dir_fd=fd)
        finally:
            os.close(fd)
        now = node_copy.seal(base, "abc", "0" * 64)
        assert "bottom (missing)" in node_copy.seal_difference(sealed, now)
        dirfd.remove_tree(base, "abc")
    finally:
        os.close(base)
