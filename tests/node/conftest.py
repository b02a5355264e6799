"""Fixtures of the node tests."""

from pathlib import Path

import pytest
from helpers.node import make_code

from snakemake_executor_plugin_frozen.snapshot import PackResult, pack


@pytest.fixture
def snapshot(tmp_path: Path) -> tuple[Path, PackResult]:
    """A small code root (`make_code`) and its snapshot, stored in tmp_path/store."""
    code = make_code(tmp_path / "code")
    return code, pack(code, tmp_path / "store")
