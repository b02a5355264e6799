"""Where a job's files go and how it is submitted (placed_jobs.py), with stand-ins for
Snakemake's jobs: the names, modes and groupings the cluster tests rely on."""

import os
import stat
from pathlib import Path

import pytest

from snakemake_executor_plugin_frozen import placed_jobs
from snakemake_executor_plugin_frozen.slurm.sbatch_options import SlurmSubmitError

RUN = "0123abcd-aaaa-bbbb-cccc-000000000000"


class Job:
    """The attributes of Snakemake's job objects that placed_jobs reads."""

    def __init__(
        self, name: str, jobid: int, wildcards: dict | None = None, threads: int = 1, **resources
    ) -> None:
        self.name = name
        self.jobid = jobid
        self.wildcards = wildcards or {}
        self.threads = threads
        self.resources = dict({"mem_mb": 100}, **resources)
        self.group = False

    def is_group(self) -> bool:
        return self.group


def test_a_rule_job_with_wildcards_gets_its_own_folder_and_script(tmp_path: Path) -> None:
    p = placed_jobs.place(Job("align", 12, {"sample": "a b"}), tmp_path, RUN)
    assert p.rule_dir == tmp_path / "rule_align"
    assert p.job_dir == p.rule_dir / "a b"
    assert p.script == p.job_dir / "job-0123abcd-12.sh"
    assert p.comment == "rule_align_wildcards_a b"  # as the stock plugin's --comment
    assert p.label == "rule align (rule_align_wildcards_a b)"


def test_a_group_job_lives_in_its_group_folder(tmp_path: Path) -> None:
    job = Job("g1", 3)
    job.group = True
    p = placed_jobs.place(job, tmp_path, RUN)
    assert (p.rule_dir, p.job_dir, p.label, p.comment) == (
        tmp_path / "group_g1",
        tmp_path / "group_g1",
        "group g1",
        "group_g1",
    )


def test_the_batch_script_is_the_owners_alone_whatever_the_umask(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("old")
    script.chmod(0o777)
    old = os.umask(0)
    try:
        placed_jobs.write_executable(script, "#!/bin/bash\necho hi\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(script.stat().st_mode) == 0o700
    assert script.read_text() == "#!/bin/bash\necho hi\n"
    assert [p.name for p in tmp_path.iterdir()] == ["job.sh"], "no temporary file left"


def test_arrays_group_jobs_of_one_rule_with_the_same_resources(tmp_path: Path) -> None:
    jobs = [
        Job("a", 1),
        Job("a", 2),
        Job("a", 3, mem_mb=200),  # other resources: not in the first array
        Job("a", 4, mem_mb=200),
        Job("b", 5),  # alone in its rule: submitted alone
    ]
    group = Job("a", 6)
    group.group = True
    placed = [placed_jobs.place(j, tmp_path, RUN) for j in [*jobs, group]]
    alone, batches = placed_jobs.array_batches(placed, "all", limit=10)
    assert sorted(p.job.jobid for p in alone) == [5, 6]
    assert [[p.job.jobid for p in b] for b in batches] == [[1, 2], [3, 4]]
    alone, batches = placed_jobs.array_batches(placed, "b", limit=10)
    assert batches == [] and len(alone) == 6
    alone, batches = placed_jobs.array_batches(placed, "", limit=10)
    assert batches == [] and len(alone) == 6


def test_arrays_are_cut_at_the_limit(tmp_path: Path) -> None:
    placed = [placed_jobs.place(Job("a", i), tmp_path, RUN) for i in range(5)]
    alone, batches = placed_jobs.array_batches(placed, "a", limit=2)
    assert [len(b) for b in batches] == [2, 2] and [p.job.jobid for p in alone] == [4]


def test_log_names_carry_the_run_tag(tmp_path: Path) -> None:
    p = placed_jobs.place(Job("a", 1), tmp_path, RUN)
    spec = placed_jobs.alone_spec(p, RUN, tmp_path, "f" * 64, "submission=1")
    assert spec.comment == f"rule_a snapshot={'f' * 12} submission=1"
    assert spec.log_file("4711") == p.job_dir / "4711-0123abcd.log"
    batch = [placed_jobs.place(Job("a", i), tmp_path, RUN) for i in (7, 8, 9)]
    array = placed_jobs.array_spec(batch, RUN, tmp_path, None, "submission=2")
    assert array.comment == "rule_a_array submission=2"
    assert array.array == "0-2"
    assert array.script == tmp_path / "rule_a" / "array-0123abcd-7.sh"
    assert array.task_log_file("50", 2) == tmp_path / "rule_a" / "50_2-0123abcd.log"
    assert placed_jobs.array_label(batch) == "rule a (array of 3 jobs)"


def test_the_comment_names_the_snapshot_and_the_submission() -> None:
    token = placed_jobs.submission_token()
    assert token.startswith("submission=") and token != placed_jobs.submission_token()
    assert (
        placed_jobs.slurm_comment("rule_a", "f" * 64, token)
        == f"rule_a snapshot={'f' * 12} {token}"
    )
    assert placed_jobs.slurm_comment("rule_a", None, token) == f"rule_a {token}"


@pytest.mark.parametrize(
    "error, hinted",
    [
        ("sbatch: error: Requested node configuration is not available", True),
        ("sbatch: error: CPU count per node can not be satisfied", True),
        ("sbatch: error: invalid partition", False),
    ],
)
def test_too_many_threads_come_with_a_hint(error: str, hinted: bool) -> None:
    hint = placed_jobs.threads_hint(64, SlurmSubmitError(error))
    assert ("64 thread(s)" in hint and "--max-threads" in hint) is hinted
    assert (hint == "") is not hinted
