"""Running git, the one place that spawns it."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

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


@dataclass(frozen=True)
class GitRun:
    """One finished git command; ``returncode`` None when git is not installed."""

    args: list[str]
    returncode: int | None
    stdout: bytes
    stderr: bytes

    def checked(self, cwd: str) -> bytes:
        """stdout of a command that must succeed."""
        if self.returncode is None:
            raise SnapshotError(f"git {' '.join(self.args)} failed in {cwd}: git was not found")
        if self.returncode:
            raise _fail(self.args, cwd, self.stderr)
        return self.stdout

    def warnings(self) -> list[str]:
        """git's warnings: it skips a folder it cannot open with a warning and success, and
        that must not pass silently."""
        return [f"git: {line}" for line in self.stderr.decode(errors="replace").splitlines()]


class GitBatch:
    """Independent git commands started at once (their start-up cost dominates), collected
    one by one (``result``) or all (``wait``), possibly much later: their output goes to
    unnamed temporary files in ``spool`` (the store, which must be writable anyway, not a
    /tmp that may be full), never to a pipe that could fill up and stall git meanwhile."""

    def __init__(self, commands: list[list[str]], cwd: str, spool: Path) -> None:
        env = _env()
        self._started: list[tuple[list[str], subprocess.Popen | None, BinaryIO, BinaryIO]] = []
        for args in commands:
            out = tempfile.TemporaryFile(dir=spool)  # noqa: SIM115 -- closed by result()
            err = tempfile.TemporaryFile(dir=spool)  # noqa: SIM115 -- closed by result()
            try:
                proc = subprocess.Popen(["git", *args], cwd=cwd, env=env, stdout=out, stderr=err)
            except FileNotFoundError:
                proc = None
            self._started.append((args, proc, out, err))
        self._runs: dict[int, GitRun] = {}

    def result(self, index: int) -> GitRun:
        """The finished run of the ``index``-th command."""
        if index not in self._runs:
            args, proc, out, err = self._started[index]
            returncode = None if proc is None else proc.wait()
            outputs = []
            for f in (out, err):
                f.seek(0)
                outputs.append(f.read())
                f.close()
            self._runs[index] = GitRun(args, returncode, *outputs)
        return self._runs[index]

    def wait(self) -> list[GitRun]:
        return [self.result(index) for index in range(len(self._started))]


def work_tree_state(run: GitRun, cwd: str) -> bool | None:
    """From ``git rev-parse --is-inside-work-tree`` run in ``cwd``: True inside a git work
    tree, False outside any repository, None if git is missing.

    Any other git failure (a repository git refuses to read, such as one owned by another
    user) is an error: falling back to pattern matching there would silently change the
    selection.
    """
    if run.returncode is None:
        return None
    if run.returncode == 0:
        return run.stdout.strip() == b"true"
    if b"not a git repository" in run.stderr:
        return False
    raise _fail(run.args, cwd, run.stderr)


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
    # One decoding of the whole output (the same, as no character's encoding holds a NUL
    # byte): decoding path by path costs more than the split.
    return [path for path in os.fsdecode(output).split("\0") if path]


_C_ESCAPES = {
    ord("a"): 7,
    ord("b"): 8,
    ord("t"): 9,
    ord("n"): 10,
    ord("v"): 11,
    ord("f"): 12,
    ord("r"): 13,
    ord('"'): 34,
    ord("\\"): 92,
}
_DIFF_START = re.compile(rb"^(?=diff --git )", re.MULTILINE)


def _unquote(text: bytes) -> tuple[bytes, bytes] | None:
    """A C-style quoted name at the start of ``text`` (as git quotes an unusual path) and
    what follows it; None if ``text`` does not start with one."""
    out = bytearray()
    i = 1
    while i < len(text):
        c = text[i]
        if c == 34:  # the closing quote
            return bytes(out), text[i + 1 :]
        if c == 92:
            if i + 1 >= len(text):
                return None
            escaped = text[i + 1]
            if 48 <= escaped <= 55:  # \ooo
                digits = text[i + 1 : i + 4]
                if len(digits) != 3 or not all(48 <= d <= 55 for d in digits):
                    return None
                out.append(int(digits, 8) & 0xFF)
                i += 4
                continue
            if escaped not in _C_ESCAPES:
                return None
            out.append(_C_ESCAPES[escaped])
            i += 2
            continue
        out.append(c)
        i += 1
    return None


def diff_path(header: bytes) -> bytes | None:
    """The path a ``diff --git a/P b/P`` header names, P as bytes, of a diff made with
    ``--no-renames`` and the prefixes a/ and b/ (so both names are the same path); None if
    the header is anything else."""
    rest = header.removeprefix(b"diff --git ")
    if rest.startswith(b'"'):
        first = _unquote(rest)
        if first is None or not first[1].startswith(b' "'):
            return None
        second = _unquote(first[1][1:])
        if second is None or second[1] or first[0][2:] != second[0][2:]:
            return None
        source, target = first[0], second[0]
    else:
        half = (len(rest) - 1) // 2  # "a/P b/P": both halves are as long
        source, target = rest[:half], rest[half + 1 :]
        if rest[half : half + 1] != b" " or source[2:] != target[2:]:
            return None
    if not (source.startswith(b"a/") and target.startswith(b"b/")):
        return None
    return source[2:]


def diff_limited(diff: bytes, paths: set[bytes]) -> bytes:
    """The parts of ``diff`` (``git diff --binary --no-renames`` with prefixes a/ and b/)
    about ``paths`` (relative to the repository's top, as bytes): one part per file, each
    starting with its ``diff --git`` line (no line of a patch, text or base85, can start
    so). A part whose header cannot be read is left out."""
    if not diff:
        return diff
    kept = []
    for part in _DIFF_START.split(diff):
        if not part:
            continue
        header = part.split(b"\n", 1)[0]
        if not header.startswith(b"diff --git "):
            continue  # nothing precedes the first part; never kept
        path = diff_path(header)
        if path is not None and path in paths:
            kept.append(part)
    return b"".join(kept)
