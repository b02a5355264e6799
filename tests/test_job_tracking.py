"""When the run asks SLURM about its unfinished jobs, and what it believes of their end
hints (job_tracking.py): at the poll interval, backing off while nothing ends; a hint of
success ends the job at once and waits for SLURM's confirmation; a hint of failure asks
SLURM; a hint not the run's own is not believed."""

import asyncio
import os
import stat
from pathlib import Path

import pytest
from helpers.cluster import Clock
from helpers.users import NOBODY

from snakemake_executor_plugin_frozen.backends import JobEnd
from snakemake_executor_plugin_frozen.job_tracking import (
    HINTED_SUCCESS,
    EndHint,
    JobTracker,
    PendingAnswer,
    parse_hint,
)
from snakemake_executor_plugin_frozen.slurm.status import Outcome, PollInterval


def tracker(tmp_path: Path, clock: Clock, hints: bool = True) -> JobTracker:
    ended = tmp_path / "ended"
    ended.mkdir()
    return JobTracker(PollInterval(initial=2.0, maximum=10.0), ended if hints else None, clock)


def hint(t: JobTracker, job_id: str, text: str) -> None:
    assert t.ended_dir is not None
    (t.ended_dir / job_id).write_text(text)


def test_asks_at_the_poll_interval_and_backs_off_while_nothing_ends(tmp_path: Path) -> None:
    clock = Clock()
    t = tracker(tmp_path, clock)
    t.add("7", object())
    clock.now += 1.9
    assert not t.query_due()
    clock.now += 0.1
    assert t.query_due()
    t.queried(finished=False)  # the wait grows to 3 s
    clock.now += 2.9
    assert not t.query_due()
    clock.now += 0.1
    assert t.query_due()
    t.queried(finished=True)  # something ended: back to 2 s
    clock.now += 2.0
    assert t.query_due()


def test_a_hint_of_success_ends_the_job_and_slurm_confirms_it(tmp_path: Path) -> None:
    clock = Clock()
    t = tracker(tmp_path, clock)
    t.add("7", object())
    t.add("8", object())
    hint(t, "8", "0 node2\n")
    assert t.hinted_ends() == {"8": JobEnd(Outcome.SUCCESS, state=HINTED_SUCCESS, node="node2")}
    assert t.hinted_ends() == {}, "a hint is taken once"
    assert not t.query_due(), "a success does not hurry SLURM"
    assert t.forget("8", kept="record of 8"), "kept until SLURM confirms"
    assert t.ended_dir is not None and not (t.ended_dir / "8").exists()
    assert list(t.unfinished) == ["7"] and t.confirming == {"8": "record of 8"}
    completed = JobEnd(Outcome.SUCCESS, state="COMPLETED", node="node2")
    assert t.answered({"8": completed}) == ({}, [("record of 8", completed)])
    assert t.confirming == {}


def test_a_job_without_a_hint_is_not_kept(tmp_path: Path) -> None:
    t = tracker(tmp_path, Clock())
    t.add("7", object())
    assert not t.forget("7", kept="record of 7")
    assert t.confirming == {} and t.unfinished == {}


def test_a_hint_of_failure_asks_slurm_for_its_word(tmp_path: Path) -> None:
    t = tracker(tmp_path, Clock())
    t.add("7", object())
    hint(t, "7", "1 node1\n")
    assert t.hinted_ends() == {}, "SLURM tells the failure's message"
    assert t.query_due()
    failed = JobEnd(Outcome.FAILED, "exit code 1", "FAILED", "node1")
    assert t.answered({"7": failed, "99": failed}) == ({"7": failed}, [])
    assert not t.forget("7")
    assert t.confirming == {} and not t.query_due()


def test_hints_that_are_not_the_runs_own_are_not_believed(tmp_path: Path) -> None:
    t = tracker(tmp_path, Clock())
    for job in ("1", "2", "3"):
        t.add(job, object())
    assert t.ended_dir is not None
    hint(t, "1", "0 node1\n")
    os.chown(t.ended_dir / "1", NOBODY, NOBODY)  # another user's file
    (t.ended_dir / "elsewhere").write_text("0 node1\n")
    (t.ended_dir / "2").symlink_to(t.ended_dir / "elsewhere")
    hint(t, "3", "garbage")
    assert t.hinted_ends() == {}
    assert t.query_due(), "a hint that cannot be believed asks SLURM"


def test_a_folder_put_at_the_hints_path_later_is_not_read(tmp_path: Path) -> None:
    t = tracker(tmp_path, Clock())
    t.add("7", object())
    assert t.ended_dir is not None
    t.ended_dir.rename(tmp_path / "moved")
    t.ended_dir.mkdir()
    hint(t, "7", "0 forged\n")
    assert t.hinted_ends() == {}
    (tmp_path / "moved" / "7").write_text("0 node1\n")
    assert t.hinted_ends()["7"].node == "node1"


def test_a_hint_of_a_job_not_tracked_is_ignored(tmp_path: Path) -> None:
    t = tracker(tmp_path, Clock())
    t.add("7", object())
    hint(t, "99", "1 node1\n")  # another run's, or a job already forgotten
    assert t.hinted_ends() == {} and not t.query_due()


def test_without_hints_every_tick_asks(tmp_path: Path) -> None:
    t = tracker(tmp_path, Clock(), hints=False)
    assert t.query_due()
    t.queried(finished=False)
    assert t.query_due()
    assert t.hinted_ends() == {}


def test_for_run_makes_the_hints_folder_private_and_close_removes_it(tmp_path: Path) -> None:
    ended = tmp_path / "logs" / ".ended" / "run"
    t = JobTracker.for_run(30.0, ended)
    assert stat.S_IMODE(ended.stat().st_mode) == 0o700
    t.add("1", object())
    (ended / "1").write_text("0 node1\n")
    t.close()
    assert not ended.exists()
    with pytest.raises(FileExistsError):
        JobTracker.for_run(30.0, tmp_path / "logs" / ".ended")


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"0 node1\n", EndHint(0, "node1")),
        (b"137 \n", EndHint(137, "")),
        (b"0", EndHint(0, "")),
        (b"", EndHint(None)),
        (b"-1 node1", EndHint(None)),
        (b"\xff\xfe", EndHint(None)),
    ],
)
def test_parse_hint(data: bytes, expected: EndHint) -> None:
    assert parse_hint(data) == expected


def test_a_pending_answer_is_taken_once_when_it_has_come() -> None:
    async def scenario() -> list:
        pending = PendingAnswer()
        gate = asyncio.Event()

        async def query() -> dict:
            await gate.wait()
            return {"7": "ended"}

        pending.start(query())
        seen = [pending.busy, pending.answer()]
        gate.set()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        seen += [pending.answer(), pending.busy, pending.answer()]
        return seen

    assert asyncio.run(scenario()) == [True, None, {"7": "ended"}, False, None]
