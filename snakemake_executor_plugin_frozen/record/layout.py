"""Where a working directory keeps its record: the store, the journal and the rule logs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from snakemake_executor_plugin_frozen.journal import JOURNAL

STORE = Path(".snakemake/frozen/snapshots")
LOGDIR = Path(".snakemake/frozen_logs")  # the executor's --frozen-logdir default


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
