"""Pure predicates on POSIX paths: the building blocks of the selection rules."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import translate
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

# Names that usually hold credentials; matched against the lower-cased file name.
SECRET_PATTERNS = (
    ".env",
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.keytab",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    ".pgpass",
    ".pypirc",
    "shadow",  # /etc/shadow, reached through a link
    "gshadow",
    "*credential*",
    "*secret*",
    "*token*",
)
# Code about tokens, not a token: tokenizer.py, tokenize.py, tokenization_utils.py.
_NOT_SECRET = ("*tokeniz*",)
# Folders whose every file is a credential.
SECRET_FOLDERS = frozenset({".aws", ".ssh", ".gnupg"})

# Environments and caches hold no code of the workflow, however many ``.py`` files they
# have: they are hard-excluded wherever they lie. Folders so named:
NOT_CODE_FOLDERS = frozenset(
    {"__pycache__", "node_modules", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
)
# and folders holding one of these: a virtual env, a conda env, a log folder of this plugin
# (which keeps its marker when the setting moves the logs elsewhere: the old folder is still
# no code); a folder holding a CACHEDIR.TAG with the signature is one too
# (``probe.holds_cache_tag``).
LOG_FOLDER_MARKER = ".snakemake-frozen-logs"
ENV_MARKERS = frozenset({"pyvenv.cfg", "conda-meta", LOG_FOLDER_MARKER})
# The add-back's walks into ignored folders also stop at another repository.
NOT_CODE_MARKERS = ENV_MARKERS | {".git"}


def compile_ignore(lines: Iterable[str]) -> GitIgnoreSpec | None:
    """Gitignore-syntax patterns as one spec, or None when there are none."""
    patterns = [line for line in lines if line.strip() and not line.startswith("#")]
    if not patterns:
        return None
    from pathspec import GitIgnoreSpec  # imported here: pathspec is only needed when patterns exist

    return GitIgnoreSpec.from_lines(patterns)


def ignore_verdict(spec: GitIgnoreSpec, path: str, is_dir: bool) -> bool | None:
    """True if ``spec`` ignores ``path``, False if a ``!`` pattern re-includes it, else None."""
    return spec.check_file(path + "/" if is_dir else path).include


def ancestor_folders(paths: Iterable[str]) -> set[str]:
    """Every folder that holds one of ``paths``, at any depth (the root, '', left out)."""
    folders: set[str] = set()
    for path in paths:
        folder = path.rpartition("/")[0]
        while folder and folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    return folders


def is_within(folder: str, path: str) -> bool:
    """``path`` is ``folder`` or lies below it (both normalised, absolute or both relative)."""
    return path == folder or path.startswith(folder + "/")


def leaves(rel: str) -> bool:
    """The normalised relative path ``rel`` leads out of the folder it is relative to."""
    return rel == ".." or rel.startswith("../")


def leading_ups(rel: str) -> int:
    """How many '..' components ``rel`` starts with."""
    ups = 0
    while leaves(rel[3 * ups :]):
        ups += 1
    return ups


def listing(paths: list[str], limit: int = 5) -> str:
    """A short human list of paths for messages."""
    shown = ", ".join(paths[:limit])
    return shown if len(paths) <= limit else f"{shown} and {len(paths) - limit} more"


_SECRET = re.compile("|".join(translate(pattern) for pattern in SECRET_PATTERNS))
_NOT_SECRET_RE = re.compile("|".join(translate(pattern) for pattern in _NOT_SECRET))


def looks_secret(path: str) -> bool:
    """``path`` is named like a credential, or lies in a folder of credentials."""
    folder, _, name = path.rpartition("/")
    name = name.lower()
    if _SECRET.match(name) and not _NOT_SECRET_RE.match(name):
        return True
    return not SECRET_FOLDERS.isdisjoint(folder.lower().split("/"))


@dataclass(frozen=True)
class PathRules:
    """The path-only part of the selection settings, compiled once per pack.

    ``folder_names`` match a path component at any depth (the final component too, so a
    symlink or a submodule's ``.git`` file named like an excluded folder is excluded as well);
    ``excluded_dirs`` are root-relative directories (the store, log dirs, tagged caches);
    ``data`` the root-relative outputs, logs and benchmarks of the workflow, files or folders.
    """

    folder_names: frozenset[str]
    excluded_dirs: frozenset[str]
    code_suffixes: tuple[str, ...]
    user_exclude: GitIgnoreSpec | None
    data: frozenset[str]
    # Thousands of files share a few hundred folders: decide each folder once.
    _folders: dict[str, bool] = field(default_factory=dict, init=False, compare=False)

    def hard_excluded(self, path: str) -> bool:
        folder, _, name = path.rpartition("/")
        return self._named_excluded(path, name) or self._excluded(folder)

    def _named_excluded(self, path: str, name: str) -> bool:
        return name in self.folder_names or name in NOT_CODE_FOLDERS or path in self.excluded_dirs

    def _excluded(self, folder: str) -> bool:
        """``folder`` or a folder above it is hard-excluded; decided top-down from the
        deepest folder decided before, without recursion (a tree may be deeper than
        Python's recursion limit)."""
        pending = []
        while folder and folder not in self._folders:
            pending.append(folder)
            folder = folder.rpartition("/")[0]
        verdict = self._folders.get(folder, False) if folder else False
        for above in reversed(pending):
            verdict = verdict or self._named_excluded(above, above.rpartition("/")[2])
            self._folders[above] = verdict
        return verdict

    def is_code(self, path: str) -> bool:
        name = path.rpartition("/")[2]
        return name == "Snakefile" or name.endswith(self.code_suffixes)

    def is_data(self, path: str) -> bool:
        """``path`` is one of the workflow's outputs or lies in an output folder."""
        if not self.data:
            return False
        while path:
            if path in self.data:
                return True
            path = path.rpartition("/")[0]
        return False

    def user_excluded(self, path: str) -> bool:
        return self.user_exclude is not None and self.user_exclude.match_file(path)
