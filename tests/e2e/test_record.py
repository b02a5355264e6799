"""The record read back after real runs on the real cluster.

``tests/workflows/recorded`` runs twice with ``--executor frozen`` in a git repository of its
own, with a committed edit of ``scripts/remade.py`` in between: run 1 makes ``out/kept.txt``
and ``out/remade.txt`` from snapshot A, run 2 makes only ``out/remade.txt`` again, from
snapshot B. The tests share those two runs (module scope) and run in file order: ``verify``
puts back what it damages, and ``gc``, which removes A and B, comes last.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.files import sha256_of
from helpers.records import flip_byte, run_cli, unlink_copy
from helpers.snakemake import BackgroundRun, make_workflow, run_snakemake
from helpers.snapshots import git

from snakemake_executor_plugin_frozen import journal
from snakemake_executor_plugin_frozen.record import gc
from snakemake_executor_plugin_frozen.record.layout import Layout
from snakemake_executor_plugin_frozen.rule_copies import independent_copy

pytestmark = pytest.mark.slurm

SCRIPT = "scripts/remade.py"
KEPT, REMADE = "out/kept.txt", "out/remade.txt"
NODES = {"node1", "node2"}
RUN = ("--executor", "frozen", "--jobs", "2")
SHORT = 12


@dataclass(frozen=True)
class Runs:
    workdir: Path
    runs: list[str]  # run ids, in order
    snapshots: list[str]  # each run's snapshot id
    commits: list[str]  # the commit each run started from

    @property
    def layout(self) -> Layout:
        return Layout.of(self.workdir)

    def copy(self, rule: str, snapshot: str, suffix: str = ".tar.zst") -> Path:
        return self.layout.logdir / f"rule_{rule}" / f"code-{snapshot[:SHORT]}{suffix}"


def _records(workdir: Path, event: str) -> list[dict]:
    contents = journal.read(Layout.of(workdir).journal)
    return [r for r in contents.records if r["event"] == event]


def _set_version(workdir: Path, version: str) -> None:
    path = workdir / SCRIPT
    text = path.read_text()
    path.write_text(text.replace(text.split('"')[1], version, 1))


def _commit(workdir: Path, message: str) -> str:
    git(workdir, "commit", "-qam", message)
    return git(workdir, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, slurm_cluster: None) -> Runs:
    ignore = {".gitignore": "out/\n.snakemake/\n"}
    workdir = make_workflow(tmp_path_factory.mktemp("record-e2e"), "recorded", files=ignore)
    git(workdir, "init", "-q")
    git(workdir, "add", "-A")
    commits = [_commit(workdir, "v1")]
    run_snakemake(workdir, *RUN)
    _set_version(workdir, "v2")
    commits.append(_commit(workdir, "v2"))
    run_snakemake(workdir, *RUN)
    starts = _records(workdir, "run")
    return Runs(workdir, [r["run"] for r in starts], [r["snapshot"] for r in starts], commits)


def test_the_journal_and_sacct_name_each_jobs_snapshot(runs: Runs) -> None:
    assert len(set(runs.snapshots)) == 2 and len(runs.runs) == 2
    submitted = _records(runs.workdir, "submitted")
    by_run = {run: {r["rule"]: r for r in submitted if r["run"] == run} for run in runs.runs}
    assert sorted(by_run[runs.runs[0]]) == ["kept", "remade"]
    assert sorted(by_run[runs.runs[1]]) == ["remade"]  # kept.txt is not made again
    for run, snapshot in zip(runs.runs, runs.snapshots, strict=True):
        assert {r["snapshot"] for r in by_run[run].values()} == {snapshot}
    ended = {(r["run"], r["slurm_id"]): r for r in _records(runs.workdir, "ended")}
    assert set(ended) == {(r["run"], r["slurm_id"]) for r in submitted}
    # EXIT 0: the job's own end hint, not yet confirmed by SLURM when the run ended.
    assert all(r["state"] in ("COMPLETED", "EXIT 0") and r["node"] in NODES for r in ended.values())

    for run, snapshot in zip(runs.runs, runs.snapshots, strict=True):
        expected = {r["slurm_id"] for r in by_run[run].values()}
        comments = _sacct_comments(run, len(expected))
        assert set(comments) == expected
        assert all(f" snapshot={snapshot[:SHORT]} " in c for c in comments.values()), comments


def _sacct_comments(run: str, count: int) -> dict[str, str]:
    """SLURM job id -> comment of the jobs named ``run``, once the database has them."""
    deadline = time.monotonic() + 30
    while True:
        out = subprocess.run(
            ["sacct", "-X", "-n", "-P", "--name", run, "-o", "JobID,Comment"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        comments = dict(line.split("|", 1) for line in out.splitlines() if line)
        if len(comments) >= count or time.monotonic() > deadline:
            return comments
        time.sleep(1)


def test_which_names_the_snapshot_of_the_run_that_made_each_output(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "-C", str(runs.workdir), "which", KEPT, REMADE, "--json")
    assert code == 0
    answers = {a["output"]: a for a in json.loads(out)["outputs"]}
    submitted = {(r["run"], r["rule"]): r for r in _records(runs.workdir, "submitted")}
    for output, rule, index in ((KEPT, "kept", 0), (REMADE, "remade", 1)):
        answer = answers[output]
        assert answer["found"] and answer["rule"] == rule
        assert answer["snapshot"] == runs.snapshots[index]
        assert (answer["commit"], answer["dirty"]) == (runs.commits[index], False)
        assert answer["slurm_id"] == submitted[(runs.runs[index], rule)]["slurm_id"]
        assert answer["node"] in NODES and answer["notes"] == []

    code, out, _ = run_cli(capsys, "-C", str(runs.workdir), "which", REMADE)
    row = out.splitlines()[1].split()
    assert row[:4] == [REMADE, "remade", "-", runs.snapshots[1][:SHORT]]


def test_diff_shows_exactly_the_changed_file(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = (s[:8] for s in runs.snapshots)
    code, out, _ = run_cli(capsys, "-C", str(runs.workdir), "diff", a, b)
    assert code == 1
    assert out.splitlines()[2:] == [f"M  {SCRIPT}"]
    code, out, _ = run_cli(capsys, "-C", str(runs.workdir), "diff", a, b, "--json", "-p")
    shown = json.loads(out)
    assert (shown["added"], shown["removed"], shown["environment"]) == ([], [], [])
    assert [c["path"] for c in shown["changed"]] == [SCRIPT]
    assert '-VERSION = "v1"\n+VERSION = "v2"\n' in shown["patch"]

    code, out, _ = run_cli(capsys, "-C", str(runs.workdir), "diff", a, a)
    assert (code, out.strip()) == (0, "")


def test_show_prints_the_programs_and_conda_env_the_run_recorded(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "-C", str(runs.workdir), "show", runs.snapshots[0][:8])
    assert code == 0
    lines = {" ".join(line.split()) for line in out.splitlines()}
    expected = set()
    for program in ("sort", "tr"):  # of rule kept's shell: command (printf is a builtin)
        path = os.path.realpath(shutil.which(program) or program)
        expected.add(f"program {program}: {path} {sha256_of(Path(path))[:SHORT]}")
    assert {line for line in lines if line.startswith("program ")} == expected
    conda = sha256_of(runs.workdir / "envs/tools.yaml")[:SHORT]
    assert f"conda env envs/tools.yaml {conda}" in lines


def _restored_files(dest: Path) -> dict[str, bytes]:
    files = {}
    for folder, _, names in os.walk(dest):
        for name in names:
            path = Path(folder, name)
            rel = path.relative_to(dest).as_posix()
            if not rel.startswith(".frozen/"):
                files[rel] = path.read_bytes()
    return files


def _committed(workdir: Path, commit: str) -> dict[str, bytes]:
    names = git(workdir, "ls-tree", "-r", "--name-only", commit).split()
    return {
        name: subprocess.run(
            ["git", "show", f"{commit}:{name}"], cwd=workdir, capture_output=True, check=True
        ).stdout
        for name in names
    }


def test_restore_gives_the_committed_files_and_names_reproduce_for_an_output(
    runs: Runs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = runs.workdir
    code, _, _ = run_cli(
        capsys, "-C", str(workdir), "restore", runs.snapshots[0][:8], str(tmp_path / "a")
    )
    assert code == 0
    assert _restored_files(tmp_path / "a") == _committed(workdir, runs.commits[0])

    dest = tmp_path / "b"
    made = (workdir / REMADE).read_bytes()
    code, out, _ = run_cli(
        capsys, "-C", str(workdir), "restore", runs.snapshots[1][:8], str(dest), "--output", REMADE
    )
    assert code == 0
    # No command that would run against the live folder: reproduce reruns the job.
    assert "--forcerun" not in out and "--directory" not in out
    assert out.splitlines()[-1].endswith(f"snakemake-frozen reproduce {REMADE}")
    # Live code that would make something else: reproduce runs the snapshot's script:.
    _set_version(workdir, "v-live")
    try:
        code, out, _ = run_cli(
            capsys, "-C", str(workdir), "reproduce", REMADE, "--into", str(tmp_path / "c")
        )
    finally:
        git(workdir, "checkout", "-q", SCRIPT)
    assert code == 0 and out.splitlines()[-1] == "result: identical", out
    assert (tmp_path / "c" / REMADE).read_bytes() == made
    assert (workdir / REMADE).read_bytes() == made


def test_verify_names_a_flipped_byte_in_the_store_and_in_a_rule_log_copy(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir, first = str(runs.workdir), runs.snapshots[0]
    assert run_cli(capsys, "-C", workdir, "verify")[0] == 0
    stored = runs.layout.store / f"{first}.tar.zst"
    original, mode = stored.read_bytes(), stored.stat().st_mode
    flip_byte(stored)
    try:
        code, out, _ = run_cli(capsys, "-C", workdir, "verify", "--json")
    finally:
        stored.write_bytes(original)
        stored.chmod(mode)
    damaged = json.loads(out)["damaged"]
    assert code != 0 and {d["id"] for d in damaged} == {first}
    # The rule-log copies are files of their own (issue 16 item 6): one problem.
    assert {d["path"] for d in damaged} == {str(stored)}
    assert run_cli(capsys, "-C", workdir, "verify")[0] == 0

    copy = runs.copy("kept", first)
    unlink_copy(copy)
    flip_byte(copy)
    try:
        code, out, _ = run_cli(capsys, "-C", workdir, "verify")
    finally:
        copy.unlink()
        independent_copy(stored, copy)
    assert code != 0
    assert out.splitlines()[0] == (
        f"DAMAGED {first[:SHORT]} {copy}: its sha256 is not the recorded one"
    )
    assert len(out.splitlines()) == 2  # that line and the summary
    assert run_cli(capsys, "-C", workdir, "verify")[0] == 0


def _held(job_id: str) -> str:
    subprocess.run(["scontrol", "hold", job_id], check=True, capture_output=True)
    return subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%T %r"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_gc_keeps_what_a_held_job_needs_and_frees_the_rest(
    runs: Runs, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The runs are seconds old: without the grace period, only SLURM's answer keeps a run.
    monkeypatch.setattr(gc, "GRACE", 0.0)
    workdir, layout = runs.workdir, runs.layout
    _set_version(workdir, "v3")
    _commit(workdir, "v3")
    later = "remade:slurm_extra='--begin=now+600'"  # pending long enough to be held
    with BackgroundRun(workdir, *RUN, "--set-resources", later) as third:
        (job_id, _), *_ = third.wait_for_submissions(1)
        assert _held(job_id).startswith("PENDING JobHeld")  # User, or Admin for root
        start = _records(workdir, "run")[-1]
        held_run, held_snapshot = start["run"], start["snapshot"]
        assert held_snapshot not in runs.snapshots
        old_logs = [Path(r["log"]) for r in _records(workdir, "submitted") if r["run"] != held_run]

        code, out, _ = run_cli(capsys, "-C", str(workdir), "gc", "--older-than", "0", "--json")
        assert code == 0
        report = json.loads(out)
        assert report["kept_for_jobs"] == {held_run: "1 pending, 0 running"}
        assert report["bytes"] > 0
        assert sorted(report["snapshots"]) == sorted(runs.snapshots)
        assert sorted(report["runs"]) == sorted(runs.runs)
        assert (layout.store / f"{held_snapshot}.tar.zst").exists()
        assert runs.copy("remade", held_snapshot).exists()
        assert runs.copy("remade", held_snapshot, ".json").exists()
        for snapshot in runs.snapshots:
            assert not (layout.store / f"{snapshot}.tar.zst").exists()
            assert not (layout.store / f"{snapshot}.json").exists()
            assert not runs.copy("remade", snapshot).exists()
        assert not runs.copy("kept", runs.snapshots[0]).exists()
        assert old_logs and not any(log.exists() for log in old_logs)
        assert {r["run"] for r in _records(workdir, "submitted")} == {held_run}
        assert run_cli(capsys, "-C", str(workdir), "verify")[0] == 0
