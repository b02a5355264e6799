"""Job arrays (``arrays``): batches of ready jobs of a rule, the rules setting, and the array's
batch script running the task of its index (on the cluster: tests/e2e/test_arrays.py)."""

import os
import subprocess
from pathlib import Path

from snakemake_executor_plugin_frozen import arrays


def test_batches_by_key_and_limit():
    jobs = [("a", 1), ("a", 2), ("b", 3), ("a", 4), ("c", 5), ("a", 6), ("a", 7)]
    alone, batches = arrays.batches(jobs, key=lambda j: None if j[0] == "c" else j[0], limit=3)
    assert batches == [[("a", 1), ("a", 2), ("a", 4)], [("a", 6), ("a", 7)]]
    # A batch of one is no array.
    assert alone == [("c", 5), ("b", 3)]


def test_array_rules_setting():
    assert arrays.array_rules("all") is None
    assert arrays.array_rules(" a, b ,") == {"a", "b"}


def test_array_script_runs_the_task_of_its_index(tmp_path: Path):
    """Paths with quotes, `$()` and newlines stay data; the task's exit code is the array
    task's."""
    odd = tmp_path / "we'ird $(touch pwned)\ndir"
    odd.mkdir()
    scripts = []
    for i in range(3):
        script = odd / f"job {i}.sh"
        script.write_text(f"echo task {i}; exit {i}\n")
        scripts.append(script)
    text = arrays.render("rule r, run x\nrm -rf /", scripts)
    assert "\nrm -rf" not in text
    batch = tmp_path / "array.sh"
    batch.write_text(text)
    for i in range(3):
        env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(i), "SLURM_ARRAY_JOB_ID": "77"}
        done = subprocess.run(
            ["bash", batch], capture_output=True, text=True, env=env, cwd=tmp_path
        )
        assert (done.returncode, done.stdout) == (i, f"task {i}\n")
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_JOB_ID": "77"}
    done = subprocess.run(["bash", batch], capture_output=True, text=True, env=env)
    assert done.returncode == 1 and "array task 3 has no job" in done.stderr
    assert not (tmp_path / "pwned").exists()
