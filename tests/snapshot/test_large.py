"""A realistic tree of about 5,000 files / 40 MB (the benchmark's, built once per session)."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest
from helpers.files import tree_files
from helpers.paths import REPO
from helpers.snapshots import OpenCounter, pack_tree, packed

from snakemake_executor_plugin_frozen.snapshot import extract

BENCH = REPO / "benchmarks" / "snapshot_bench.py"


def _build_tree():
    spec = importlib.util.spec_from_file_location("snapshot_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["snapshot_bench"] = module
    spec.loader.exec_module(module)
    return module.build_tree


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = _build_tree()(tmp_path_factory.mktemp("large") / "tree")
    time.sleep(0.05)  # see helpers.snapshots.make_repo(settle=True)
    return root


def test_large_tree_packs_what_git_sees_and_round_trips(tree: Path, tmp_path: Path) -> None:
    result = pack_tree(tree, store=tmp_path / "store")
    assert 4900 <= result.files <= 5100
    assert 38e6 <= result.bytes <= 42e6
    assert result.archive_bytes < result.bytes / 2
    paths = packed(result)
    assert not any(p.startswith((".venv/", "results/", ".snakemake/")) for p in paths)
    assert not any(p.endswith((".log", ".pyc")) for p in paths)
    assert {"Snakefile", "config/local0.yaml", "scratch/u0.py"} <= paths
    out = tmp_path / "out"
    extract(result.archive, out, result.archive_sha256)
    restored = tree_files(out)
    assert set(restored) == paths
    assert all(restored[p] == (tree / p).read_bytes() for p in ("Snakefile", "data/blob3.bin"))


def test_large_unchanged_tree_reads_nothing(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its speed is measured by benchmarks/snapshot_bench.py, not asserted here."""
    first = pack_tree(tree, store=tmp_path / "store")
    counter = OpenCounter(tree, monkeypatch)
    again = pack_tree(tree, store=tmp_path / "store")
    assert again.id == first.id and not again.created
    assert counter.opened == []
