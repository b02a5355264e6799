"""The demo workflow run by an ordinary (non-root) user on the real cluster, from its own
workspace with its own Python: everything it makes is its own, its jobs run on the nodes as
it, and the snapshot is extracted into its own private folder in node scratch."""

import json
import re
import stat
from pathlib import Path

import pytest
from helpers.paths import DEMO
from helpers.snakemake import SUBMITTED_RE
from helpers.users import OrdinaryUser

pytestmark = pytest.mark.slurm

# First line of a job's log (node helper): which snapshot, extracted where, on which node.
ENTRY = re.compile(r"frozen: snapshot (\w+) from \S+ (extracted|reused) at (\S+) on (\w+)")
# The test cluster's node-wide scratch root (its TaskProlog exports it; TMPDIR is per job
# there and goes with the job): what the node helper makes in it stays to be looked at.
NODE_SCRATCH = "{SLURM_CI_NODE_SCRATCH}"


def test_demo_workflow_runs_as_an_ordinary_user(ordinary_user: OrdinaryUser) -> None:
    user = ordinary_user
    workflow = user.workspace / "demo"
    user.copy_in(DEMO, workflow, exclude=("results", ".snakemake"))
    git = ("git", "-c", "user.name=Test User", "-c", "user.email=test@example.org")
    user.run(*git, "init", "-q", cwd=workflow)
    user.run(*git, "add", "-A", cwd=workflow)
    user.run(*git, "commit", "-qm", "demo workflow", cwd=workflow)

    # The demo's own profile (profiles/default: executor frozen), as in scripts/demo.
    result = user.run(
        "python",
        "-m",
        "snakemake",
        "--executor",
        "frozen",
        "--jobs",
        "4",
        "--frozen-scratch",
        NODE_SCRATCH,
        cwd=workflow,
    )

    report = (workflow / "results" / "report.txt").read_text().splitlines()
    assert report[0] == "# Word statistics (report code demo-v1)"
    rows = {line.split("\t")[0]: line.split("\t") for line in report[1:]}
    assert set(rows) == {"alice", "bob", "carol"}
    assert {row[1] for row in rows.values()} == {"code=demo-v1"}
    assert {row[2] for row in rows.values()} <= {"node1", "node2"}

    # Everything in the workflow is the user's: outputs, logs, the store (nothing root's).
    made = [*(workflow / "results").rglob("*"), *(workflow / ".snakemake").rglob("*")]
    assert len([p for p in made if p.is_file()]) > 10
    everything = [workflow, *workflow.rglob("*")]
    assert [p for p in everything if p.lstat().st_uid != user.uid] == []
    logs = sorted((workflow / ".snakemake" / "frozen_logs").rglob("*.log"))
    assert len(logs) == 5  # 3 count, 1 report, 1 banner
    assert {log.stat().st_uid for log in logs} == {user.uid}

    # The snapshot records who made it and with which Python.
    manifests = list((workflow / ".snakemake" / "frozen_logs").rglob("code-*.json"))
    assert manifests
    manifest = json.loads(manifests[0].read_text())
    assert manifest["user"] == user.name
    assert manifest["python"]["executable"].startswith(f"{user.account.venv}/")

    # SLURM ran every job as the user, on the cluster's nodes.
    jobs = [job_id for job_id, _ in SUBMITTED_RE.findall(result.stderr)]
    assert len(jobs) == 5, result.stderr[-4000:]
    sacct = user.run(
        "sacct", "-X", "-n", "-P", "-j", ",".join(jobs), "--format=JobIDRaw,User,NodeList,State"
    )
    rows_by_job = {line.split("|")[0]: line.split("|") for line in sacct.stdout.splitlines()}
    assert set(rows_by_job) == set(jobs), sacct.stdout
    for job_id, job_user, node, state in rows_by_job.values():
        assert (job_user, state) == (user.name, "COMPLETED"), job_id
        assert node in {"node1", "node2"}, job_id

    # Each node extracted the snapshot into the user's own private folder in its scratch.
    entries = [ENTRY.match(log.read_text().splitlines()[0]) for log in logs]
    assert all(entries), [log.read_text()[:300] for log in logs]
    folders = set()
    for match in entries:
        assert match is not None
        snapshot_id, _, copy, node = match.groups()
        assert re.fullmatch(
            rf"/\S+/nodes/{node}/scratch/snakemake-frozen-{user.uid}/{snapshot_id}", copy
        ), copy
        folders.add(Path(copy).parent)
    for folder in folders:
        info = folder.lstat()
        assert stat.S_ISDIR(info.st_mode), folder
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (user.uid, 0o700), folder
