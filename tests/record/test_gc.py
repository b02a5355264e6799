"""``gc``: the keep-last and older-than policy, dry runs, and never removing what an
unfinished job needs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers.records import RUN_A, RUN_B, RUN_C, Job, days_ago, make_site, run_cli

from snakemake_executor_plugin_frozen import journal
from snakemake_executor_plugin_frozen.record import gc


def _collect(site, keep_last=None, older_than=None, dry_run=False) -> gc.GcReport:
    layout = site.layout
    return gc.collect(
        layout.workdir, Path(".snakemake/frozen_logs"), keep_last, older_than, dry_run
    )


def _files(site) -> set[str]:
    return {
        str(p.relative_to(site.workdir))
        for p in site.workdir.rglob("*")
        if p.is_file() and ".git/" not in str(p)
    }


def test_dry_run_tells_and_the_real_run_removes_exactly_that(
    three, no_grace, capsys: pytest.CaptureFixture[str]
) -> None:
    site, (first, second, third) = three
    before = _files(site)
    dry = _collect(site, older_than=20, dry_run=True)
    assert (dry.snapshots, dry.runs) == ([first.id], [RUN_A])
    assert _files(site) == before
    log = site.log_path(RUN_A, Job("count", "", "3001", (("s", "v1"),)))
    short = first.id[:12]
    expected = {
        str(first.archive),
        str(first.manifest),
        str(site.layout.logdir / f"rule_count/code-{short}.tar.zst"),
        str(site.layout.logdir / f"rule_count/code-{short}.json"),
        str(log),
        str(log.with_name(f"job-{RUN_A[:8]}-1.sh")),
    }
    assert set(dry.files) == expected
    # the rule-log copies are files of their own (issue 16 item 6): each is freed
    script = log.with_name(f"job-{RUN_A[:8]}-1.sh")
    freed = 2 * (first.archive_bytes + first.manifest.stat().st_size) + log.stat().st_size
    assert dry.bytes == freed + script.stat().st_size
    real = _collect(site, older_than=20)
    assert (real.snapshots, real.runs, sorted(real.files), real.bytes) == (
        dry.snapshots,
        dry.runs,
        sorted(dry.files),
        dry.bytes,
    )
    assert _files(site) == before - {str(Path(p).relative_to(site.workdir)) for p in expected}
    assert not log.parent.exists()  # the run's wildcard folder, left empty
    assert {r["run"] for r in journal.read(site.layout.journal).records} == {RUN_B, RUN_C}
    assert real.journal_lines == 3
    _, out, _ = run_cli(capsys, "-C", str(site.workdir), "list", "--json")
    assert {s["id"] for s in json.loads(out)["snapshots"]} == {second.id, third.id}


@pytest.mark.parametrize(
    ("keep_last", "older_than", "removed"),
    [
        (2, None, [RUN_A]),
        (1, None, [RUN_A, RUN_B]),
        (None, 0, [RUN_A, RUN_B, RUN_C]),
        (3, None, []),
        (9, None, []),
        (None, 20, [RUN_A]),
        (None, 5, [RUN_A, RUN_B]),
        (None, 0.5, [RUN_A, RUN_B, RUN_C]),
        (1, 20, [RUN_A]),  # beyond both only
        (2, 5, [RUN_A]),
    ],
)
def test_keep_last_and_older_than(three, no_grace, keep_last, older_than, removed) -> None:
    site, snapshots = three
    report = _collect(site, keep_last, older_than, dry_run=True)
    by_run = dict(zip((RUN_A, RUN_B, RUN_C), snapshots, strict=True))
    assert report.runs == removed
    assert report.snapshots == sorted(by_run[r].id for r in removed)


def test_a_snapshot_used_again_lately_is_kept_and_its_old_run_goes(
    tmp_path: Path, no_grace
) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    site.run(RUN_A, snapshot, [Job("count", "results/a.tsv", "1")], time=days_ago(30))
    site.run(RUN_B, snapshot, [Job("count", "results/b.tsv", "2")], time=days_ago(1))
    report = _collect(site, older_than=20)
    assert (report.snapshots, report.runs) == ([], [RUN_A])
    assert snapshot.archive.exists()
    assert (site.layout.logdir / f"rule_count/code-{snapshot.id[:12]}.tar.zst").exists()


def test_unfinished_jobs_that_cannot_be_asked_about_keep_their_run(
    tmp_path: Path, no_grace
) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    site.run(
        RUN_A, snapshot, [Job("count", "results/a.tsv", "local1", outcome=None)], time=days_ago(30)
    )
    report = _collect(site, older_than=0)
    assert (report.snapshots, report.runs) == ([], [])
    assert "SLURM could not be asked" in report.kept_for_jobs[RUN_A]
    assert "without SLURM" in report.notes[0]


def test_without_slurm_every_run_with_unfinished_jobs_is_kept(
    tmp_path: Path, no_grace, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = make_site(tmp_path / "wf")
    old, new = site.pack(), None
    site.run(RUN_A, old, [Job("count", "results/a.tsv", "900001", outcome=None)], time=days_ago(30))
    site.edit("scripts/count.py", "VERSION = 'v2'\n")
    new = site.pack()
    site.run(RUN_B, new, [Job("count", "results/b.tsv", "900002")], time=days_ago(30))
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no squeue
    report = _collect(site, older_than=0)
    assert (report.snapshots, report.runs) == ([new.id], [RUN_B])
    assert RUN_A in report.kept_for_jobs
    assert "squeue failed" in report.slurm and "squeue failed" in report.notes[0]


def test_young_snapshots_and_runs_are_kept_whatever_the_policy(tmp_path: Path) -> None:
    site = make_site(tmp_path / "wf")
    unused = site.pack()  # made by a run packing right now, its run record not yet written
    site.edit("scripts/count.py", "VERSION = 'v2'\n")
    used = site.pack()
    site.run(RUN_A, used, [Job("count", "results/a.tsv", "1")])  # between two batches
    report = _collect(site, older_than=0)
    assert (report.snapshots, report.runs) == ([], [])
    assert unused.archive.exists()
    assert f"kept run {RUN_A}: it recorded something in the last 10 minutes" in report.notes[0]
    assert "kept 1 snapshot(s) made in the last 10 minutes" in report.notes[1]


def test_logs_the_journal_does_not_know_are_left_alone(three, no_grace) -> None:
    site, _ = three
    stranger = site.layout.logdir / "rule_count" / "old" / "17.log"
    stranger.parent.mkdir(parents=True)
    stranger.write_text("from before the journal\n")
    _collect(site, older_than=0)
    assert stranger.exists()


def test_a_run_without_snapshot_is_judged_by_its_age(tmp_path: Path, no_grace) -> None:
    site = make_site(tmp_path / "wf")
    site.run(RUN_A, None, [Job("count", "results/a.tsv", "1")], time=days_ago(30))
    site.run(RUN_B, None, [Job("count", "results/b.tsv", "2")], time=days_ago(1))
    report = _collect(site, older_than=20)
    assert (report.snapshots, report.runs) == ([], [RUN_A])


def test_stale_store_temporaries_go(tmp_path: Path, no_grace) -> None:
    site = make_site(tmp_path / "wf")
    site.pack()
    stale, fresh = site.layout.store / ".tmp-1-aa.tar.zst", site.layout.store / ".tmp-2-bb.tar.zst"
    for path in (stale, fresh):
        path.write_bytes(b"x")
    os.utime(stale, (1, 1))
    _collect(site, older_than=100)
    assert (stale.exists(), fresh.exists()) == (False, True)


def test_the_command_line(three, no_grace, capsys: pytest.CaptureFixture[str]) -> None:
    site, (first, _, _) = three
    code, _, err = run_cli(capsys, "-C", str(site.workdir), "gc")
    assert code == 2 and "--keep-last" in err
    for refused in ("-1", "0"):  # 0 would remove everything, where frozen-gc-keep-last 0 is off
        code, _, err = run_cli(capsys, "-C", str(site.workdir), "gc", "--keep-last", refused)
        assert code == 2 and "1 or more" in err and "--older-than 0" in err
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "gc", "--older-than", "20", "--dry-run")
    assert code == 0
    assert f"would remove snapshot {first.id[:12]}" in out
    assert "would remove 1 snapshot(s), 1 run(s): 6 file(s)" in out
    assert first.archive.exists()
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "gc", "--older-than", "20", "--json")
    report = json.loads(out)
    assert (report["snapshots"], report["runs"], report["files"]) == ([first.id], [RUN_A], 6)
    assert not first.archive.exists()
