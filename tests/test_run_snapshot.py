"""The run's snapshot as the executor takes it (run_snapshot.py), without Snakemake: the
workflow's facts given as Snakemake would give them."""

import importlib
import sys
import time
from pathlib import Path

import pytest
from helpers.voice import Voice
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_frozen.record.layout import Layout
from snakemake_executor_plugin_frozen.run_snapshot import take
from snakemake_executor_plugin_frozen.settings import ExecutorSettings
from snakemake_executor_plugin_frozen.workflow_sources import WorkflowCode

RUN = "0123abcd-aaaa-bbbb-cccc-000000000000"


def workflow(root: Path, **files: str) -> WorkflowCode:
    (root / "Snakefile").write_text("rule all:\n    shell: 'true'\n")
    for name, text in files.items():
        (root / name).write_text(text)
    return WorkflowCode(
        snakefile=root / "Snakefile",
        sources=(root / "Snakefile",),
        shell_commands=(("all", "true"),),
        conda_files=(),
        outputs=(root / "results" / "a.txt",),
    )


def settings(**values) -> ExecutorSettings:
    return ExecutorSettings(**values)


def test_takes_the_snapshot_under_a_lease_and_tells_what_it_packed(tmp_path: Path) -> None:
    code = workflow(tmp_path, **{"helper.py": "X = 1\n"})
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "a.txt").write_text("data, not code\n")
    layout = Layout.of(tmp_path)
    voice = Voice()
    snapshot, lease = take(code, layout, settings(), RUN, voice)
    try:
        assert snapshot.files == {"Snakefile", "helper.py"}
        assert (layout.store / "leases" / RUN).read_text().find(snapshot.id) >= 0
        assert any(f"snapshot {snapshot.id[:12]}" in m and "(new" in m for m in voice.said)
        assert any("1 output, log or benchmark file(s)" in m for m in voice.said)
        assert snapshot.in_copy(tmp_path / "helper.py") == '"$FROZEN_DIR/helper.py"'
        entry = snapshot.entry(snapshot.packed.archive, settings())
        assert (entry.snapshot_id, entry.code_root) == (snapshot.id, tmp_path)
    finally:
        lease.release()
    again = Voice()
    second, lease = take(code, layout, settings(), RUN, again)
    lease.release()
    assert second.id == snapshot.id
    assert any("already stored" in m for m in again.said)


def test_a_module_the_workflow_imported_but_left_out_is_warned_of(tmp_path: Path) -> None:
    code = workflow(tmp_path, **{"frozen_test_leftout.py": "X = 1\n"})
    (tmp_path / ".frozenignore").write_text("frozen_test_leftout.py\n")
    sys.path.insert(0, str(tmp_path))
    try:
        importlib.import_module("frozen_test_leftout")
        voice = Voice()
        snapshot, lease = take(code, Layout.of(tmp_path), settings(), RUN, voice)
        lease.release()
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("frozen_test_leftout", None)
    assert "frozen_test_leftout.py" not in snapshot.files
    (warning,) = [w for w in voice.warned if "frozen_test_leftout" in w]
    assert "left out by the pattern(s) 'frozen_test_leftout.py'" in warning


@pytest.mark.parametrize("freezing", [True, False])
def test_files_edited_during_the_run_are_told(tmp_path: Path, freezing: bool) -> None:
    code = workflow(tmp_path, **{"helper.py": "X = 1\n"})
    snapshot, lease = take(code, Layout.of(tmp_path), settings(), RUN, Voice())
    lease.release()
    quiet = Voice()
    snapshot.tell_edited(quiet, freezing)
    assert quiet.said == quiet.warned == []
    time.sleep(0.01)
    (tmp_path / "helper.py").write_text("X = 2\n")
    voice = Voice()
    snapshot.tell_edited(voice, freezing)
    told = voice.said if freezing else voice.warned
    assert len(told) == 1 and "1 file(s) of the code were edited" in told[0]
    assert "helper.py" in told[0]
    assert ("ran the versions of snapshot" in told[0]) is freezing


def test_a_snapshot_that_cannot_be_packed_stops_the_run_with_the_reason(tmp_path: Path) -> None:
    code = workflow(tmp_path, **{"big.py": "x" * 2_000_000})
    with pytest.raises(
        WorkflowError, match=r"(?s)frozen: cannot snapshot .*above max_size_mb=1.*big\.py"
    ):
        take(code, Layout.of(tmp_path), settings(max_size_mb=1), RUN, Voice())
    assert list((tmp_path / ".snakemake/frozen/snapshots/leases").iterdir()) == []
