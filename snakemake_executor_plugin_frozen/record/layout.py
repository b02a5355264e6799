"""Where a working directory keeps its record: the store, the journal and the rule logs."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from snakemake_executor_plugin_frozen.journal import JOURNAL
from snakemake_executor_plugin_frozen.snapshot.rules import LOG_FOLDER_MARKER

STORE = Path(".snakemake/frozen/snapshots")
LOGDIR = Path(".snakemake/frozen_logs")  # the executor's --frozen-logdir default
# In a log folder: a run's jobs leave a file named by their job id here as they end.
ENDED = ".ended"


@dataclass(frozen=True)
class Layout:
    workdir: Path  # absolute
    logdir: Path  # absolute

    @classmethod
    def of(cls, workdir: Path, logdir: Path | None = None) -> Layout:
        """``logdir`` relative to ``workdir`` unless absolute, as the executor reads it."""
        root = Path(os.path.abspath(workdir))
        return cls(root, Path(os.path.abspath(root / (logdir or LOGDIR))))

    @classmethod
    def find(cls, start: Path, logdir: Path | None = None) -> Layout:
        """The layout of the workflow folder ``start`` lies in: the nearest folder at or
        above it that holds a record (``.snakemake/frozen``), as git finds its repository
        from a subfolder; ``start`` itself when none does."""
        here = Path(os.path.abspath(start))
        for folder in (here, *here.parents):
            if (folder / STORE.parent).is_dir():
                return cls.of(folder, logdir)
        return cls.of(here, logdir)

    @property
    def store(self) -> Path:
        return self.workdir / STORE

    @property
    def journal(self) -> Path:
        return self.workdir / JOURNAL

    def ended(self, run_id: str) -> Path:
        """Where the run's jobs say that they ended (a hint when to ask SLURM)."""
        return ended_folder(self.logdir, run_id)


def ended_folder(logdir: Path, run_id: str) -> Path:
    return logdir / ENDED / run_id


def mark_logdir(logdir: Path) -> None:
    """Mark a log folder: what it holds is never packed as code, wherever the setting moves
    the logs later (``rules.LOG_FOLDER_MARKER``). OSError when it cannot be, and then no
    half-written marker is left."""
    marker = logdir / LOG_FOLDER_MARKER
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        if not marker.exists():
            marker.write_text(
                "This folder holds logs, batch scripts and code archives of "
                "snakemake-executor-plugin-frozen runs; no snapshot packs it.\n"
            )
    except OSError:
        with contextlib.suppress(OSError):  # a half-written marker marks nothing
            marker.unlink(missing_ok=True)
        raise
