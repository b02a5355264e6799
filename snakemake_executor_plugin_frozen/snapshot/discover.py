"""Discovery: which files of the code root exist as far as version control is concerned.

Inside a git work tree git itself answers (tracked files, untracked files it does not ignore,
and the files it ignores one by one), so nested ``.gitignore`` files, ``.git/info/exclude``,
``core.excludesFile`` and submodules behave exactly as in ``git status``. Outside git the tree
is walked and every ``.gitignore`` on the way is honoured through ``pathspec``.

Both modes report ignored files only when the file itself is ignored, never the contents of
an ignored directory: the code-suffix add-back must not pull a gitignored ``.venv/`` or
``build/`` back in, and git does not descend into such directories either.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .git import exclude_pathspecs, is_ignored, run_git_many, split_z, work_tree_state
from .model import SnapshotError
from .rules import compile_ignore, ignore_verdict

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

    # (folder relative to the root, the spec of its .gitignore), outermost first
    Specs = list[tuple[str, GitIgnoreSpec]]


@dataclass(frozen=True)
class Discovery:
    mode: str  # "git" or "walk"
    included: list[str]  # git: tracked + untracked-not-ignored; walk: not ignored
    ignored: list[str]  # files ignored one by one (never the inside of an ignored folder)
    tracked: frozenset[str]  # empty outside git
    untracked: list[str]  # untracked, not ignored (git only)
    nested_repos: list[str]  # git only: untracked repositories inside the tree, not packed


def discover(
    root: str, prune_names: frozenset[str], prune_dirs: frozenset[str]
) -> tuple[Discovery, list[str]]:
    """Discovery for ``root`` and warnings. ``prune_*`` (hard-excluded folder names and
    root-relative folders) are never walked, by git or by us; the rules filter again later."""
    state = work_tree_state(root)
    warnings = []
    if state and is_ignored(".", root):
        # A folder the enclosing repository ignores (a scratch copy of a workflow inside
        # another project) is not that repository's code: git would list none of it.
        warnings.append(
            f"the code root {root} is ignored by the git repository around it; files were "
            "selected by the .gitignore files inside it"
        )
    elif state:
        return _discover_git(root, exclude_pathspecs(prune_names, prune_dirs))
    elif state is None:
        warnings.append("git was not found; files were selected by .gitignore patterns")
    return _discover_walk(root, prune_names, prune_dirs), warnings


def _discover_git(root: str, excludes: list[str]) -> tuple[Discovery, list[str]]:
    # --recurse-submodules lists the files of checked-out submodules, but git refuses it
    # together with --others, hence separate calls.
    (cached, others, ignored), warnings = run_git_many(
        [
            ["ls-files", "-z", "--cached", "--recurse-submodules"],
            ["ls-files", "-z", "--others", "--exclude-standard", "--", ".", *excludes],
            [
                *("ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"),
                *("--", ".", *excludes),
            ],
        ],
        root,
    )
    unreadable = [w for w in warnings if "could not open directory" in w]
    if unreadable:
        # Like an unreadable file: what the folder holds is unknown, so refuse.
        raise SnapshotError(
            f"{unreadable[0]} (in the code root {root}); fix its permissions or exclude it "
            "(exclude_folders)"
        )
    tracked = split_z(cached)
    untracked, nested = [], []
    for path in split_z(others):
        # Without --directory the only folder entries are repositories nested in the tree.
        (nested if path.endswith("/") else untracked).append(path.rstrip("/"))
    # With --directory git names an ignored folder instead of descending into it, and
    # lists files ignored one by one: exactly the add-back candidates.
    ignored_files = [path for path in split_z(ignored) if not path.endswith("/")]
    found = Discovery(
        mode="git",
        included=tracked + untracked,
        ignored=ignored_files,
        tracked=frozenset(tracked),
        untracked=untracked,
        nested_repos=nested,
    )
    return found, warnings


def _read_gitignore(path: str) -> GitIgnoreSpec | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return compile_ignore(f.read().splitlines())
    except OSError as e:
        raise SnapshotError(f"cannot read {path}: {e.strerror}") from e


def _ignored(specs: Specs, path: str, is_dir: bool) -> bool:
    # The deepest .gitignore with an opinion wins, as in git.
    for base, spec in reversed(specs):
        verdict = ignore_verdict(spec, path[len(base) + 1 :] if base else path, is_dir)
        if verdict is not None:
            return verdict
    return False


def _discover_walk(root: str, prune_names: frozenset[str], prune_dirs: frozenset[str]) -> Discovery:
    included: list[str] = []
    ignored: list[str] = []
    stack: list[tuple[str, Specs]] = [("", [])]
    while stack:
        rel, specs = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel)) as it:
                entries = list(it)
        except OSError as e:
            raise SnapshotError(
                f"cannot list folder {rel or '.'} of the code root {root}: {e.strerror}; "
                "fix its permissions or exclude it (exclude_folders)"
            ) from e
        if any(e.name == ".gitignore" and e.is_file(follow_symlinks=False) for e in entries):
            spec = _read_gitignore(os.path.join(root, rel, ".gitignore"))
            if spec is not None:
                specs = [*specs, (rel, spec)]
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                if entry.name in prune_names or path in prune_dirs:
                    continue
                if not _ignored(specs, path, is_dir=True):
                    stack.append((path, specs))
            elif _ignored(specs, path, is_dir=False):
                ignored.append(path)
            else:
                included.append(path)
    return Discovery(
        mode="walk",
        included=included,
        ignored=ignored,
        tracked=frozenset(),
        untracked=[],
        nested_repos=[],
    )
