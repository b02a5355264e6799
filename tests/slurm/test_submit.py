import subprocess
import time
from pathlib import Path

import pytest

from snakemake_executor_plugin_frozen.slurm.commands import parse_sbatch_output
from snakemake_executor_plugin_frozen.slurm.sbatch_options import SlurmSubmitError
from snakemake_executor_plugin_frozen.slurm.submit import (
    JobSpec,
    SubmitSettings,
    build_sbatch_argv,
    cluster_of,
)

LABEL = "rule align (wildcards: sample=a)"


def spec(resources=None, threads=1, **changes) -> JobSpec:
    fields = {
        "job_label": LABEL,
        "job_name": "run-uuid",
        "comment": "rule_align_wildcards_a",
        "log_path": Path("/w/.snakemake/slurm_logs/rule_align/a/%j.log"),
        "workdir": Path("/w"),
        "script": Path("/w/.snakemake/frozen/job-1.sh"),
        "resources": resources or {},
        "threads": threads,
    }
    fields.update(changes)
    return JobSpec(**fields)


def argv_for(resources=None, threads=1, settings=None) -> list[str]:
    return build_sbatch_argv(spec(resources, threads), settings)[0]


def middle(argv: list[str]) -> list[str]:
    """The resource part: after --comment <c>, before the script."""
    return argv[argv.index("--comment") + 2 : -1]


def test_minimal_command_line_order_and_warnings():
    argv, warnings = build_sbatch_argv(spec())
    assert argv == [
        "sbatch",
        "--parsable",
        "--job-name",
        "run-uuid",
        "--output",
        "/w/.snakemake/slurm_logs/rule_align/a/%j.log",
        "--export=ALL",
        "--comment",
        "rule_align_wildcards_a",
        "--ntasks=1",
        "--cpus-per-task=1",
        "-D",
        "/w",
        "/w/.snakemake/frozen/job-1.sh",
    ]
    assert len(warnings) == 2
    assert "runtime" in warnings[0] and LABEL not in warnings[0]
    assert "mem_mb" in warnings[1]


def test_full_resource_mapping_in_slurm_plugin_order():
    resources = {
        "slurm_account": "proj",
        "slurm_partition": "short,long",
        "clusters": "c1",
        "runtime": 90,
        "constraint": "avx2",
        "qos": "high",
        "mem_mb": 4000,
        "nodes": 2,
        "tasks": 3,
        "slurm_extra": "--mail-type=END --begin 'now+1hour'",
    }
    settings = SubmitSettings(
        reservation="maint", requeue=True, exclude_nodes=frozenset({"n2", "n1"})
    )
    argv, warnings = build_sbatch_argv(spec(resources, threads=4), settings)
    assert middle(argv) == [
        "-A",
        "proj",
        "-p",
        "short,long",
        "--clusters",
        "c1",
        "-t",
        "90",
        "-C",
        "avx2",
        "--qos=high",
        "--mem",
        "4000",
        "--nodes=2",
        "--requeue",
        "--reservation=maint",
        "--exclude=n1,n2",
        "--ntasks=3",
        "--cpus-per-task=4",
        "--mail-type=END",
        "--begin",
        "now+1hour",
        "-D",
        "/w",
    ]
    assert warnings == []


def test_no_account_or_partition_means_cluster_defaults():
    argv = argv_for({"runtime": 5, "mem_mb": 10})
    assert "-A" not in argv and "-p" not in argv


def test_mem_per_cpu_wins_over_mem():
    argv = argv_for({"mem_mb": 4000, "mem_mb_per_cpu": 1000})
    assert "--mem-per-cpu" in argv and argv[argv.index("--mem-per-cpu") + 1] == "1000"
    assert "--mem" not in argv


@pytest.mark.parametrize(
    ("runtime", "expected"), [(30, "30"), ("45", "45"), ("1-12:00:00", "1-12:00:00")]
)
def test_runtime_values(runtime, expected):
    argv = argv_for({"runtime": runtime})
    assert argv[argv.index("-t") + 1] == expected


@pytest.mark.parametrize(
    ("resources", "name"),
    [
        ({"runtime": "two hours"}, "runtime"),
        ({"runtime": -5}, "runtime"),
        ({"mem_mb": "4GB"}, "mem_mb"),
        ({"mem_mb_per_cpu": 0.5}, "mem_mb_per_cpu"),
        ({"nodes": -1}, "nodes"),
        ({"nodes": "many"}, "nodes"),
        ({"tasks": True}, "tasks"),
        ({"cpus_per_task": "x"}, "cpus_per_task"),
        ({"slurm_account": "a,b"}, "slurm_account"),
    ],
)
def test_bad_values_name_resource_and_job(resources, name):
    with pytest.raises(SlurmSubmitError, match=f"'{name}'") as info:
        argv_for(resources)
    assert LABEL in str(info.value)
    assert "--set-resources" in str(info.value)


