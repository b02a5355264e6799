"""Extracted copies on real nodes: shared by a node's jobs, gone after the last one (unless
kept), and a `{VAR}` scratch setting resolved on the node."""

import re
import shutil
from pathlib import Path

import pytest
from conftest import run_snakemake

pytestmark = pytest.mark.slurm

# The test cluster's TaskProlog exports the node-wide scratch root as SLURM_CI_NODE_SCRATCH
# (scripts/slurm-cluster); TMPDIR is per job there.
NODE_SCRATCH = "{SLURM_CI_NODE_SCRATCH}"
ENTRY = re.compile(r"frozen: snapshot (\w+) from \S+ (extracted|reused) at (\S+) on (\w+)")


def entries(workdir: Path) -> list[tuple[str, str, str, str]]:
    logs = sorted((workdir / ".snakemake" / "frozen_logs").rglob("*.log"))
    found = [ENTRY.match(log.read_text().splitlines()[0]) for log in logs]
    assert all(found), [log.read_text()[:300] for log in logs]
    return [m.groups() for m in found if m]


def test_node_scratch_copy_is_removed_after_the_last_job(demo_copy: Path) -> None:
    run_snakemake(demo_copy, "--frozen-scratch", NODE_SCRATCH)
    seen = entries(demo_copy)
    assert len(seen) == 4
    for snapshot_id, _, copy, node in seen:
        assert re.fullmatch(rf".*/nodes/{node}/scratch/snakemake-frozen-0/{snapshot_id}", copy)
        assert not Path(copy).exists(), f"{copy} outlived its last job"


def test_kept_copies_are_reused_by_the_next_run(demo_copy: Path) -> None:
    run_snakemake(demo_copy, "--frozen-scratch", NODE_SCRATCH, "--frozen-keep-extracted")
    first = entries(demo_copy)
    copies = {copy for _, _, copy, _ in first}
    try:
        assert all(Path(c, "Snakefile").is_file() for c in copies)
        shutil.rmtree(demo_copy / "results")
        shutil.rmtree(demo_copy / ".snakemake" / "frozen_logs")
        run_snakemake(
            demo_copy,
            "--frozen-scratch",
            NODE_SCRATCH,
            "--frozen-keep-extracted",
            "--set-resources",
            "count:slurm_extra='--nodelist=node1'",
            "report:slurm_extra='--nodelist=node1'",
        )
        second = entries(demo_copy)
        assert {how for _, how, copy, _ in second if copy in copies} == {"reused"}
    finally:
        for copy in copies:
            shutil.rmtree(copy, ignore_errors=True)
