"""Every program of a job sees the submission-time code: tests/workflows/view reads its files
through bash, perl, awk, `.`, a path made absolute, a subfolder, os.open and mmap, SQLite's C
library, `python -I`, `srun` tasks on two nodes, and outputs written beside code. While the
`gate` job holds the run, the test edits every file from "v1" to "v2", deletes
scripts/deleted.sh and config/removed.txt and adds scripts/added.sh; then it reads what each
job saw.

- The mount view (`--frozen-view auto` on this machine, as root and as an ordinary user):
  everything says v1, the deleted script is back, the added one is not there.
- The Python-level freeze (`--frozen-view python`, and `auto` on a node without user
  namespaces): only what Python's open() reads is frozen; the rest is live.
- The control (`--frozen-mode off`): everything is live.
"""

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers.paths import CLUSTER_SCRIPT, WORKFLOWS
from helpers.snakemake import BackgroundRun, commit_workflow, make_workflow
from helpers.users import OrdinaryUser

pytestmark = pytest.mark.slurm

WORKFLOW = WORKFLOWS / "view"
IGNORE = "out/\n.snakemake/\ngate.open\nconfig/derived.tsv\n"
EDITED = (
    "scripts/tool.py",
    "scripts/tool.sh",
    "scripts/tool.pl",
    "scripts/fmt.awk",
    "scripts/env.sh",
    "config/table.tsv",
    "config/version.txt",
)
ROWS = (
    "python_rel",
    "bash",
    "perl_awk",
    "source",
    "absolute",
    "subfolder",
    "deleted_added",
    "os_open_mmap",
    "sqlite",
    "isolated",
    "twonode",
    "outputs",
)
FROZEN = {
    "python_rel": "python v1 v1",
    "bash": "bash v1",
    "perl_awk": "perl v1 | awk v1",
    "source": "v1",
    "absolute": "v1",
    "subfolder": "bash v1",
    "deleted_added": "deleted-v1 | added-absent",
    "os_open_mmap": "v1 v1",
    "sqlite": "v1",
    "isolated": "v1",
    "twonode": "node1 v1 | node2 v1",
    # config/ also holds an output: its files are bound one by one, so the deleted
    # removed.txt cannot come back (the job's log says so) and the new output is there.
    "outputs": "derived-v1 | derived.tsv params.db table.tsv version.txt",
}
# Python's open() is redirected to the snapshot; nothing else is.
PYTHON_ONLY = {
    "python_rel": "python v2 v1",
    "bash": "bash v2",
    "perl_awk": "perl v2 | awk v2",
    "source": "v2",
    "absolute": "v2",
    "subfolder": "bash v2",
    "deleted_added": "deleted-gone | added-seen",
    "os_open_mmap": "v2 v2",
    "sqlite": "v2",
    "isolated": "v2",
    "twonode": "node1 v2 | node2 v2",
    "outputs": "derived-v2 | derived.tsv params.db table.tsv version.txt",
}
LIVE = {**PYTHON_ONLY, "python_rel": "python v2 v2"}
ARGS = ("--executor", "frozen", "--jobs", "12", "--latency-wait", "10")


def add_params_db(workdir: Path) -> None:
    """The workflow's small SQLite database of its own."""
    with sqlite3.connect(workdir / "config" / "params.db") as db:
        db.execute("create table params (version text)")
        db.execute("insert into params values ('v1')")
    db.close()


def edit(workdir: Path) -> None:
    """What the user does while the jobs wait: edits, a deletion in a code folder and in a
    folder that also holds data, an addition. Done as the owner of the files would."""
    for name in EDITED:
        path = workdir / name
        path.write_text(path.read_text().replace("v1", "v2"))
    with sqlite3.connect(workdir / "config" / "params.db") as db:
        db.execute("update params set version = 'v2'")
    db.close()
    (workdir / "scripts" / "deleted.sh").unlink()
    (workdir / "config" / "removed.txt").unlink()
    (workdir / "scripts" / "added.sh").write_text("echo added-v2\n")
    (workdir / "gate.open").touch()


