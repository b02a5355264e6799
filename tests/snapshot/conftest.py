"""Fixtures of the snapshot tests."""

from pathlib import Path

import pytest
from helpers.snapshots import make_tree, tree_mark


@pytest.fixture(params=["git", "plain"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The test's tree (its `tree` mark, as for `repo`) inside and outside git, at
    tmp_path/repo: links are selected by both discoveries."""
    (files,) = tree_mark(request).args
    return make_tree(tmp_path / "repo", files, request.param)
