"""``which``: the job, snapshot and commit that last produced an output."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from helpers.files import write
from helpers.records import RUN_A, RUN_B, Job, make_site, run_cli


@pytest.fixture
def two_runs(tmp_path: Path):
    """Run A made a and b with the first code; after a committed change, run B remade a."""
    site = make_site(tmp_path / "wf")
    first = site.pack()
    site.run(
        RUN_A,
        first,
        [
            Job("count", "results/a.tsv", "101", (("s", "a"),)),
            Job("count", "results/b.tsv", "102", (("s", "b"),)),
        ],
    )
    site.edit("scripts/count.py", "VERSION = 'v2'\n")
    site.commit()
    second = site.pack()
    site.run(
        RUN_B,
        second,
        [Job("count", "results/a.tsv", "201", (("s", "a"),))],
    )
    return site, first, second


def _which(capsys: pytest.CaptureFixture[str], site, *paths: str) -> tuple[int, list[dict]]:
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "which", "--json", *paths)
    return code, json.loads(out)["outputs"]


def test_each_output_names_the_run_and_snapshot_that_made_it_last(
    two_runs, capsys: pytest.CaptureFixture[str]
) -> None:
    site, first, second = two_runs
    code, (a, b) = _which(capsys, site, "results/a.tsv", "results/b.tsv")
    assert code == 0
    assert (a["run"], a["snapshot"], a["slurm_id"]) == (RUN_B, second.id, "201")
    assert (b["run"], b["snapshot"], b["slurm_id"]) == (RUN_A, first.id, "102")
    commits = [json.loads(s.manifest.read_text())["git"]["commit"] for s in (first, second)]
    assert commits[0] != commits[1]
    assert (a["commit"], b["commit"]) == (commits[1], commits[0])
    assert (a["rule"], a["wildcards"], a["node"], a["state"]) == (
        "count",
        {"s": "a"},
        "node1",
        "COMPLETED",
    )
    assert a["log"] == str(
        site.log_path(RUN_B, Job("count", "results/a.tsv", "201", (("s", "a"),)))
    )
    assert a["dirty"] is False and a["notes"] == []


def test_paths_are_matched_normalised_and_relative_to_the_workdir(
    two_runs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    site, _, second = two_runs
    absolute = str(site.workdir / "results" / "a.tsv")
    code, answers = _which(capsys, site, "./results//a.tsv", absolute, "results/x/../a.tsv")
    assert code == 0
    assert {a["snapshot"] for a in answers} == {second.id}
    monkeypatch.chdir(site.workdir / "results")
    code, out, _ = run_cli(capsys, "which", "-C", "..", "results/b.tsv")
    assert code == 0 and "102" in out


def test_from_a_subfolder_the_workflow_folder_is_found_upwards(
    two_runs, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As git finds its repository: paths are taken as typed in the subfolder."""
    site, _, second = two_runs
    monkeypatch.chdir(site.workdir / "results")
    code, out, _ = run_cli(capsys, "which", "--json", "a.tsv")
    (answer,) = json.loads(out)["outputs"]
    assert code == 0 and answer["snapshot"] == second.id


def test_the_table_names_rule_wildcards_snapshot_commit_job_node_log(
    two_runs, capsys: pytest.CaptureFixture[str]
) -> None:
    site, _, second = two_runs
    _, out, _ = run_cli(capsys, "-C", str(site.workdir), "which", "results/a.tsv")
    header, row = out.splitlines()
    assert header.split() == [
        "OUTPUT",
        "RULE",
        "WILDCARDS",
        "SNAPSHOT",
        "MODE",
        "COMMIT",
        "JOB",
        "NODE",
        "LOG",
    ]
    assert row.split()[:5] == ["results/a.tsv", "count", "s=a", second.id[:12], "freeze"]
    assert row.split()[-3:-1] == ["201", "node1"]


