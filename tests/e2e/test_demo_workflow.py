"""The demo workflow end to end on the real SLURM cluster, through its own profile."""

from pathlib import Path

import pytest
from helpers.snakemake import run_snakemake

pytestmark = pytest.mark.slurm


def test_demo_runs_on_slurm(demo_copy: Path) -> None:
    result = run_snakemake(demo_copy)
    report = (demo_copy / "results" / "report.txt").read_text().splitlines()
    assert report[0] == "# Word statistics (report code demo-v1)"
    rows = {line.split("\t")[0]: line.split("\t") for line in report[1:]}
    assert set(rows) == {"alice", "bob", "carol"}
    assert rows["alice"][1] == "code=demo-v1"
    assert rows["alice"][3].startswith("it=3 of=")
    # The jobs ran on the cluster's nodes, not on the submit host.
    assert {row[2] for row in rows.values()} <= {"node1", "node2"}
    assert "submitted as" in result.stderr
    logs = sorted((demo_copy / ".snakemake" / "frozen_logs" / "rule_count").rglob("*.log"))
    assert len(logs) == 3
