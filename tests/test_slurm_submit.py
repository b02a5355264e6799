from pathlib import Path

import pytest

from snakemake_executor_plugin_frozen.slurm.submit import (
    JobSpec,
    SlurmSubmitError,
    SubmitSettings,
    build_sbatch_argv,
    cluster_of,
    parse_sbatch_output,
    validate_slurm_extra,
    wildcards_comment,
    wildcards_dir,
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
    settings = SubmitSettings(reservation="maint", requeue=True, exclude_nodes="n1,n2")
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
    assert "--no-requeue" in argv_for(settings=SubmitSettings(no_requeue=True))
    with pytest.raises(SlurmSubmitError, match="requeue"):
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


def test_gpu_job_tasks_and_cpus_per_gpu():
    argv = middle(argv_for({"gpu": 2, "gpu_model": "a100", "cpus_per_gpu": 4}))
    assert argv[-4:] == ["--cpus-per-gpu=4", "-D", "/w", "--gpus=a100:2"]
    assert "--ntasks-per-gpu=1" in argv and not any(a.startswith("--ntasks=") for a in argv)
    assert "--ntasks-per-gpu=3" in argv_for({"gpu": 1, "tasks": 3})
    assert "--ntasks-per-gpu=2" in argv_for({"gpu": 1, "tasks": 3, "tasks_per_gpu": 2})
    # tasks_per_gpu <= 0 leaves it to SLURM
    assert not any("ntasks" in a for a in argv_for({"gpu": 1, "tasks_per_gpu": 0}))
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
    argv = argv_for({"gres": "gpu:1"})
    assert "--ntasks-per-gpu=1" in argv


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


@pytest.mark.parametrize(
    ("extra", "instead"),
    [
        ("--job-name=x", "the executor sets it"),
        ("-J x", "the executor sets it"),
        ("-Jx", "the executor sets it"),
        ("--output /tmp/o", "the executor sets it"),
        ("-o o.log", "the executor sets it"),
        ("-e e.log", "the executor sets it"),
        ("--error=e.log", "the executor sets it"),
        ("--parsable", "the executor sets it"),
        ("--export=NONE", "the executor sets it"),
        ("--comment hi", "the executor sets it"),
        ("--chdir=/x", "the executor sets it"),
        ("--workdir /x", "the executor sets it"),
        ("-D /x", "the executor sets it"),
        ("--wrap 'echo hi'", "the executor sets it"),
        ("--array=1-3", "the executor sets it"),
        ("--wait", "the executor sets it"),
        ("--account=x", "slurm_account"),
        ("-A x", "slurm_account"),
        ("--partition x", "slurm_partition"),
        ("-p x", "slurm_partition"),
        ("--mem=4G", "mem_mb"),
        ("--mem-per-cpu 1G", "mem_mb_per_cpu"),
        ("--ntasks=2", "'tasks'"),
        ("-n 2", "'tasks'"),
        ("--ntasks-per-gpu=2", "tasks_per_gpu"),
        ("--cpus-per-task=2", "cpus_per_task"),
        ("-c 2", "cpus_per_task"),
        ("--cpus-per-gpu=2", "cpus_per_gpu"),
        ("--time=10", "runtime"),
        ("-t 10", "runtime"),
        ("--constraint=x", "constraint"),
        ("-C x", "constraint"),
        ("--qos=x", "qos"),
        ("-q x", "qos"),
        ("--nodes=2", "nodes"),
        ("-N 2", "nodes"),
        ("--clusters=x", "clusters"),
        ("-M x", "clusters"),
        ("--gres=gpu:1", "gres"),
        ("--gpus=1", "gpu"),
        ("-G 1", "gpu"),
    ],
)
def test_slurm_extra_rejects_executor_managed_options(extra, instead):
    with pytest.raises(SlurmSubmitError, match="slurm_extra") as info:
        validate_slurm_extra(f"--mail-type=END {extra}", LABEL)
    assert LABEL in str(info.value) and instead in str(info.value)


@pytest.mark.parametrize(
    "extra",
    [
        "--mem-per-gpu=10G",
        "--ntasks-per-node=2",
        "--export-file=env",
        "--time-min=10",
        "--gres-flags=enforce-binding",
        "--exclusive",
        "--mail-type=END,FAIL --mail-user=me@x.org",
        "--nodelist=n1",
        "--licenses=matlab:1",
    ],
)
def test_slurm_extra_allows_other_options(extra):
    assert validate_slurm_extra(extra, LABEL)


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


def test_wildcard_helpers():
    wildcards = {"sample": "a", "path": "x/y"}
    assert wildcards_comment("align", wildcards) == "rule_align_wildcards_a_x_y"
    assert wildcards_comment("all", {}) == "rule_all"
    assert wildcards_dir(wildcards) == "a_x_y"
    assert wildcards_dir({}) == ""
    assert wildcards_dir({"p": "50%"}) == "50_"
    # A value that is not UTF-8 (a file name read from disk) is a folder name all the same.
    assert wildcards_dir({"f": "caf\udce9"}) == "caf\udce9"
    assert len(wildcards_dir({"f": "\udce9" * 300}).encode(errors="surrogateescape")) <= 255


def test_long_wildcards_dir_is_shortened_uniquely():
    first = wildcards_dir({"a": "x" * 300})
    second = wildcards_dir({"a": "x" * 301})
    assert len(first.encode()) <= 200 and first != second
    assert wildcards_dir({"a": "é" * 150}).encode().decode() and "/" not in first


@pytest.mark.parametrize(
    ("stdout", "job_id"),
    [
        ("123\n", "123"),
        ("4567;cluster2\n", "4567"),
        ("sbatch: site banner\n89\n", "89"),
        ("Submitted batch job 42\n", "42"),
        ("warning: 3 jobs queued\nSubmitted batch job 77 on cluster c\n", "77"),
    ],
)
def test_parse_sbatch_output(stdout, job_id):
    assert parse_sbatch_output(stdout) == job_id


@pytest.mark.parametrize("stdout", ["", "sbatch: error: nope", "12\n13\n", "1.5"])
def test_parse_sbatch_output_rejects(stdout):
    with pytest.raises(ValueError, match="job id"):
        parse_sbatch_output(stdout)
