"""What a run does once its jobs are over (run_end.py): the figure of its status queries
and the gc its settings ask for, on a real record."""

from pathlib import Path

from helpers.records import Job, Site, days_ago
from helpers.voice import Voice

from snakemake_executor_plugin_frozen.record.layout import Layout
from snakemake_executor_plugin_frozen.run_end import collect_garbage, status_rate
from snakemake_executor_plugin_frozen.settings import ExecutorSettings


def test_the_status_figure_per_minute() -> None:
    assert status_rate(0, 100.0) is None
    assert status_rate(30, 120.0) == "30 status queries in 2.0 minutes (15.0 per minute)"
    assert status_rate(3, 12.0) == "3 status queries in 0.2 minutes"


def test_no_gc_setting_touches_nothing(tmp_path: Path) -> None:
    layout = Layout.of(tmp_path)
    layout.journal.parent.mkdir(parents=True)
    layout.journal.write_text("not json\n")
    voice = Voice()
    collect_garbage(layout, ExecutorSettings(), voice)
    assert voice.said == voice.warned == []
    assert layout.journal.read_text() == "not json\n"


def test_gc_removes_an_old_runs_logs(tmp_path: Path) -> None:
    site = Site(tmp_path)
    old = "11111111-aaaa-bbbb-cccc-000000000000"
    job = Job("a", "out/a.txt", "1")
    site.run(old, None, [job], time=days_ago(3))
    log = site.log_path(old, job)
    assert log.exists()
    voice = Voice()
    collect_garbage(site.layout, ExecutorSettings(gc_older_than_days=1), voice)
    assert not log.exists()
    assert any("gc removed" in m and "1 earlier run(s)" in m for m in voice.said), voice.said
