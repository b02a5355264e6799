"""Where things are: the checkout, its test workflows, the cluster script and its nodes."""

import os
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
# The workflows the tests run (tests/workflows/<name>; see helpers.snakemake.make_workflow).
WORKFLOWS = TESTS / "workflows"
DEMO = REPO / "workflows" / "demo"
CLUSTER_SCRIPT = REPO / "scripts" / "slurm-cluster"
# The test cluster's nodes (`scripts/slurm-cluster`): each one's scratch is nodes/<node>/scratch.
CLUSTER_NODES = (
    Path(os.environ.get("SLURM_CLUSTER_DIR", "/var/tmp/snakemake-frozen-slurm")) / "nodes"
)
