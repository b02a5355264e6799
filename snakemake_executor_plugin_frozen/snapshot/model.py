"""The snapshot engine's public value types: settings in, result out, one error type."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class SnapshotError(Exception):
    """Every refusal of the snapshot engine.

    The message names the file or setting at fault and says what to do about it; its first
    line is a complete one-line reason (the command line prints it after ``error:``).
    """


@dataclass(frozen=True)
class SelectionSettings:
    """Which files of the code root go into a snapshot (see ``select.py`` for the rules)."""

    exclude_folders: tuple[str, ...] = (".git", ".snakemake", "wandb", "outputs", "datasets")
    code_suffixes: tuple[str, ...] = (".py", ".sh", ".yaml", ".yml", ".toml", ".smk")
    exclude: tuple[str, ...] = ()
    max_size_mb: float = 200
    skip_size_check: bool = False
    extra_excluded_dirs: tuple[Path, ...] = ()
    # The workflow's outputs, logs and benchmarks (absolute; files or folders, existing or
    # not): data, never packed unless named explicitly. Paths outside the root are ignored.
    data: tuple[Path, ...] = ()
    # Gitignore-style patterns of files that look like credentials but are packed anyway.
    allow_secrets: tuple[str, ...] = ()
    # How messages spell a setting: "--" for `snakemake-frozen pack`, "--frozen-" for
    # snakemake, where the settings are executor options.
    option_prefix: str = "--"

    def option(self, name: str) -> str:
        """The command line option of the setting ``name``."""
        return self.option_prefix + name.replace("_", "-")


DEFAULT_SETTINGS = SelectionSettings()


@dataclass(frozen=True)
class PackResult:
    """What ``pack`` stored (or found already stored)."""

    id: str
    archive: Path
    manifest: Path
    archive_sha256: str
    files: int
    bytes: int
    archive_bytes: int
    created: bool
    warnings: tuple[str, ...]
    added_back: tuple[tuple[str, int], ...]  # (path, bytes) packed by the add-back, by path
    data_excluded: int  # paths left out as data (a folder not walked counts once)
    prefix: str  # the folder of the archive holding the code root ('' without outside files)