def seen(workdir: Path) -> dict[str, str]:
    return {
        row: " | ".join((workdir / "out" / f"{row}.txt").read_text().split("\n")[:-1]).strip()
        for row in ROWS
    }


def run_with_edits(workdir: Path, *args: str, python: Sequence[str] = (sys.executable,)) -> str:
    with BackgroundRun(workdir, *ARGS, *args, python=python) as run:
        run.wait_for_submissions(1)  # the gate; the others wait for it
        edit(workdir)
        code, output = run.finish()
    assert code == 0, output
    return output


def job_logs(workdir: Path) -> dict[str, str]:
    logs = (workdir / ".snakemake" / "frozen_logs").glob("rule_*/**/*.log")
    return {log.parent.name.removeprefix("rule_"): log.read_text() for log in logs}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The workflow as a git repository, with a small SQLite database of its own."""
    target = make_workflow(tmp_path, "view")
    add_params_db(target)
    return commit_workflow(target, IGNORE)


def test_every_program_sees_the_snapshot_in_the_mount_view(workdir: Path) -> None:
    output = run_with_edits(workdir)
    versions = seen(workdir)
    print(json.dumps(versions, indent=1))
    assert versions == FROZEN
    logs = job_logs(workdir)
    assert all("frozen: view: mount (mount namespace on node" in log for log in logs.values())
    assert "config/removed.txt: deleted since submission" in logs["outputs"]
    # No start-up warning about shell: commands reading live files: they do not.
    assert "relative to the working directory" not in output
    journal = workdir / ".snakemake" / "frozen" / "journal.jsonl"
    ended = [json.loads(line) for line in journal.read_text().splitlines()]
    assert {r["view"] for r in ended if r["event"] == "ended"} == {"mount"}


def test_the_python_view_freezes_only_what_python_opens(workdir: Path) -> None:
    output = run_with_edits(workdir, "--frozen-view", "python")
    versions = seen(workdir)
    print(json.dumps(versions, indent=1))
    assert versions == PYTHON_ONLY
    assert "its shell command names scripts/tool.sh relative to the working directory" in output
    assert "frozen: view: python (asked for" in job_logs(workdir)["python_rel"]


def test_without_freezing_every_program_sees_the_edits(workdir: Path) -> None:
    run_with_edits(workdir, "--frozen-mode", "off")
    versions = seen(workdir)
    print(json.dumps(versions, indent=1))
    assert versions == LIVE


def user_workflow(user: OrdinaryUser) -> Path:
    workdir = user.workspace / "wf"
    user.copy_in(WORKFLOW, workdir)
    user.run(
        "python",
        "-c",
        "import sqlite3; db = sqlite3.connect('config/params.db'); "
        "db.execute('create table params (version text)'); "
        "db.execute(\"insert into params values ('v1')\"); db.commit()",
        cwd=workdir,
    )
    (workdir / ".gitignore").write_text(IGNORE)
    os.chown(workdir / ".gitignore", user.uid, user.gid)
    git = ("git", "-c", "user.email=t@example.org", "-c", "user.name=t")
    for step in (("init", "-q"), ("add", "-A"), ("commit", "-qm", "v1")):
        user.run(*git, *step, cwd=workdir)
    return workdir


def test_an_ordinary_user_gets_the_mount_view(ordinary_user: OrdinaryUser) -> None:
    workdir = user_workflow(ordinary_user)
    run_with_edits(workdir, python=ordinary_user.argv("python"))
    versions = seen(workdir)
    print(json.dumps(versions, indent=1))
    assert versions == FROZEN
    logs = job_logs(workdir)
    assert all("frozen: view: mount (user and mount namespace" in log for log in logs.values())
    # Outputs are the user's own, as without the view.
    assert {p.stat().st_uid for p in (workdir / "out").iterdir()} == {ordinary_user.uid}


# The cluster's nodes (`scripts/slurm-cluster start --nodes 2`, tests/conftest.py).
NODES = ("node1", "node2")
ENOSPC_REASON = (
    "unshare: No space left on device (user namespaces are switched off on this node "
    "(user.max_user_namespaces=0) or their limit is reached)"
)


def restart_nodes(*args: str) -> None:
    result = subprocess.run(
        [str(CLUSTER_SCRIPT), "restart-node", *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"restart-node {' '.join(args)}:\n{result.stdout}{result.stderr}"


@contextmanager
def no_user_namespaces(nodes: Sequence[str] = NODES) -> Iterator[None]:
    """The nodes as if their administrator had set user.max_user_namespaces=0, while in the
    block: `scripts/slurm-cluster restart-node NODE... --no-user-namespaces` restarts their
    slurmd in a user namespace of its own where that limit is 0 (this machine's root cannot
    change the machine-wide setting), so every job they start gets ENOSPC from
    unshare(CLONE_NEWUSER). Afterwards, whatever happened, they are restarted as usual."""
    try:
        restart_nodes(*nodes, "--no-user-namespaces")
        yield
    finally:
        restart_nodes(*nodes)


@pytest.mark.slow  # restarts both nodes' slurmd: others' jobs meanwhile get no view
def test_without_user_namespaces_auto_falls_back_and_says_so(ordinary_user: OrdinaryUser) -> None:
    workdir = user_workflow(ordinary_user)
    with no_user_namespaces():
        output = run_with_edits(workdir, python=ordinary_user.argv("python"))
    versions = seen(workdir)
    print(json.dumps(versions, indent=1))
    assert versions == PYTHON_ONLY
    logs = job_logs(workdir)
    ran_on = {}
    for rule, log in logs.items():
        view = [line for line in log.splitlines() if line.startswith("frozen: view:")]
        print(rule, view)
        assert len(view) == 1, log
        node = view[0].partition(": unshare: ")[0]
        node = node.removeprefix("frozen: view: python (the mount view is unavailable on ")
        assert node in NODES, view[0]
        assert view[0] == (
            f"frozen: view: python (the mount view is unavailable on {node}: {ENOSPC_REASON}; "
            "only Python's open() and imports read the snapshot)"
        )
        ran_on[rule] = node
    summary = [line for line in output.splitlines() if "ran without the mount view" in line]
    print(summary)
    assert len(summary) == 1, output
    assert summary[0].startswith(
        f"frozen: {len(logs)} job(s) ran without the mount view, on "
        f"{', '.join(sorted(set(ran_on.values())))}: {ENOSPC_REASON}. "
    ), summary[0]


@pytest.mark.slow  # restarts both nodes' slurmd: others' jobs meanwhile get no view
def test_without_user_namespaces_the_mount_view_fails_the_job(
    ordinary_user: OrdinaryUser,
) -> None:
    workdir = user_workflow(ordinary_user)
    ordinary_user.run("touch", "gate.open", cwd=workdir)
    with no_user_namespaces():
        result = ordinary_user.run(
            "python", "-m", "snakemake", *ARGS, "--frozen-view", "mount", "out/gate.txt",
            cwd=workdir, check=False,
        )  # fmt: skip
    assert result.returncode != 0
    log = job_logs(workdir)["gate"]
    print(log)
    failed = [line for line in log.splitlines() if "the job's mount view is unavailable on" in line]
    assert len(failed) == 1, log
    node = failed[0].partition("the job's mount view is unavailable on ")[2].partition(":")[0]
    assert node in NODES, log
    assert f"the job's mount view is unavailable on {node}: {ENOSPC_REASON}. " in failed[0]
    assert "frozen: view:" not in log  # it did not run, in no view
    assert not (workdir / "out" / "gate.txt").exists()
