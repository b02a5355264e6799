"""Which files of the code root a snapshot holds.

Rules, highest priority first:

1. Hard-excluded folders are never packed, at any depth, whatever else matches: the
   ``exclude_folders`` names, the store, ``extra_excluded_dirs`` (log dirs), any folder
   tagged with a ``CACHEDIR.TAG`` (the store writes one, so another store inside the tree is
   skipped too) and ``.frozen/`` at the root, reserved for the manifest inside archives.
2. Files named explicitly by the caller (Snakemake's own sources) are always packed; one
   outside the code root is an error naming it.
3. Files with a code suffix (or named ``Snakefile``) are added back although gitignored, as
   long as the file itself is ignored: the inside of an ignored folder (``.venv/``,
   ``build/``, ``node_modules/``) is never added back.
4. Discovery (``discover.py``): tracked plus untracked-not-ignored files in git; outside git
   every file no ``.gitignore`` of the tree ignores.
5. ``.frozenignore`` at the code root and the ``exclude`` setting (gitignore syntax) remove
   files found by rules 3 and 4. They are the user's last word about this tool's selection,
   so they also remove code files; only explicitly named files (rule 2) survive them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .discover import Discovery, discover
from .model import SelectionSettings, SnapshotError
from .rules import PathRules, ancestor_folders, compile_ignore, listing, looks_secret
from .store import CACHEDIR_SIGNATURE, CACHEDIR_TAG

FROZENIGNORE = ".frozenignore"
RESERVED_DIR = ".frozen"  # holds the manifest inside an archive

# origin of a selected path
DISCOVERED, ADDED_BACK, EXPLICIT = "discovered", "added-back", "explicit"


@dataclass(frozen=True)
class Selection:
    root: str
    paths: list[str]  # sorted root-relative POSIX paths
    origin: dict[str, str]  # path -> DISCOVERED, ADDED_BACK or EXPLICIT
    discovery: Discovery
    rules: PathRules  # as applied, with the tagged folders found
    frozenignore: list[str]  # the lines of .frozenignore, for the record
    untracked: list[str]  # git's untracked, not ignored files outside hard-excluded folders
    warnings: list[str] = field(default_factory=list)


def _relative_dir(root: str, path: Path) -> str | None:
    """``path`` relative to ``root`` if it lies inside (None outside); '' is the root."""
    rel = os.path.relpath(os.path.realpath(path), root)
    if rel == ".":
        return ""
    return None if rel == ".." or rel.startswith("../") else rel


def _explicit_relative(root: str, path: os.PathLike | str) -> str:
    # Resolve the folders but not the file: a link named explicitly stays a link, while
    # a path through a linked folder is packed under its real location (a stored link
    # must never be the parent of another entry).
    absolute = os.path.abspath(path)
    real = os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))
    rel = os.path.relpath(real, root)
    if rel == "." or rel == ".." or rel.startswith("../"):
        shown = os.fspath(path) if real == absolute else f"{os.fspath(path)} (really {real})"
        raise SnapshotError(
            f"explicitly named file {shown} lies outside the code root {root}: move it into "
            "the code root or pack a root that contains it"
        )
    return rel


def _tagged_dirs(root: str, paths: Iterable[str]) -> list[str]:
    """Folders among the ancestors of ``paths`` that hold a valid CACHEDIR.TAG."""
    tagged = []
    for folder in sorted(ancestor_folders(paths)):
        tag = os.path.join(root, folder, CACHEDIR_TAG)
        if os.path.isfile(tag):
            with open(tag, "rb") as f:
                if f.read(len(CACHEDIR_SIGNATURE)) == CACHEDIR_SIGNATURE:
                    tagged.append(folder)
    return tagged


def _read_frozenignore(root: str) -> list[str]:
    path = os.path.join(root, FROZENIGNORE)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise SnapshotError(f"cannot read {path}: {e.strerror}") from e


def _split_hard(rules: PathRules, paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """``paths`` outside and inside hard-excluded folders."""
    kept: list[str] = []
    excluded: list[str] = []
    for path in paths:
        (excluded if rules.hard_excluded(path) else kept).append(path)
    return kept, excluded


def normalise_suffixes(suffixes: Iterable[str]) -> tuple[str, ...]:
    return tuple(s if s.startswith(".") else f".{s}" for s in suffixes if s)


def select(
    root: str, settings: SelectionSettings, explicit: Iterable[os.PathLike | str], store: Path
) -> Selection:
    """Apply the selection rules to the resolved code root ``root``."""
    for name in settings.exclude_folders:
        if not name or "/" in name or name in (".", ".."):
            raise SnapshotError(
                f"exclude_folders entry {name!r} is not a folder name; use the exclude "
                "setting (gitignore syntax) for paths"
            )
    excluded_dirs = [RESERVED_DIR]
    for folder in (store, *settings.extra_excluded_dirs):
        rel = _relative_dir(root, folder)
        if rel == "":
            raise SnapshotError(
                f"the excluded folder {folder} is the code root itself; choose a store or "
                "log folder inside it or elsewhere"
            )
        if rel is not None:
            excluded_dirs.append(rel)
    frozenignore = _read_frozenignore(root)
    rules = PathRules(
        folder_names=frozenset(settings.exclude_folders),
        excluded_dirs=frozenset(excluded_dirs),
        code_suffixes=normalise_suffixes(settings.code_suffixes),
        user_exclude=compile_ignore([*frozenignore, *settings.exclude]),
    )
    explicit_paths = [_explicit_relative(root, path) for path in explicit]
    found, warnings = discover(root, rules.folder_names, rules.excluded_dirs)

    included, _ = _split_hard(rules, found.included)
    added_back, _ = _split_hard(rules, filter(rules.is_code, found.ignored))
    named, dropped = _split_hard(rules, explicit_paths)
    tagged = _tagged_dirs(root, [*included, *added_back, *named])
    if tagged:  # tags only exclude more: filtering the survivors again is enough
        rules = replace(rules, excluded_dirs=rules.excluded_dirs.union(tagged))
        included, _ = _split_hard(rules, included)
        added_back, _ = _split_hard(rules, added_back)
        named, more = _split_hard(rules, named)
        dropped += more

    origin: dict[str, str] = {}
    for path in included:
        if not rules.user_excluded(path):
            origin[path] = DISCOVERED
    for path in added_back:
        if not rules.user_excluded(path):
            origin[path] = ADDED_BACK
    for path in named:
        origin[path] = EXPLICIT

    if dropped:
        warnings.append(
            f"{len(dropped)} explicitly named file(s) lie in hard-excluded folders and were "
            f"not packed: {listing(sorted(set(dropped)))}"
        )
    nested = [
        p for p in found.nested_repos if not rules.hard_excluded(p) and not rules.user_excluded(p)
    ]
    if nested:
        warnings.append(
            "git repositories nested in the code root are not packed (make them submodules "
            f"or exclude them): {listing(nested)}"
        )
    secrets = sorted(
        p
        for p, how in origin.items()
        if how != EXPLICIT and p not in found.tracked and looks_secret(p)
    )
    if secrets:
        warnings.append(
            "files that look like credentials are packed although git does not track them: "
            f"{listing(secrets)}; exclude them (.frozenignore or the exclude setting) if "
            "they hold secrets"
        )
    return Selection(
        root=root,
        paths=sorted(origin),
        origin=origin,
        discovery=found,
        rules=rules,
        frozenignore=frozenignore,
        untracked=[p for p in found.untracked if not rules.hard_excluded(p)],
        warnings=warnings,
    )