def test_zero_and_empty_resources_count_as_unset():
    argv = argv_for({"runtime": 0, "mem_mb": 0, "nodes": 0, "slurm_account": "", "tasks": 0})
    assert not {"-t", "--mem", "-A"} & set(argv)
    assert "--ntasks=1" in argv and not any(a.startswith("--nodes") for a in argv)


def test_integer_strings_and_floats_accepted():
    argv = argv_for({"mem_mb": "2048", "nodes": 2.0})
    assert argv[argv.index("--mem") + 1] == "2048" and "--nodes=2" in argv


def test_empty_constraint_and_qos_are_passed_on():
    argv = argv_for({"constraint": "", "qos": ""})
    assert argv[argv.index("-C") + 1] == "" and "--qos=" in argv


def test_qos_resource_replaces_setting():
    assert "--qos=low" in argv_for(settings=SubmitSettings(qos="low"))
    argv = argv_for({"qos": "high"}, settings=SubmitSettings(qos="low"))
    assert [a for a in argv if a.startswith("--qos")] == ["--qos=high"]


def test_no_requeue_setting_and_exclusive_requeue():
    argv = argv_for(settings=SubmitSettings(no_requeue=True))
    assert "--no-requeue" in argv and "--requeue" not in argv
    with pytest.raises(SlurmSubmitError, match="--frozen-requeue and --frozen-no-requeue"):
        SubmitSettings(requeue=True, no_requeue=True)


@pytest.mark.parametrize("key", ["cluster", "clusters", "slurm_cluster"])
def test_cluster_aliases(key):
    argv = argv_for({key: "c2"})
    assert argv[argv.index("--clusters") + 1] == "c2"
    assert cluster_of({key: "c2"}) == "c2"


def test_cluster_of_prefers_singular_and_ignores_empty():
    assert cluster_of({"cluster": "a", "clusters": "b"}) == "a"
    assert cluster_of({"cluster": "", "slurm_cluster": "c"}) == "c"
    assert cluster_of({}) is None


def test_threads_and_cpus_per_task():
    assert "--cpus-per-task=8" in argv_for(threads=8)
    assert "--cpus-per-task=2" in argv_for({"cpus_per_task": 2}, threads=8)
    assert not any(a.startswith("--cpus") for a in argv_for({"cpus_per_task": -1}, threads=8))
    assert "--cpus-per-task=1" in argv_for(threads=0)  # as the stock plugin
    with pytest.raises(SlurmSubmitError, match="threads"):
        argv_for(threads=-1)


def test_gpu_job_has_no_task_geometry_unless_asked():
    argv = middle(argv_for({"gpu": 2, "gpu_model": "a100", "cpus_per_gpu": 4}))
    assert argv == ["--cpus-per-gpu=4", "-D", "/w", "--gpus=a100:2"]
    # without cpus_per_gpu a GPU job still gets threads as cpus-per-task
    assert "--cpus-per-task=3" in argv_for({"gpu": 1}, threads=3)
    assert not any("cpus" in a for a in argv_for({"gpu": 1, "cpus_per_gpu": -1}))


def test_cpus_per_gpu_ignored_for_cpu_jobs():
    argv = argv_for({"cpus_per_gpu": 4}, threads=2)
    assert "--cpus-per-task=2" in argv and not any("per-gpu" in a for a in argv)


@pytest.mark.parametrize("gres", ["gpu:2", "gpu:a100:1", "tmpspace:10G", "gpu", "gpu:v1.5:1"])
def test_valid_gres(gres):
    argv = argv_for({"gres": gres})
    assert argv[-2] == f"--gres={gres}"


def test_gpu_gres_makes_gpu_job():
    assert not any(a.startswith("--ntasks") for a in argv_for({"gres": "gpu:1"}))
    assert "--ntasks=1" in argv_for({"gres": "tmpspace:10G"})
    assert "--ntasks-per-gpu=2" in argv_for({"gres": "gpu:a100:1", "tasks": 2})


@pytest.mark.parametrize(
    ("resources", "per_gpu"),
    [
        ({"gpu": 1}, None),
        ({"gpu": 1, "tasks": 3}, "3"),
        ({"gpu": 1, "tasks": 3, "tasks_per_gpu": 2}, "2"),
        ({"gpu": 1, "tasks": "4"}, "4"),
        ({"gpu": 1, "tasks_per_gpu": 2.0}, "2"),
        # 0 or less leaves it to SLURM, and does not fall back to tasks (as the stock plugin)
        ({"gpu": 1, "tasks": 3, "tasks_per_gpu": 0}, None),
        ({"gpu": 1, "tasks_per_gpu": -1}, None),
        ({"gpu": 1, "tasks": 0}, None),
    ],
)
def test_gpu_task_geometry_as_stock_plugin(resources, per_gpu):
    argv = argv_for(resources)
    found = [a.split("=", 1)[1] for a in argv if a.startswith("--ntasks-per-gpu=")]
    assert found == ([per_gpu] if per_gpu else [])
    assert not any(a.startswith("--ntasks=") for a in argv)