def test_outputs_the_journal_does_not_know_say_so_and_exit_1(
    two_runs, capsys: pytest.CaptureFixture[str]
) -> None:
    site, _, _ = two_runs
    write(site.workdir, "results/old.tsv", "made before the journal\n")
    code, out, _ = run_cli(
        capsys,
        "-C",
        str(site.workdir),
        "which",
        "results/old.tsv",
        "results/none.tsv",
        "results/a.tsv",
    )
    assert code == 1
    assert "results/old.tsv: not in the journal: made before the journal existed" in out
    assert "results/none.tsv: does not exist, and no job in the journal names it" in out
    assert "results/a.tsv  count" in out  # the known one is still answered


def test_a_failed_job_is_not_the_producer(two_runs, capsys: pytest.CaptureFixture[str]) -> None:
    site, first, second = two_runs
    site.run(
        "cccccccc-0000-4000-8000-000000000003",
        second,
        [Job("count", "results/b.tsv", "301", outcome="failed")],
    )
    site.run(
        "dddddddd-0000-4000-8000-000000000004",
        second,
        [Job("count", "results/c.tsv", "401", outcome="failed")],
    )
    code, (b, c) = _which(capsys, site, "results/b.tsv", "results/c.tsv")
    assert code == 1
    assert (b["found"], b["slurm_id"], b["snapshot"]) == (True, "102", first.id)
    assert "later job(s) naming it did not succeed" in b["notes"][0]
    assert c["found"] is False and "none ended in success" in c["reason"]


def test_a_file_changed_after_its_job_ended_is_flagged(
    two_runs, capsys: pytest.CaptureFixture[str]
) -> None:
    site, _, _ = two_runs
    later = time.time() + 60  # written a minute after the journal says its job ended
    os.utime(site.workdir / "results/b.tsv", (later, later))
    _, (b,) = _which(capsys, site, "results/b.tsv")
    assert any("modified after that job ended" in note for note in b["notes"])


def test_a_collected_snapshot_is_said_to_be_gone(
    two_runs, capsys: pytest.CaptureFixture[str]
) -> None:
    site, first, _ = two_runs
    first.manifest.unlink()
    first.archive.unlink()
    code, (b,) = _which(capsys, site, "results/b.tsv")
    assert code == 0 and b["in_store"] is False and b["commit"] is None
    assert "no longer in the store" in b["notes"][0]


@pytest.mark.parametrize(
    ("mode", "view", "caveat"),
    [
        ("archive", "", "ran in --frozen-mode archive: it read the live files"),
        ("freeze", "python", "shell: commands and other programs read the live files"),
        ("freeze", "mount", None),
    ],
)
def test_each_answer_says_the_mode_and_where_the_code_may_differ(
    two_runs, capsys: pytest.CaptureFixture[str], mode: str, view: str, caveat: str | None
) -> None:
    """Archive mode gave a confident wrong answer: the jobs ran live code (issue 16 item 3)."""
    site, _, second = two_runs
    lines = site.layout.journal.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for record in records:
        if record["event"] == "submitted":
            record["mode"] = mode
        if record["event"] == "ended":
            record["view"] = view
    site.layout.journal.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, answers = _which(capsys, site, "results/a.tsv")
    (answer,) = answers
    assert code == 0 and answer["mode"] == mode and answer["snapshot"] == second.id
    notes = [n for n in answer["notes"] if "live files" in n]
    if caveat is None:
        assert notes == [], answer["notes"]
    else:
        assert len(notes) == 1 and caveat in notes[0], answer["notes"]
    _, out, _ = run_cli(capsys, "-C", str(site.workdir), "which", "results/a.tsv")
    assert out.splitlines()[1].split()[4] == (f"{mode}/{view}" if view else mode)


def test_a_damaged_store_record_is_a_note_not_a_crash(
    two_runs, capsys: pytest.CaptureFixture[str]
) -> None:
    site, _, second = two_runs
    second.manifest.chmod(0o644)
    second.manifest.write_text('{"broken')
    code, answers = _which(capsys, site, "results/a.tsv")
    (answer,) = answers
    assert code == 0 and answer["snapshot"] == second.id
    assert any("is damaged" in note and "verify --repair" in note for note in answer["notes"])
