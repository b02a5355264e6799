"""When the run asks SLURM about its unfinished jobs (job_tracking.py): at the poll interval,
backing off while nothing ends, and within a second of a job's end hint."""

import stat
from pathlib import Path

from helpers.cluster import Clock

from snakemake_executor_plugin_frozen.job_tracking import JobTracker
from snakemake_executor_plugin_frozen.slurm.status import PollInterval


def tracker(tmp_path: Path, clock: Clock, hints: bool = True) -> JobTracker:
    ended = tmp_path / "ended"
    ended.mkdir()
    return JobTracker(PollInterval(initial=2.0, maximum=10.0), ended if hints else None, clock)


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


def test_an_end_hint_asks_within_a_second_and_forgetting_removes_it(tmp_path: Path) -> None:
    clock = Clock()
    t = tracker(tmp_path, clock)
    t.add("7", object())
    t.add("8", object())
    assert t.ended_dir is not None
    (t.ended_dir / "8").touch()
    clock.now += 0.5
    assert not t.query_due(), "never twice within a second"
    clock.now += 0.5
    assert t.query_due()
    t.queried(finished=True)
    t.forget("8")
    assert not (t.ended_dir / "8").exists()
    assert list(t.unfinished) == ["7"]
    clock.now += 1.0
    assert not t.query_due(), "the hint was used up"


def test_a_hint_of_a_job_not_tracked_asks_nothing(tmp_path: Path) -> None:
    clock = Clock()
    t = tracker(tmp_path, clock)
    t.add("7", object())
    assert t.ended_dir is not None
    (t.ended_dir / "99").touch()  # another run's, or a job already forgotten
    clock.now += 1.5
    assert not t.query_due()


def test_without_hints_every_tick_asks(tmp_path: Path) -> None:
    t = tracker(tmp_path, Clock(), hints=False)
    assert t.query_due()
    t.queried(finished=False)
    assert t.query_due()


def test_for_run_makes_the_hints_folder_private_and_close_removes_it(tmp_path: Path) -> None:
    ended = tmp_path / "logs" / ".ended" / "run"
    t = JobTracker.for_run(30.0, ended)
    assert stat.S_IMODE(ended.stat().st_mode) == 0o700
    t.add("1", object())
    (ended / "1").touch()
    t.close()
    assert not ended.exists()
