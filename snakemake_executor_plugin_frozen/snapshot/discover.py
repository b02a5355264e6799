"""Discovery: which files of the code root exist as far as version control is concerned.

Inside a git work tree git itself answers (tracked files, untracked files it does not ignore,
and the files and folders it ignores), so nested ``.gitignore`` files, ``.git/info/exclude``,
``core.excludesFile`` and submodules behave exactly as in ``git status``. Outside git the tree
is walked and every ``.gitignore`` on the way is honoured through ``pathspec``.

Both modes also report the code files (code suffix or ``Snakefile``) inside ignored folders,
for the add-back: git names an ignored folder instead of descending into it, so we walk it
ourselves (``os.scandir``, no stat of any file). Such walks never enter environments, caches
and other repositories (``rules.NOT_CODE_FOLDERS``, ``rules.NOT_CODE_MARKERS``, a valid
``CACHEDIR.TAG``): they are not code, and a ``.venv/`` holds thousands of ``.py`` files.
No walk, ours or git's, enters a hard-excluded folder; ours never enter a data folder (an
output folder of the workflow) either, whether ignored or not.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .git import GitBatch, GitRun, exclude_pathspecs, split_z, work_tree_state
from .model import SnapshotError
from .probe import CACHEDIR_TAG, holds_cache_tag
from .rules import NOT_CODE_FOLDERS, NOT_CODE_MARKERS, PathRules, compile_ignore, ignore_verdict

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

    # (folder relative to the root, the spec of its .gitignore), outermost first
    Specs = list[tuple[str, GitIgnoreSpec]]


@dataclass(frozen=True)
class Discovery:
    mode: str  # "git" or "walk"
    included: list[str]  # git: tracked + untracked-not-ignored; walk: not ignored
    ignored: list[str]  # files ignored one by one, and the code files inside ignored folders
    tracked: frozenset[str]  # empty outside git
    untracked: list[str]  # untracked, not ignored (git only)
    nested_repos: list[str]  # git only: untracked repositories inside the tree, not packed
    data_folders: list[str]  # data folders met by our walks and not walked
    unlisted: list[str]  # ignored folders that could not be listed, skipped


def _git_commands(rules: PathRules) -> list[list[str]]:
    excludes = exclude_pathspecs(rules.folder_names, rules.excluded_dirs)
    return [
        ["check-ignore", "-q", "--", "."],
        # --recurse-submodules lists the files of checked-out submodules, but git refuses
        # it together with --others, hence separate calls.
        ["ls-files", "-z", "--cached", "--recurse-submodules"],
        ["ls-files", "-z", "--others", "--exclude-standard", "--", ".", *excludes],
        [
            *("ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"),
            *("--", ".", *excludes),
        ],
    ]


def _work_tree_state(index_listing: GitRun, root: str, spool: Path) -> bool | None:
    """``git.work_tree_state`` of ``root``: listing the index succeeds only inside a work
    tree; else rev-parse tells why."""
    if index_listing.returncode == 0:
        return True
    rev_parse = GitBatch([["rev-parse", "--is-inside-work-tree"]], root, spool).wait()[0]
    return work_tree_state(rev_parse, root)


def discover(
    root: str,
    rules: PathRules,
    spool: Path,
    meanwhile: Callable[[list[str]], None] | None = None,
) -> tuple[Discovery, list[str]]:
    """Discovery for ``root`` and warnings. The hard-excluded folders of ``rules`` are never
    walked, by git or by us; the rules filter the paths again later. ``spool``: a folder for
    git's output (``GitBatch``). In git, ``meanwhile`` is given the tracked files as soon as
    git lists them, while git walks the tree for the others: work for that wait."""
    # All at once, as the wait for git dominates a pack of an unchanged tree: the listings
    # only count inside a work tree whose root git does not ignore.
    git = GitBatch(_git_commands(rules), root, spool)
    try:
        ignored_root, index_listing = git.result(0), git.result(1)
        state = _work_tree_state(index_listing, root, spool)
        if state and ignored_root.returncode != 0:
            return _discover_git(root, rules, git, meanwhile)
    finally:
        git.wait()  # none left running, whatever happened
    warnings = []
    if state:
        # A folder the enclosing repository ignores (a scratch copy of a workflow inside
        # another project) is not that repository's code: git would list none of it.
        warnings.append(
            f"the code root {root} is ignored by the git repository around it; files were "
            "selected by the .gitignore files inside it"
        )
    elif state is None:
        warnings.append("git was not found; files were selected by .gitignore patterns")
    walk = _Walk(root, rules)
    walk.run([("", [], False)])
    found = Discovery(
        mode="walk",
        included=walk.included,
        ignored=walk.ignored,
        tracked=frozenset(),
        untracked=[],
        nested_repos=[],
        data_folders=walk.data_folders,
        unlisted=walk.unlisted,
    )
    return found, warnings


def _discover_git(
    root: str, rules: PathRules, git: GitBatch, meanwhile: Callable[[list[str]], None] | None
) -> tuple[Discovery, list[str]]:
    tracked = split_z(git.result(1).checked(root))
    if meanwhile is not None:
        meanwhile(tracked)
    listings = git.wait()[1:]  # the index, the untracked files, the ignored ones
    others, ignored = listings[1].checked(root), listings[2].checked(root)
    warnings = sorted({w for run in listings for w in run.warnings()})
    unreadable = [w for w in warnings if "could not open directory" in w]
    if unreadable:
        # Like an unreadable file: what the folder holds is unknown, so refuse.
        raise SnapshotError(
            f"{unreadable[0]} (in the code root {root}); fix its permissions or exclude it "
            "(exclude_folders)"
        )
    untracked, nested = [], []
    for path in split_z(others):
        # Without --directory the only folder entries are repositories nested in the tree.
        (nested if path.endswith("/") else untracked).append(path.rstrip("/"))
    # With --directory git lists the files ignored one by one and names an ignored folder
    # (never one holding tracked files) instead of descending into it: we walk those.
    walk = _Walk(root, rules)
    seeds: list[tuple[str, Specs, bool]] = []
    for path in split_z(ignored):
        if path.endswith("/"):
            seeds.append((path.rstrip("/"), [], True))
        else:
            walk.ignored.append(path)
    walk.run(seeds)
    found = Discovery(
        mode="git",
        included=tracked + untracked,
        ignored=walk.ignored,
        tracked=frozenset(tracked),
        untracked=untracked,
        nested_repos=nested,
        data_folders=walk.data_folders,
        unlisted=walk.unlisted,
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


def _not_code(folder: str, entries: list[os.DirEntry]) -> bool:
    """The listed ``folder`` is an environment, a cache or a repository of its own."""
    names = {entry.name for entry in entries}
    if not names.isdisjoint(NOT_CODE_MARKERS):
        return True
    return CACHEDIR_TAG in names and holds_cache_tag(folder)


@dataclass
class _Walk:
    """Our own walk of folders: the whole tree outside git, the ignored folders in git."""

    root: str
    rules: PathRules
    included: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    data_folders: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)

    def run(self, stack: list[tuple[str, Specs, bool]]) -> None:
        """Walk the folders on ``stack``: (root-relative folder, the specs of the .gitignore
        files above it, whether it is ignored)."""
        while stack:
            rel, specs, ignored = stack.pop()
            if self._skipped(rel, ignored):
                continue
            entries = self._list(rel, ignored)
            if entries is None:
                continue
            if not ignored and any(
                e.name == ".gitignore" and e.is_file(follow_symlinks=False) for e in entries
            ):
                spec = _read_gitignore(os.path.join(self.root, rel, ".gitignore"))
                if spec is not None:
                    specs = [*specs, (rel, spec)]
            for entry in entries:
                path = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append((path, specs, ignored or _ignored(specs, path, is_dir=True)))
                elif ignored:
                    # Inside an ignored folder only code files matter (for the add-back).
                    if self.rules.is_code(path):
                        self.ignored.append(path)
                elif _ignored(specs, path, is_dir=False):
                    self.ignored.append(path)
                else:
                    self.included.append(path)

    def _skipped(self, rel: str, ignored: bool) -> bool:
        if not rel:
            return False
        name = rel.rpartition("/")[2]
        rules = self.rules
        if name in rules.folder_names or rel in rules.excluded_dirs:
            return True
        if rules.is_data(rel):
            self.data_folders.append(rel)
            return True
        return ignored and name in NOT_CODE_FOLDERS

    def _list(self, rel: str, ignored: bool) -> list[os.DirEntry] | None:
        """The entries of ``rel``; None for an ignored folder that holds no code of ours."""
        folder = os.path.join(self.root, rel)
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            if ignored:
                # Ignored anyway: at worst a code file in it is not added back.
                self.unlisted.append(rel)
                return None
            raise SnapshotError(
                f"cannot list folder {rel or '.'} of the code root {self.root}: {e.strerror}; "
                "fix its permissions or exclude it (exclude_folders)"
            ) from e
        if ignored and _not_code(folder, entries):
            return None
        return entries
