"""The node helper in tests: a small code root to snapshot, the helper run as the batch script
runs it (`node enter|leave|run ...`), what its `enter` exports, and the processes a job
left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from snakemake_executor_plugin_frozen.jobscript import FrozenEntry
from snakemake_executor_plugin_frozen.node.scratch import open_user_folder
from snakemake_executor_plugin_frozen.snapshot import PackResult

# `node run` (supervise), as the batch script starts it.
NODE_RUN = [sys.executable, "-P", "-m", "snakemake_executor_plugin_frozen.node", "run"]


def make_code(code: Path, module: str = "V = 1\n") -> Path:
    """A small code root: a Snakefile, a package `pkg` holding `module`, a script."""
    (code / "pkg").mkdir(parents=True)
    (code / "Snakefile").write_text("rule a:\n    output: 'x'\n")
    (code / "pkg" / "__init__.py").write_text(module)
    (code / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (code / "run.sh").chmod(0o755)
    return code


def node(
    *args: str, env: dict[str, str] | None = None, user: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """The node helper as the batch script runs it (`user`: a command prefix such as
    setpriv's, to run it as another user)."""
    return subprocess.run(
        [*user, sys.executable, "-P", "-m", "snakemake_executor_plugin_frozen.node", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


def enter_args(code: Path, result: PackResult, scratch: Path, holder: int) -> list[str]:
    return [
        "enter",
        "--archive", str(result.archive),
        "--sha256", result.archive_sha256,
        "--id", result.id,
        "--code-root", str(code),
        "--scratch", str(scratch),
        "--holder", str(holder),
    ]  # fmt: skip


def exports(stdout: str) -> dict[str, str]:
    """What the batch script's `eval` would set."""
    script = stdout + "\nenv -0"
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True, env={})
    return dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)


def batch_entry(code: Path, result: PackResult, tmp_path: Path) -> FrozenEntry:
    return FrozenEntry(
        python=sys.executable,
        archive=result.archive,
        archive_sha256=result.archive_sha256,
        snapshot_id=result.id,
        code_root=code,
        prefix=result.prefix,
        scratch=str(tmp_path),
        keep_extracted=False,
    )


def user_folder(scratch: Path) -> Path:
    fd, path = open_user_folder(scratch, create=True)
    os.close(fd)
    return path


def processes_in(folder: Path) -> list[str]:
    """The live processes (pid and command line) working in `folder` or below it."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone, or a zombie
            continue
        if cwd.is_relative_to(folder):
            found.append(f"{entry.name} {line}")
    return found


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Turn a hang into a failure."""

    def expired(signum, frame):
        raise TimeoutError(f"still waiting after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
