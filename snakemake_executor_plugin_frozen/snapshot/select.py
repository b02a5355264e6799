"""Which files of the code root a snapshot holds.

Rules, highest priority first:

1. Hard-excluded folders are never packed, at any depth, whatever else matches: the
   ``exclude_folders`` names, the store, ``extra_excluded_dirs`` (log dirs), ``.frozen/`` at
   the root (reserved for the manifest inside archives), and environments and caches, which
   are not code: folders named like ``rules.NOT_CODE_FOLDERS`` (``__pycache__``,
   ``node_modules``, ``.tox``, ...) and folders of the code root holding one of
   ``rules.ENV_MARKERS`` (``pyvenv.cfg``, ``conda-meta``) or a valid ``CACHEDIR.TAG`` (the
   store writes one, so another store inside the tree is skipped too).
2. Files named explicitly by the caller (Snakemake's own sources) are always packed, also
   when they are data (rule 3): a config file that a rule writes is still the one the main
   process parsed. One outside the code root is an error naming it, unless the caller allows
   outside files: then it is packed under its root-relative path with leading ``..``
   (``entries.archive_prefix`` places it in the archive).
3. Data, the workflow's own outputs, logs and benchmarks (the ``data`` setting: files, and
   folders that are never walked), is never packed by the rules below.
4. Files with a code suffix (or named ``Snakefile``) are added back although gitignored,
   also inside ignored folders (``gen/helper.py`` with ``gen/`` ignored); those walks stop
   at the folders of rule 1 and at other repositories (a folder holding ``.git``). Other
   ignored files (``gen/data.bin``) stay out.
5. Discovery (``discover.py``): tracked plus untracked-not-ignored files in git; outside git
   every file no ``.gitignore`` of the tree ignores.
6. ``.frozenignore`` at the code root and the ``exclude`` setting (gitignore syntax) remove
   files found by rules 4 and 5. They are the user's last word about this tool's selection,
   so they also remove code files; only explicitly named files (rule 2) survive them.
7. Files that look like credentials (``rules.looks_secret``: ``.env``, ``*.pem``, ``id_rsa``,
   ``*token*``, ``.ssh/``, ...), tracked or not, are left out of what rules 4 and 5 found,
   with a warning naming them, unless an ``allow_secrets`` pattern admits them. Explicitly
   named ones are packed, with a warning. A symbolic link is judged by its target too
   (``deploy_key.txt -> ~/.ssh/id_ed25519``): one whose target (its real path, or the first
   hop) looks like a credential is left out likewise, the warning naming link and target,
   unless a pattern admits the link's path (or, inside the root, the target's). Other links
   are packed as ``entries`` decides; those leading out of the root are warned about.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .discover import Discovery, discover
from .model import SelectionSettings, SnapshotError
from .probe import holds_cache_tag
from .rules import (
    ENV_MARKERS,
    PathRules,
    ancestor_folders,
    compile_ignore,
    leaves,
    listing,
    looks_secret,
)

FROZENIGNORE = ".frozenignore"
RESERVED_DIR = ".frozen"  # holds the manifest inside an archive

# origin of a selected path
DISCOVERED, ADDED_BACK, EXPLICIT = "discovered", "added-back", "explicit"


@dataclass(frozen=True)
class Selection:
    root: str
    paths: list[str]  # sorted root-relative POSIX paths ('../' first for outside files)
    origin: dict[str, str]  # path -> DISCOVERED, ADDED_BACK or EXPLICIT
    discovery: Discovery
    rules: PathRules  # as applied, with the tagged folders found
    frozenignore: list[str]  # the lines of .frozenignore, for the record
    untracked: list[str]  # git's untracked, not ignored files outside hard-excluded folders
    data_excluded: list[str]  # sorted: files left out as data, and data folders ('/') not walked
    warnings: list[str] = field(default_factory=list)


def _relative_dir(root: str, path: Path) -> str | None:
    """``path`` relative to ``root`` if it lies inside (None outside); '' is the root."""
    rel = os.path.relpath(os.path.realpath(path), root)
    if rel == ".":
        return ""
    return None if leaves(rel) else rel


def _resolved(path: os.PathLike | str, folders: dict[str, str]) -> tuple[str, str]:
    """``path`` made absolute, and that with its folders resolved but not its last name
    (``folders`` caches the resolved folders: outputs share a few folders by the thousand)."""
    absolute = os.path.abspath(path)
    folder, _, name = absolute.rpartition("/")
    real = folders.get(folder)
    if real is None:
        real = folders[folder] = os.path.join(os.path.realpath(folder or "/"), "")
    return absolute, real + name


def _explicit_relative(
    root: str, path: os.PathLike | str, allow_outside: bool, folders: dict[str, str]
) -> str:
    # Resolve the folders but not the file: a link named explicitly stays a link, while
    # a path through a linked folder is packed under its real location (a stored link
    # must never be the parent of another entry).
    absolute, real = _resolved(path, folders)
    rel = os.path.relpath(real, root)
    if rel == "." or (leaves(rel) and not allow_outside):
        shown = os.fspath(path) if real == absolute else f"{os.fspath(path)} (really {real})"
        raise SnapshotError(
            f"explicitly named file {shown} lies outside the code root {root}: move it into "
            "the code root or pack a root that contains it"
        )
    return rel


def _data_relative(root: str, data: Iterable[Path], folders: dict[str, str]) -> frozenset[str]:
    """The ``data`` paths that lie inside ``root`` (not the root itself), root-relative."""
    inside = root + "/"
    found = set()
    for path in data:
        real = _resolved(path, folders)[1]
        if real.startswith(inside):
            found.add(real[len(inside) :])
    return frozenset(found)


def _lexists(path: str) -> bool:
    # os.path.lexists, without an exception raised and caught per missing name: a pack
    # asks this of every folder holding a selected file.
    return os.access(path, os.F_OK, follow_symlinks=False)


def _tagged_dirs(root: str, paths: Iterable[str]) -> list[str]:
    """Folders among the ancestors of ``paths`` that are environments or caches: holding a
    valid CACHEDIR.TAG, a ``pyvenv.cfg`` or ``conda-meta``."""
    return [
        f
        for f in sorted(ancestor_folders(paths))
        if any(_lexists(f"{root}/{f}/{marker}") for marker in ENV_MARKERS)
        or holds_cache_tag(f"{root}/{f}")
    ]


def _read_frozenignore(root: str) -> list[str]:
    path = os.path.join(root, FROZENIGNORE)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise SnapshotError(f"cannot read {path}: {e.strerror}") from e


def _split(matches: Callable[[str], bool], paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """``paths`` that do not match and those that do."""
    kept: list[str] = []
    matched: list[str] = []
    for path in paths:
        (matched if matches(path) else kept).append(path)
    return kept, matched


def normalise_suffixes(suffixes: Iterable[str]) -> tuple[str, ...]:
    return tuple(s if s.startswith(".") else f".{s}" for s in suffixes if s)


def _rules(
    root: str,
    settings: SelectionSettings,
    store: Path,
    frozenignore: list[str],
    data: frozenset[str],
) -> PathRules:
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
    return PathRules(
        folder_names=frozenset(settings.exclude_folders),
        excluded_dirs=frozenset(excluded_dirs),
        code_suffixes=normalise_suffixes(settings.code_suffixes),
        user_exclude=compile_ignore([*frozenignore, *settings.exclude]),
        data=data,
    )


def select(
    root: str,
    settings: SelectionSettings,
    explicit: Iterable[os.PathLike | str],
    store: Path,
    allow_outside: bool = False,
    meanwhile: Callable[[list[str]], None] | None = None,
) -> Selection:
    """Apply the selection rules to the resolved code root ``root``. ``meanwhile``: work
    for the wait for git's walk of the tree, given the tracked files that are neither
    hard-excluded nor data (see ``discover``)."""
    folders: dict[str, str] = {}
    frozenignore = _read_frozenignore(root)
    data = _data_relative(root, settings.data, folders)
    rules = _rules(root, settings, store, frozenignore, data)
    explicit_paths = [_explicit_relative(root, p, allow_outside, folders) for p in explicit]

    def tracked_known(tracked: list[str]) -> None:
        assert meanwhile is not None
        meanwhile([p for p in tracked if not rules.hard_excluded(p) and not rules.is_data(p)])

    found, warnings = discover(root, rules, store, tracked_known if meanwhile else None)

    included, _ = _split(rules.hard_excluded, found.included)
    added_back, _ = _split(rules.hard_excluded, filter(rules.is_code, found.ignored))
    named, dropped = _split(rules.hard_excluded, explicit_paths)
    # Outside files are named one by one: the folders above the root are not the tree's.
    tagged = _tagged_dirs(root, [*included, *added_back, *(p for p in named if not leaves(p))])
    if tagged:  # tags only exclude more: filtering the survivors again is enough
        rules = replace(rules, excluded_dirs=rules.excluded_dirs.union(tagged))
        included, _ = _split(rules.hard_excluded, included)
        added_back, _ = _split(rules.hard_excluded, added_back)
        named, more = _split(rules.hard_excluded, named)
        dropped += more
    included, data_included = _split(rules.is_data, included)
    added_back, data_added = _split(rules.is_data, added_back)

    origin: dict[str, str] = {}
    for path in included:
        if not rules.user_excluded(path):
            origin[path] = DISCOVERED
    for path in added_back:
        if not rules.user_excluded(path):
            origin[path] = ADDED_BACK
    secrets = _secrets(origin, settings.allow_secrets)
    for path in secrets:
        del origin[path]
    for path in named:
        origin[path] = EXPLICIT
    links = _links(root, [p for p in origin if not leaves(p)])
    secret_links = _secret_links(root, links, settings.allow_secrets)
    named_secret_links = [p for p in secret_links if origin[p] == EXPLICIT]
    secret_links = [p for p in secret_links if origin[p] != EXPLICIT]
    for path in secret_links:
        del origin[path]

    # A data file named explicitly is packed all the same (rule 2).
    data_excluded = [p for p in (*data_included, *data_added) if p not in origin]
    data_excluded += (f"{d}/" for d in found.data_folders)
    warnings += _warnings(found, rules, origin, dropped)
    left_out = sorted([*secrets, *(f"{p} -> {links[p]}" for p in secret_links)])
    if left_out:
        warnings.append(
            f"{len(left_out)} file(s) that look like credentials were left out of the snapshot "
            f"(a symbolic link by its target too): {listing(left_out, limit=20)}; to pack "
            f"some anyway, name them (the link, not its target) with "
            f"{settings.option('allow_secrets')} PATTERN (gitignore syntax)"
        )
    named_secrets = [p for p in named if looks_secret(p)]
    named_secrets += (f"{p} -> {links[p]}" for p in named_secret_links)
    leaving = [
        f"{p} -> {target}"
        for p, target in sorted(links.items())
        if p in origin and target[0] == "/"
    ]
    if leaving:
        warnings.append(
            f"{len(leaving)} symbolic link(s) lead out of the code root {root}; the snapshot "
            f"holds a copy of each target's content, not the link: {listing(leaving, limit=20)}"
        )
    if named_secrets:
        warnings.append(
            "files that look like credentials are packed because the workflow names them "
            f"(config files, scripts): {listing(named_secrets)}; the snapshot's copies are "
            "no more readable than these files"
        )
    return Selection(
        root=root,
        paths=sorted(origin),
        origin=origin,
        discovery=found,
        rules=rules,
        frozenignore=frozenignore,
        untracked=[
            p for p in found.untracked if not rules.hard_excluded(p) and not rules.is_data(p)
        ],
        data_excluded=sorted(data_excluded),
        warnings=warnings,
    )


def _secrets(origin: dict[str, str], allowed: tuple[str, ...]) -> list[str]:
    """Selected files that look like credentials and no ``allowed`` pattern admits."""
    spec = compile_ignore(allowed)
    return sorted(
        p for p in origin if looks_secret(p) and not (spec is not None and spec.match_file(p))
    )


def _links(root: str, paths: list[str]) -> dict[str, str]:
    """The symbolic links among the root-relative ``paths``, each with its target's real
    path: root-relative inside the root, absolute outside it. Dangling links and loops are
    left to ``entries`` (skipped with a warning). One listing per folder, no stat per file:
    the folder's entries tell the links apart."""
    by_folder: dict[str, list[str]] = {}
    for path in paths:
        folder, _, name = path.rpartition("/")
        by_folder.setdefault(folder, []).append(name)
    links: dict[str, str] = {}
    for folder, names in by_folder.items():
        full = f"{root}/{folder}" if folder else root
        try:
            with os.scandir(full) as it:
                linked = {e.name for e in it if e.is_symlink()}
        except OSError:
            continue  # a folder gone or unreadable: entries says so
        for name in linked.intersection(names):
            path = f"{folder}/{name}" if folder else name
            try:
                real = os.path.realpath(f"{root}/{path}", strict=True)
            except OSError:
                continue
            rel = os.path.relpath(real, root)
            links[path] = real if leaves(rel) else rel
    return links