def test_gpu_mpi_job_gets_tasks_and_tasks_per_gpu():
    argv = argv_for({"gpu": 2, "mpi": "srun", "tasks": 4})
    assert "--ntasks-per-gpu=4" in argv and "--ntasks=4" in argv


@pytest.mark.parametrize(
    ("resources", "name"),
    [({"gpu": 1, "tasks_per_gpu": "x"}, "tasks_per_gpu"), ({"gpu": 1, "tasks": True}, "tasks")],
)
def test_bad_gpu_task_values_name_the_resource(resources, name):
    with pytest.raises(SlurmSubmitError, match=f"resource '{name}'"):
        argv_for(resources)


@pytest.mark.parametrize(
    ("resources", "match"),
    [
        ({"gres": "gpu:1;rm -rf /"}, "'gres'"),
        ({"gres": "'gpu:1'"}, "'gres'"),
        ({"gres": "gpu:1", "gpu": 1}, "'gres' and 'gpu'"),
        ({"gpu_model": "a100"}, "'gpu_model'"),
        ({"gpu": 1, "gpu_model": "a 100"}, "'gpu_model'"),
        ({"gpu": "two"}, "'gpu'"),
    ],
)
def test_invalid_gpu_resources(resources, match):
    with pytest.raises(SlurmSubmitError, match=match):
        argv_for(resources)


def test_mpi_tasks():
    argv = argv_for({"mpi": "mpiexec", "tasks": 4})
    assert argv.count("--ntasks=4") == 1 and "--ntasks=1" not in argv
    assert "--ntasks-per-node=8" in argv_for({"mpi": "srun", "tasks_per_node": 8})


@pytest.mark.parametrize(
    "resources",
    [
        {"mpi": "mpiexec"},
        {"mpi": "mpiexec", "tasks": 2, "tasks_per_node": 2},
        {"mpi": "mpiexec", "tasks": 1},
        {"mpi": "mpiexec", "tasks_per_node": 1},
    ],
)
def test_invalid_mpi_tasks(resources):
    with pytest.raises(SlurmSubmitError, match="tasks"):
        argv_for(resources)


def test_slurm_extra_values_stay_single_arguments():
    argv = argv_for({"slurm_extra": "--mail-user='a b@x' --hint=nomultithread"})
    assert "--mail-user=a b@x" in argv and "--hint=nomultithread" in argv


def test_exclude_in_slurm_extra_merged_with_excluded_nodes():
    settings = SubmitSettings(exclude_nodes=frozenset({"node3"}))
    extra = "-x node1 --mail-type=END --exclud=node[4,5],node2 -vxnode0"
    argv = argv_for({"slurm_extra": extra}, settings=settings)
    assert [a for a in argv if a.startswith(("--exclude", "-x", "--exclud"))] == [
        "--exclude=node0,node1,node2,node3,node[4,5]"
    ]
    assert "--mail-type=END" in argv and "-v" in argv
    assert argv.index("--exclude=node0,node1,node2,node3,node[4,5]") < argv.index("--ntasks=1")
    assert not {"node1", "-x"} & set(argv)


def test_exclude_only_in_slurm_extra_becomes_one_option():
    argv = argv_for({"slurm_extra": "--exclude node2 --exclude=node1"})
    assert [a for a in argv if "exclude" in a] == ["--exclude=node1,node2"]
    assert "node2" not in argv


def test_excluded_nodes_alone_sorted():
    settings = SubmitSettings(exclude_nodes=frozenset({"n10", "n2", "gpu[1-2]"}))
    assert "--exclude=gpu[1-2],n10,n2" in argv_for(settings=settings)
    assert not any("exclude" in a for a in argv_for())


@pytest.mark.parametrize("entry", ["node1,node2", "a b", "/etc/nodes", "node[1-2", ""])
def test_excluded_nodes_setting_checked(entry):
    with pytest.raises(SlurmSubmitError, match="--frozen-exclude-failed-nodes"):
        SubmitSettings(exclude_nodes=frozenset({"node9", entry}))


def test_slurm_extra_unbalanced_quote():
    with pytest.raises(SlurmSubmitError, match="quotes"):
        argv_for({"slurm_extra": "--mail-user='x"})


def test_slurm_extra_validated_when_building():
    with pytest.raises(SlurmSubmitError, match="mem_mb"):
        argv_for({"slurm_extra": "--mem=4G"})


