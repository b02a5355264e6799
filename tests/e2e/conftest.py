"""Fixtures of the end-to-end tests."""

import shutil
from pathlib import Path

import pytest
from helpers.paths import DEMO


@pytest.fixture
def demo_copy(tmp_path: Path) -> Path:
    """A fresh copy of the demo workflow, outside any git repository."""
    target = tmp_path / "demo"
    shutil.copytree(DEMO, target, ignore=shutil.ignore_patterns("results", ".snakemake"))
    return target
