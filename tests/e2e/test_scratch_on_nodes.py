"""Extracted copies on real nodes: shared by a node's jobs, gone after the last one (unless
kept), a `{VAR}` scratch setting resolved on the node, and a kept copy edited between two
runs caught by the next job."""

import re
import shutil
from pathlib import Path

import pytest
from helpers.snakemake import run_snakemake

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


def forget(copy: str) -> None:
    """Remove a kept copy with its seal, lock and leases (as root: read-only is no bar)."""
    shutil.rmtree(copy, ignore_errors=True)
    shutil.rmtree(f"{copy}.leases", ignore_errors=True)
    for suffix in (".seal", ".lock"):
        Path(copy + suffix).unlink(missing_ok=True)


ON_NODE1 = (
    "--set-resources",
    "count:slurm_extra='--nodelist=node1'",
    "report:slurm_extra='--nodelist=node1'",
    "banner:slurm_extra='--nodelist=node1'",
)


def test_node_scratch_copy_is_removed_after_the_last_job(demo_copy: Path) -> None:
    run_snakemake(demo_copy, "--frozen-scratch", NODE_SCRATCH)
    seen = entries(demo_copy)
    assert len(seen) == 5  # 3 count, report, banner
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
            demo_copy, "--frozen-scratch", NODE_SCRATCH, "--frozen-keep-extracted", *ON_NODE1
        )
        second = entries(demo_copy)
        assert {how for _, how, copy, _ in second if copy in copies} == {"reused"}
    finally:
        for copy in copies:
            forget(copy)


def test_a_kept_copy_edited_between_runs_is_caught_and_the_next_job_runs_the_snapshot(
    demo_copy: Path,
) -> None:
    keep = ("--frozen-scratch", NODE_SCRATCH, "--frozen-keep-extracted", *ON_NODE1)
    run_snakemake(demo_copy, *keep)
    ((copy, node),) = {(copy, node) for _, _, copy, node in entries(demo_copy)}  # one copy
    try:
        # Edited in place as its owner would, read-only modes notwithstanding.
        module = Path(copy, "textstats.py")
        module.chmod(0o644)
        module.write_text(module.read_text().replace("demo-v1", "demo-TAMPERED"))
        shutil.rmtree(demo_copy / "results")
        shutil.rmtree(demo_copy / ".snakemake" / "frozen_logs")
        run_snakemake(demo_copy, *keep)
        report = (demo_copy / "results" / "report.txt").read_text()
        assert "report code demo-v1" in report and "TAMPERED" not in report
        logs = [log.read_text() for log in (demo_copy / ".snakemake").rglob("frozen_logs/**/*.log")]
        caught = [log for log in logs if f"frozen: the copy at {copy} differs" in log]
        assert len(caught) == 1, logs
        assert "(changed: textstats.py): extracted again" in caught[0]
        assert {how for _, how, _, _ in entries(demo_copy)} == {"extracted", "reused"}
        assert "demo-v1" in module.read_text() and node == "node1"
    finally:
        forget(copy)