@pytest.mark.parametrize(
    "changes",
    [
        {"log_path": Path("logs/%j.log")},
        {"workdir": Path("w")},
        {"script": Path("job.sh")},
    ],
)
def test_paths_must_be_absolute(changes):
    with pytest.raises(SlurmSubmitError, match="absolute"):
        build_sbatch_argv(spec(**changes))


def test_percent_in_log_directory_escaped_and_backslash_rejected():
    """SLURM (22.05 on the test cluster) writes `%%` as `%`; a backslash switches its patterns
    off and is dropped, so the log would land elsewhere."""
    escaped = spec(log_path=Path("/w/100%j/%j.log"))
    argv, _ = build_sbatch_argv(escaped)
    assert argv[argv.index("--output") + 1] == "/w/100%%j/%j.log"
    assert escaped.log_file("42") == Path("/w/100%j/42.log")
    with pytest.raises(SlurmSubmitError, match="backslash"):
        build_sbatch_argv(spec(log_path=Path("/w/a\\b/%j.log")))


def test_job_array_argv_and_task_logs():
    array = spec(array="0-999%50", log_path=Path("/w/logs/rule_a/%A_%a.log"))
    argv, _ = build_sbatch_argv(array)
    assert argv[argv.index("--comment") + 2] == "--array=0-999%50"
    assert argv[argv.index("--output") + 1] == "/w/logs/rule_a/%A_%a.log"
    assert array.task_log_file("77", 3) == Path("/w/logs/rule_a/77_3.log")
    assert not any(a.startswith("--array") for a in argv_for())


def test_job_array_log_directory_percent_stays_literal():
    array = spec(array="1,3,5-7", log_path=Path("/w/50%A_%a/%A_%a.log"))
    argv, _ = build_sbatch_argv(array)
    assert argv[argv.index("--output") + 1] == "/w/50%%A_%%a/%A_%a.log"
    assert array.task_log_file("12", 5) == Path("/w/50%A_%a/12_5.log")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"array": "0-9;rm", "log_path": Path("/w/%A_%a.log")}, "index list"),
        ({"array": "", "log_path": Path("/w/%A_%a.log")}, "index list"),
        ({"array": "0-9\n", "log_path": Path("/w/%A_%a.log")}, "index list"),
        ({"array": "0-9", "log_path": Path("/w/%j.log")}, "must contain %a"),
    ],
)
def test_bad_job_array_refused(changes, match):
    with pytest.raises(SlurmSubmitError, match=match) as info:
        build_sbatch_argv(spec(**changes))
    assert LABEL in str(info.value)


# -- against the installed sbatch ---------------------------------------------------------


def scontrol_job(job_id: str) -> str:
    return subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
    ).stdout


def wait_until_gone(job_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = subprocess.run(
            ["squeue", "-h", "-j", job_id], capture_output=True, text=True
        ).stdout
        if not listed.strip():
            return
        time.sleep(0.5)
    subprocess.run(["scancel", job_id])
    raise AssertionError(f"job {job_id} still queued after {timeout} s")


@pytest.mark.slurm
def test_abbreviated_slurm_extra_submitted_to_sbatch(tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    resources = {
        "slurm_partition": "debug",
        "runtime": 2,
        "mem_mb": 50,
        "slurm_extra": "--mail-t END --kill-on=yes --nic -x node2 --hold",
    }
    job = spec(resources, log_path=tmp_path / "%j.log", workdir=tmp_path, script=script)
    settings = SubmitSettings(exclude_nodes=frozenset({"node[2]"}))
    argv, _ = build_sbatch_argv(job, settings)
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    job_id = parse_sbatch_output(result.stdout)
    try:
        shown = scontrol_job(job_id)
    finally:
        subprocess.run(["scancel", job_id], check=True)
    for field in ("MailType=END", "KillOInInvalidDependent=Yes", "Nice=100", "ExcNodeList=node2"):
        assert field in shown
    assert "Reason=JobHeldUser" in shown


@pytest.mark.slurm
def test_job_array_task_logs_where_slurm_writes_them(tmp_path):
    log_dir = tmp_path / "50%A"  # a '%' in the directory stays literal
    log_dir.mkdir()
    script = tmp_path / "job.sh"
    script.write_text('#!/bin/bash\necho "task $SLURM_ARRAY_TASK_ID"\n')
    job = spec(
        {"slurm_partition": "debug", "runtime": 2, "mem_mb": 50},
        log_path=log_dir / "%A_%a.log",
        workdir=tmp_path,
        script=script,
        array="0-2%2",
    )
    argv, _ = build_sbatch_argv(job)
    job_id = parse_sbatch_output(subprocess.run(argv, capture_output=True, text=True).stdout)
    wait_until_gone(job_id)
    for task in range(3):
        assert job.task_log_file(job_id, task).read_text() == f"task {task}\n"
    assert sorted(p.name for p in log_dir.iterdir()) == [f"{job_id}_{t}.log" for t in range(3)]
