"""Trust in the record (issue 15, items 2 and 10): paths and ids taken from the journal or a
manifest are checked before anything is touched, and what the record commands print for
people cannot carry terminal escape sequences (their JSON stays exact)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.records import Job, days_ago, make_site, run_cli

from snakemake_executor_plugin_frozen import journal
from snakemake_executor_plugin_frozen.record.confine import foreign_link
from snakemake_executor_plugin_frozen.record.history import History

RUN = "aaaaaaaa-0000-4000-8000-000000000001"
FORGED = "ffffffff-0000-4000-8000-00000000000f"
EVIL = "\x1b[31m\nred"  # an escape sequence and a line break


def _victim(root: Path) -> Path:
    victim = root / "victim"
    victim.mkdir()
    (victim / "marker").write_text("precious\n")
    return victim


def _forged_job(workdir: Path, run: str, log: Path, time: str) -> list[dict]:
    return [
        journal.run_started(
            run=run, snapshot=None, code_root=workdir, workdir=workdir, argv=[], time=time
        ),
        journal.submitted(
            run=run,
            rule="count",
            wildcards={},
            outputs=["results/x.tsv"],
            job=1,
            slurm_id="999",
            snapshot=None,
            log=log,
            workdir=workdir,
            mode="off",
            time=time,
        ),
        journal.ended(run=run, slurm_id="999", outcome="success", state="COMPLETED", time=time),
    ]


def test_gc_leaves_a_log_outside_the_log_folder_alone_and_says_why(
    tmp_path: Path, no_grace, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    victim = _victim(tmp_path)
    snapshot = site.pack()
    site.run(RUN, snapshot, [Job("count", "results/a.tsv", "101")], time=days_ago(30))
    journal.append(site.layout.journal, _forged_job(site.workdir, FORGED, victim, days_ago(30)))
    code, out, err = run_cli(capsys, "-C", str(site.workdir), "gc", "--older-than", "1")
    assert code == 0, err
    assert (victim / "marker").read_text() == "precious\n"
    assert "refused" in out and str(victim) in out and FORGED in out
    # the honest run's log went as before
    assert not site.log_path(RUN, Job("count", "results/a.tsv", "101")).exists()


def test_gc_never_follows_a_link_out_of_the_log_folder(
    tmp_path: Path, no_grace, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    victim = _victim(tmp_path)
    logdir = site.layout.logdir
    logdir.mkdir(parents=True)
    (logdir / "rule_count").symlink_to(victim)  # a folder in the log folder leading out
    forged_log = logdir / "rule_count" / "marker"
    journal.append(site.layout.journal, _forged_job(site.workdir, FORGED, forged_log, days_ago(30)))
    code, out, err = run_cli(capsys, "-C", str(site.workdir), "gc", "--older-than", "1")
    assert code == 0, err
    assert (victim / "marker").read_text() == "precious\n"
    assert "refused" in out


def test_a_run_id_that_climbs_out_is_refused_when_read(
    tmp_path: Path, no_grace, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    logdir = site.layout.logdir
    (logdir / ".ended").mkdir(parents=True)
    # .ended/../../../x from the log folder: wf/.snakemake/frozen_logs/.ended -> wf/x... and
    # one more: the folder beside the workflow
    climb = "../../../../x"
    outside = (logdir / ".ended" / climb).resolve()
    outside.mkdir(parents=True)
    (outside / "marker").write_text("precious\n")
    with pytest.raises(ValueError, match="not a run id"):  # refused when written
        _forged_job(site.workdir, climb, logdir / "rule_count" / "999.log", days_ago(30))
    records = _forged_job(site.workdir, FORGED, logdir / "rule_count" / "999.log", days_ago(30))
    journal.append(site.layout.journal, [{**r, "run": climb} for r in records])
    contents = journal.read(site.layout.journal)
    assert contents.records == [] and contents.skipped == 3
    assert climb not in History.read(site.layout.journal).runs
    code, _, err = run_cli(capsys, "-C", str(site.workdir), "gc", "--older-than", "1")
    assert code == 0, err
    assert (outside / "marker").read_text() == "precious\n"


def test_a_snapshot_id_that_is_no_id_is_refused_when_read(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    record = journal.run_started(
        run=RUN, snapshot=None, code_root=tmp_path, workdir=tmp_path, argv=[]
    )
    journal.append(path, [{**record, "snapshot": "../../../etc/passwd"}, record])
    contents = journal.read(path)
    assert contents.records == [record] and contents.skipped == 1


def _evil_site(tmp_path: Path):
    site = make_site(tmp_path / "wf")
    first = site.pack()
    site.edit(f"scripts/{EVIL}.py", "X = 1\n")
    second = site.pack()
    site.run(RUN, second, [Job("count", "results/a.tsv", "101", (("s", EVIL),))])
    return site, first, second


def _clean(text: str) -> None:
    assert "\x1b" not in text
    assert "\nred" not in text


def test_which_escapes_wildcards_and_json_keeps_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, _, _ = _evil_site(tmp_path)
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "which", "results/a.tsv")
    assert code == 0
    _clean(out)
    assert "\\x1b[31m\\nred" in out
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "which", "--json", "results/a.tsv")
    assert json.loads(out)["outputs"][0]["wildcards"] == {"s": EVIL}


def test_show_escapes_file_names_and_json_keeps_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, _, second = _evil_site(tmp_path)
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "show", second.id, "--files")
    assert code == 0
    _clean(out)
    assert "\\x1b[31m\\nred.py" in out
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "show", second.id)
    assert code == 0
    _clean(out)
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "show", "--json", second.id)
    paths = [f["path"] for f in json.loads(out)["manifest"]["files"]]
    assert f"scripts/{EVIL}.py" in paths


def test_diff_escapes_file_names_and_json_keeps_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, first, second = _evil_site(tmp_path)
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "diff", first.id, second.id)
    assert code == 1
    _clean(out)
    assert "A  scripts/\\x1b[31m\\nred.py" in out
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "diff", first.id, second.id, "-p")
    _clean(out.split("\n+X = 1")[0])  # the headers; the content is the file's own
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "diff", "--json", first.id, second.id)
    assert json.loads(out)["added"] == [f"scripts/{EVIL}.py"]


def test_verify_does_not_read_copies_through_a_link_out_of_the_log_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    victim = _victim(tmp_path)
    (victim / "code-0123456789ab.tar.zst").write_bytes(b"not ours")
    site.layout.logdir.mkdir(parents=True)
    (site.layout.logdir / "rule_count").symlink_to(victim)
    _, out, err = run_cli(capsys, "-C", str(site.workdir), "verify")
    assert "lies outside the log folder; not read" in out, out + err


def test_a_link_of_another_user_on_the_way_to_a_removal_root_is_named(tmp_path: Path) -> None:
    """The user's own link (a log folder moved to scratch) is fine; one another user made,
    anywhere on the way (followed links included), is named."""
    (tmp_path / "scratch" / "logs").mkdir(parents=True)
    (tmp_path / "wf" / ".snakemake").mkdir(parents=True)
    logdir = tmp_path / "wf" / ".snakemake" / "frozen_logs"
    logdir.symlink_to(tmp_path / "scratch" / "logs")
    assert foreign_link(logdir) == ""
    assert foreign_link(tmp_path / "wf" / "missing" / "deeper") == ""
    (tmp_path / "hop").symlink_to("scratch")
    os.lchown(tmp_path / "hop", 65534, 65534)
    logdir.unlink()
    logdir.symlink_to("../../hop/logs")
    assert foreign_link(logdir) == f"{tmp_path}/hop is a symbolic link of another user (uid 65534)"
