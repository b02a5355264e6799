"""What a run does once its jobs are over (run_end.py): the figure of its status queries
and the gc its settings ask for, on a real record."""

from pathlib import Path

from helpers.voice import Voice

from snakemake_executor_plugin_frozen import journal
from snakemake_executor_plugin_frozen.record.layout import Layout
from snakemake_executor_plugin_frozen.run_end import collect_garbage, status_rate
from snakemake_executor_plugin_frozen.settings import ExecutorSettings


def test_the_status_figure_per_minute() -> None:
    assert status_rate(0, 100.0) is None
    assert status_rate(30, 120.0) == "30 status queries in 2.0 minutes (15.0 per minute)"
    assert status_rate(2, 0.01) == "2 status queries in 0.0 minutes (120.0 per minute)"


def test_no_gc_setting_touches_nothing(tmp_path: Path) -> None:
    layout = Layout.of(tmp_path)
    layout.journal.parent.mkdir(parents=True)
    layout.journal.write_text("not json\n")
    voice = Voice()
    collect_garbage(layout, ExecutorSettings(), voice)
    assert voice.said == voice.warned == []
    assert layout.journal.read_text() == "not json\n"


def test_gc_removes_an_old_runs_logs(tmp_path: Path) -> None:
    layout = Layout.of(tmp_path)
    old = "11111111-aaaa-bbbb-cccc-000000000000"
    log = layout.logdir / "rule_a" / f"1-{old[:8]}.log"
    log.parent.mkdir(parents=True)
    log.write_text("old log\n")
    records = [
        journal.run_started(
            run=old,
            snapshot=None,
            code_root=tmp_path,
            workdir=tmp_path,
            argv=[],
            logdir=layout.logdir,
            time="2020-01-01T00:00:00+00:00",
        ),
        journal.submitted(
            run=old,
            rule="a",
            wildcards={},
            outputs=[],
            job=1,
            slurm_id="1",
            snapshot=None,
            log=log,
            workdir=tmp_path,
            mode="off",
            time="2020-01-01T00:00:01+00:00",
        ),
        journal.ended(
            run=old,
            slurm_id="1",
            outcome="success",
            state="COMPLETED",
            time="2020-01-01T00:00:02+00:00",
        ),
    ]
    journal.append(layout.journal, records)
    voice = Voice()
    collect_garbage(layout, ExecutorSettings(gc_older_than_days=1), voice)
    assert not log.exists()
    assert any("gc removed" in m and "1 earlier run(s)" in m for m in voice.said), voice.said
