"""Running git, the one place that spawns it."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable

from .model import SnapshotError


def _env() -> dict[str, str]:
    # Stable messages to match on, and no index refresh written behind the user's back
    # (the user may be running git commands while a workflow starts).
    return {**os.environ, "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"}


def _fail(args: list[str], cwd: str, stderr: bytes) -> SnapshotError:
    reason = stderr.decode(errors="replace").strip().splitlines()
    detail = reason[-1] if reason else "no message"
    return SnapshotError(f"git {' '.join(args)} failed in {cwd}: {detail}")


def try_git(args: list[str], cwd: str) -> bytes | None:
    """stdout of ``git args`` run in ``cwd``, or None if git fails or is missing."""
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, env=_env(), capture_output=True, check=False)
    except FileNotFoundError:
        return None
    return None if proc.returncode else proc.stdout


def is_ignored(path: str, cwd: str) -> bool:
    """Whether git ignores ``path`` (relative to ``cwd``); tracked files never are."""
    return try_git(["check-ignore", "-q", "--", path], cwd) is not None


def run_git_many(commands: list[list[str]], cwd: str) -> tuple[list[bytes], list[str]]:
    """Several independent git commands run concurrently (their start-up cost dominates).

    Returns their outputs and git's warnings: git skips a folder it cannot open with a
    warning and success, and that must not pass silently.
    """
    env = _env()
    procs = [
        subprocess.Popen(
            ["git", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for args in commands
    ]
    outputs = [proc.communicate() for proc in procs]
    warnings = []
    for args, proc, (_, stderr) in zip(commands, procs, outputs, strict=True):
        if proc.returncode:
            raise _fail(args, cwd, stderr)
        warnings += [f"git: {line}" for line in stderr.decode(errors="replace").splitlines()]
    return [stdout for stdout, _ in outputs], sorted(set(warnings))


def work_tree_state(cwd: str) -> bool | None:
    """True inside a git work tree, False outside any repository, None if git is missing.

    Any other git failure (a repository git refuses to read, such as one owned by another
    user) is an error: falling back to pattern matching there would silently change the
    selection.
    """
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree"],
            cwd=cwd,
            env=_env(),
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        return None
    if proc.returncode == 0:
        return proc.stdout.strip() == b"true"
    if b"not a git repository" in proc.stderr:
        return False
    raise _fail(["rev-parse", "--is-inside-work-tree"], cwd, proc.stderr)


def exclude_pathspecs(names: Iterable[str], dirs: Iterable[str]) -> list[str]:
    """Pathspecs that keep git out of hard-excluded folders (its walk skips them entirely,
    which matters for a ``.snakemake/`` of a hundred thousand files that is not ignored)."""
    escaped = (re.sub(r"([*?\[\]\\])", r"\\\1", name) for name in names)
    return [
        *(f":(exclude,glob)**/{name}/**" for name in sorted(escaped)),
        *(f":(exclude,literal){folder}" for folder in sorted(dirs)),
    ]


def split_z(output: bytes) -> list[str]:
    """NUL-separated git output as paths (undecodable bytes kept via surrogateescape)."""
    return [os.fsdecode(item) for item in output.split(b"\0") if item]
