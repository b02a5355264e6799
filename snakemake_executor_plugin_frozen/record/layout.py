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

    @property
    def store(self) -> Path:
        return self.workdir / STORE

    @property
    def journal(self) -> Path:
        return self.workdir / JOURNAL