def _secret_links(root: str, links: dict[str, str], allowed: tuple[str, ...]) -> list[str]:
    """Links whose target looks like a credential (``looks_secret`` of its path: inside the
    root relative to it, outside by its folders and name) and that no ``allowed`` pattern
    admits by the link's path (or, inside the root, its target's). The first hop of a chain
    of links counts too."""
    spec = compile_ignore(allowed)
    found = []
    for path, target in links.items():
        try:
            hop = os.path.join(os.path.dirname(path), os.readlink(f"{root}/{path}"))
        except OSError:
            hop = target  # replaced meanwhile: entries sees what is there
        if not (looks_secret(target) or looks_secret(os.path.normpath(hop))):
            continue
        if spec is not None and (
            spec.match_file(path) or (target[0] != "/" and spec.match_file(target))
        ):
            continue
        found.append(path)
    return sorted(found)


def _warnings(
    found: Discovery, rules: PathRules, origin: dict[str, str], dropped: list[str]
) -> list[str]:
    warnings = []
    if dropped:
        warnings.append(
            f"{len(dropped)} explicitly named file(s) lie in hard-excluded folders and were "
            f"not packed: {listing(sorted(set(dropped)))}"
        )
    nested = [
        p
        for p in found.nested_repos
        if not rules.hard_excluded(p) and not rules.user_excluded(p) and not rules.is_data(p)
    ]
    if nested:
        warnings.append(
            "git repositories nested in the code root are not packed (make them submodules "
            f"or exclude them): {listing(nested)}"
        )
    if found.unlisted:
        warnings.append(
            "ignored folders that cannot be listed were skipped (no code file in them was "
            f"added back): {listing(sorted(found.unlisted))}"
        )
    return warnings
