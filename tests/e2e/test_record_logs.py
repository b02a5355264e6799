"""No two jobs of any two runs share a log path (local job ids restart at ``local1`` every
run; SLURM's wrap around or restart on a new cluster), so ``gc`` never removes the log of a
run it keeps and ``which`` never points at a log another run overwrote (issue 16 item 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.records import run_cli
from helpers.snakemake import LOCAL, run_snakemake

from snakemake_executor_plugin_frozen import journal
from snakemake_executor_plugin_frozen.record.layout import Layout


@pytest.mark.usefixtures("no_grace")
def test_two_runs_keep_two_logs_and_gc_keeps_the_kept_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(
        "rule a:\n    output: 'out.txt'\n    shell: 'cat helper.py > {output}'\n"
    )
    (workdir / "helper.py").write_text("VERSION = 1\n")
    run_snakemake(workdir, *LOCAL)
    (workdir / "helper.py").write_text("VERSION = 2\n")  # a second snapshot, and run
    run_snakemake(workdir, *LOCAL, "--forceall")

    records = journal.read(Layout.of(workdir).journal).records
    logs = [Path(r["log"]) for r in records if r["event"] == "submitted"]
    assert len(logs) == 2 and len(set(logs)) == 2, logs
    assert {r["slurm_id"] for r in records if r["event"] == "submitted"} == {"local1"}
    first_log, second_log = logs

    code, out, _ = run_cli(capsys, "-C", str(workdir), "gc", "--keep-last", "1", "--json")
    assert code == 0 and len(json.loads(out)["runs"]) == 1
    assert not first_log.exists() and second_log.is_file()
    code, out, _ = run_cli(capsys, "-C", str(workdir), "which", "--json", "out.txt")
    (answer,) = json.loads(out)["outputs"]
    assert code == 0 and Path(answer["log"]) == second_log


def test_a_log_folder_the_setting_moved_away_from_is_never_packed(tmp_path: Path) -> None:
    """Whatever a run of this plugin wrote (logs, batch scripts, rule-log archives) is no
    code, also once ``frozen-logdir`` points elsewhere (issue 16 item 4)."""
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(
        "rule a:\n    output: 'out.txt'\n    shell: 'echo 1 > {output}'\n"
    )
    first = run_snakemake(workdir, *LOCAL, "--frozen-logdir", "logs/slurm")
    assert list((workdir / "logs/slurm").rglob("*.sh")), first.stderr
    run_snakemake(workdir, *LOCAL, "--forceall")
    records = journal.read(Layout.of(workdir).journal).records
    second = [r["snapshot"] for r in records if r["event"] == "run"][-1]
    manifest = json.loads((Layout.of(workdir).store / f"{second}.json").read_text())
    assert [f["path"] for f in manifest["files"]] == ["Snakefile"]


@pytest.mark.usefixtures("no_grace")
def test_gc_removes_a_runs_files_where_its_record_says_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The run record names its log folder: once the setting moved the logs, gc still
    finds and removes the old run's log, batch script and rule-log copies there."""
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(
        "rule a:\n    output: 'out.txt'\n    shell: 'echo 1 > {output}'\n"
    )
    (workdir / "helper.py").write_text("VERSION = 1\n")
    run_snakemake(workdir, *LOCAL, "--frozen-logdir", "logs/slurm")
    old = sorted(p for p in (workdir / "logs/slurm").rglob("*") if p.is_file())
    assert any(p.name.endswith(".log") for p in old) and any(p.suffix == ".sh" for p in old)
    (workdir / "helper.py").write_text("VERSION = 2\n")
    run_snakemake(workdir, *LOCAL, "--forceall")
    code, out, _ = run_cli(capsys, "-C", str(workdir), "gc", "--keep-last", "1", "--json")
    assert code == 0 and len(json.loads(out)["runs"]) == 1, out
    left = sorted(p.name for p in (workdir / "logs/slurm").rglob("*") if p.is_file())
    assert left == [".snakemake-frozen-logs"], left
