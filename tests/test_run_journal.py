"""The run's journal records (run_journal.py): what `which` and `reproduce` read back."""

from pathlib import Path

from helpers.voice import Voice

from snakemake_executor_plugin_frozen import journal
from snakemake_executor_plugin_frozen.backends import JobEnd
from snakemake_executor_plugin_frozen.run_journal import RunJournal
from snakemake_executor_plugin_frozen.slurm.status import Outcome

RUN = "0123abcd-aaaa-bbbb-cccc-000000000000"


class Job:
    def __init__(self, workdir: Path) -> None:
        self.name = "count"
        self.jobid = 3
        self.wildcards = {"sample": "a"}
        self.output = ["out/a.txt"]
        self.input = ["in/a.txt"]

    def is_group(self) -> bool:
        return False


def test_submitted_and_ended_records_land_in_one_append(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in/a.txt").write_text("input")
    (tmp_path / "out").mkdir()
    (tmp_path / "out/a.txt").write_text("result")
    path = tmp_path / journal.JOURNAL
    voice = Voice()
    j = RunJournal(path, RUN, tmp_path, voice)
    job = Job(tmp_path)
    j.submitted(job, "41", tmp_path / "41.log", "f" * 64, "freeze")
    assert not path.exists(), "noted, not yet written"
    j.note(j.ended(job, "41", True, "COMPLETED", "node1", "mount"))
    j.write()
    records = journal.read(path).records
    assert [r["event"] for r in records] == ["submitted", "ended"]
    submitted, ended = records
    assert (submitted["rule"], submitted["slurm_id"], submitted["wildcards"]) == (
        "count",
        "41",
        {"sample": "a"},
    )
    assert submitted["outputs"] == ["out/a.txt"]
    assert (ended["outcome"], ended["state"], ended["node"]) == ("success", "COMPLETED", "node1")
    assert ended["outputs"][0]["sha256"] is not None, "a success records its outputs' hashes"
    assert voice.warned == []


def test_a_failed_job_records_no_outputs(tmp_path: Path) -> None:
    path = tmp_path / journal.JOURNAL
    j = RunJournal(path, RUN, tmp_path, Voice())
    j.note(j.ended(Job(tmp_path), "41", False, "FAILED", "", ""))
    j.write()
    (ended,) = journal.read(path).records
    assert ended["outcome"] == "failed" and "outputs" not in ended


def test_a_journal_that_cannot_be_written_is_said_and_fails_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    voice = Voice()
    j = RunJournal(blocker / "journal.jsonl", RUN, tmp_path, voice)
    j.note(j.ended(Job(tmp_path), "41", False, "FAILED", "", ""))
    j.note(j.ended(Job(tmp_path), "42", False, "FAILED", "", ""))
    j.write()
    assert len(voice.warned) == 1 and "2 record(s) of what ran are lost" in voice.warned[0]
    j.write()
    assert len(voice.warned) == 1, "the lost records are not retried forever"


def test_slurm_confirms_a_hinted_end_into_the_record(tmp_path: Path) -> None:
    path = tmp_path / journal.JOURNAL
    j = RunJournal(path, RUN, tmp_path, Voice())
    record = j.ended(Job(tmp_path), "41", True, "EXIT 0", "node1", "mount")
    j.write()
    assert not path.exists(), "held until SLURM's word"
    assert j.confirmed(record, JobEnd(Outcome.SUCCESS, state="COMPLETED", node="node1")) is None
    other = j.ended(Job(tmp_path), "42", True, "EXIT 0", "node2", "mount")
    oom = JobEnd(Outcome.FAILED, "job 42 ran out of memory", "OUT_OF_MEMORY", "node2")
    said = j.confirmed(other, oom)
    assert said == "job 42 ended with exit status 0, but SLURM says: job 42 ran out of memory"
    j.write()
    states = [(r["slurm_id"], r["outcome"], r["state"]) for r in journal.read(path).records]
    assert states == [("41", "success", "COMPLETED"), ("42", "success", "OUT_OF_MEMORY")]
