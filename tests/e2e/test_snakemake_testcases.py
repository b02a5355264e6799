"""Snakemake's own executor test cases (`snakemake.common.tests`), run with `frozen` on the
real SLURM cluster: `test_simple_workflow` (a wildcard value with `/`, rules with and without
`log:`, `threads: 2`) and `test_group_workflow` (group jobs), as the installed Snakemake has
them (scripts/test runs them with the newest and with the oldest supported Snakemake).

The base class runs each workflow in-process through `snakemake.api` (`nodes=3`) and raises
when a job fails. On top of that, each run here is checked to have really gone through
SLURM: one COMPLETED SLURM job (per `sacct`) for each job of the workflow, with its log where
the executor puts it, and the workflow's outputs in place."""

from pathlib import Path
from typing import ClassVar

import pytest
import snakemake.common.tests
from helpers.cluster import sacct_states
from helpers.snakemake import snakemake_at_least

from snakemake_executor_plugin_frozen import ExecutorSettings

# Per test case: the log folder of each rule (or group) -> how many SLURM jobs ran there,
# and the outputs the workflow must leave. Rule `all` only collects, so it runs locally.
EXPECTED = {
    "simple": (
        {"rule_a": 1, "rule_b": 1, "rule_c": 1, "rule_d": 2},
        ["test3.out", "res/somedir1.out", "res/somedir2/subdir.out", "a.log", "b.log", "c.log"],
    ),
    # a and b of one sample form one group job; c runs on its own.
    "groups": (
        {"group_foo_a_b": 3, "rule_c": 1},
        ["test3.out", *(f"test{n}.{s}.out" for n in (1, 2) for s in (1, 2, 3))],
    ),
}
if not snakemake_at_least("8.25"):
    # Before, Snakemake named a group job by its group alone (the log folder follows).
    EXPECTED["groups"] = ({"group_foo": 3, "rule_c": 1}, EXPECTED["groups"][1])
if not snakemake_at_least("8.11"):
    # Before, the simple test case had no rule d (the wildcard value with `/`).
    EXPECTED["simple"] = (
        {"rule_a": 1, "rule_b": 1, "rule_c": 1},
        ["test3.out", "a.log", "b.log", "c.log"],
    )


@pytest.mark.slurm
class TestFrozenWorkflows(snakemake.common.tests.TestWorkflowsLocalStorageBase):
    __test__ = True
    pytestmark: ClassVar = [pytest.mark.slurm]

    def get_executor(self) -> str:
        return "frozen"

    def get_executor_settings(self) -> ExecutorSettings:
        return ExecutorSettings()

    def run_workflow(self, test_name, tmp_path, deployment_method=frozenset()):
        super().run_workflow(test_name, tmp_path, deployment_method)
        workdir = Path(tmp_path) / test_name
        folders, outputs = EXPECTED[test_name]
        logdir = workdir / ".snakemake" / "frozen_logs"
        logs = sorted(logdir.rglob("*.log"))
        found: dict[str, int] = {}
        for log in logs:
            folder = log.relative_to(logdir).parts[0]
            found[folder] = found.get(folder, 0) + 1
        assert found == folders, logs
        job_ids = [log.stem.split("-")[0] for log in logs]  # <job id>-<run tag>.log
        assert all(job_id.isdigit() for job_id in job_ids), logs
        assert sacct_states(job_ids) == dict.fromkeys(job_ids, "COMPLETED")
        for output in outputs:
            assert (workdir / output).is_file(), output
