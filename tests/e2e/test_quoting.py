"""Every value in a batch script reaches the job as it is, and runs nothing (issue 8, item 5).

Values with quotes, `$()`, backticks, spaces, newlines, unicode and bytes that are not UTF-8
go through the job's command (Snakemake's own arguments), the node helper's arguments and the
script's comment line. Each value that a shell could evaluate would `touch` a marker file
whose name starts with MARK; no marker may appear anywhere. Values the job's Snakemake would
not get back intact are refused before submission, naming the job and the value.
"""

import base64
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from helpers.paths import CLUSTER_NODES, REPO
from helpers.snakemake import make_workflow, run_snakemake

from snakemake_executor_plugin_frozen.jobscript import FrozenEntry, render

MARK = "QMARK"
NOT_UTF8 = b"\xff\xfe".decode("utf-8", "surrogateescape")
# helpers.snakemake's SUBMITTED_RE wants a log path without spaces.
SUBMITTED_RE = re.compile(r"^Job \d+ submitted as (\S+) \(log: ", re.MULTILINE)
# Prints its arguments as hex bytes (a JSON list), so that every byte can be compared.
STUB = [
    sys.executable,
    "-c",
    "import json, os, sys; print(json.dumps([os.fsencode(a).hex() for a in sys.argv[1:]]))",
]


def hostile(tag: str) -> list[str]:
    """Values that would create a marker file if any shell evaluated them."""
    m = f"{MARK}{tag}"
    return [
        f"x'$(touch {m}1)'y",
        f'd"q"$(touch {m}2)',
        f"b`touch {m}3`c",
        f"both'\"quotes\"' ;touch {m}4",
        f"$HOME${{IFS}}$(touch {m}5)",
        f"nl\n touch {m}6\nx",
        f"'looks quoted'$(touch {m}7)'",
        f'"dq"`touch {m}8`"',
        "s p a c e\ttab",
        "ünï日本 é",
        "back\\slash\\n\\",
        "p%jc * ? ~root {a,b} !x",
        "\u202eright-to-left",
        "cr\rx\x1b[31m\x7f",
        NOT_UTF8 + "bytes",
        "",
        "-",
    ]


# Wildcard values a workflow can carry to its jobs (no ',' and no quote at either end: the
# job's Snakemake cannot tell those apart, see the refusal test).
def wildcard_values(tag: str) -> list[str]:
    m = f"{MARK}{tag}"
    return [
        f"x'$(touch {m}w1)'y",
        f'd"q$(touch {m}w2)x',
        f"b`touch {m}w3`c",
        f"both'\"quotes ;touch {m}w4 x",
        "s p a c e",
        "ünï日本",
        f"$HOME$(touch {m}w5)",
        "p%jc",
        "back\\slash",
        f"nl\n$(touch {m}w6)x",
    ]


def decoded(stdout: str) -> list[str]:
    return [os.fsdecode(bytes.fromhex(h)) for h in json.loads(stdout)]


def run_script(tmp_path: Path, text: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "job.sh"
    script.write_bytes(text.encode("utf-8"))  # strict: no byte that is not UTF-8 in the script
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    ran = subprocess.run(
        ["bash", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    assert ran.returncode == 0, ran.stderr
    return ran


def markers(*roots: Path, recursive: bool = True) -> list[str]:
    found = []
    for root in roots:
        if not root.exists():
            continue
        if not recursive:
            found += [str(p) for p in root.iterdir() if p.name.startswith(MARK)]
            continue
        for folder, dirs, files in os.walk(root):
            found += [os.path.join(folder, n) for n in dirs + files if n.startswith(MARK)]
    return found


def markers_anywhere(workdir: Path) -> list[str]:
    """The workdir, its parent (the test's tmp_path), the node scratch folders, and /tmp and
    the repository at their top."""
    return markers(workdir.parent, *CLUSTER_NODES.glob("*/scratch")) + markers(
        Path("/tmp"), REPO, Path.cwd(), recursive=False
    )


# shebang, comment, `set`, the job's command in its `if` block (4), `node run` of it
LINES_WITHOUT_SNAPSHOT = 8


def assert_script_lines_are_clean(text: str, lines: int) -> None:
    assert text.count("\n") == lines, text
    for line in text.splitlines():
        assert line.isprintable(), line
    assert all(not line.startswith("#SBATCH") for line in text.splitlines())


# -- the words themselves ---------------------------------------------------------------------


def test_quoted_values_reach_the_command_as_they_are(tmp_path: Path) -> None:
    from snakemake_executor_plugin_frozen import shellwords

    values = hostile("A")
    command = shlex.join(STUB) + " " + " ".join(shellwords.quote(v) for v in values)
    text = render("rule make (" + " | ".join(values) + ")", command, None)
    assert_script_lines_are_clean(text, LINES_WITHOUT_SNAPSHOT)
    assert decoded(run_script(tmp_path, text).stdout) == values
    assert markers(tmp_path) == []


def test_snakemakes_job_arguments_are_bash_words_within_our_call(tmp_path: Path) -> None:
    """Snakemake's own `format_cli_arg` (as real.py imports it) with each kind of value:
    lists, paths, values that only look quoted, `quote=False`, base64, dicts, enums, flags."""
    from snakemake_interface_executor_plugins import utils
    from snakemake_interface_executor_plugins.executors.real import format_cli_arg
    from snakemake_interface_executor_plugins.settings import ExecMode

    from snakemake_executor_plugin_frozen import shellwords
    from snakemake_executor_plugin_frozen.jobscript import frozen_path

    values = [v for v in hostile("B") if v not in ("", "-")]
    looks_quoted = f"'a'$(touch {MARK}B9)'b'"
    original = (utils.format_cli_pos_arg, utils.format_cli_value)
    assert format_cli_arg("--x", looks_quoted) == f"--x {looks_quoted}"  # Snakemake: raw
    with shellwords.bash_quoted_cli() as formatting:
        args = [
            format_cli_arg("--target-jobs", [f"make:v={v}" for v in values]),
            format_cli_arg("--allowed-rules", ["make", "all"], quote=False),
            format_cli_arg("--wait-for-files", [Path("/w") / values[0], values[1]]),
            format_cli_arg("--config", [f"k={values[2]}", f"j='{values[3]}'"]),
            format_cli_arg("--looks-quoted", looks_quoted),
            format_cli_arg("--set-resource-scopes", {"mem_mb": values[4]}),
            format_cli_arg("--cores", 4),
            format_cli_arg("--force-use-threads", True),
            format_cli_arg("--b64", values[5], base64_encode=True),
            format_cli_arg("--mode", ExecMode.REMOTE),
            format_cli_arg("--snakefile", frozen_path(f"sub dir/S'nake$(touch {MARK}B10)")),
            format_cli_arg("--configfiles", [frozen_path("c\nf.yaml")]),
        ]
    assert formatting.calls > 0
    assert (utils.format_cli_pos_arg, utils.format_cli_value) == original
    text = render("t", " ".join([shlex.join(STUB), *args]), None)
    assert_script_lines_are_clean(text, LINES_WITHOUT_SNAPSHOT)
    got = decoded(run_script(tmp_path, text, FROZEN_DIR="/f d").stdout)
    b64 = "base64//" + base64.b64encode(values[5].encode("utf-8", "surrogateescape")).decode()
    assert got == [
        "--target-jobs", *(f"make:v={v}" for v in values),
        "--allowed-rules", "make", "all",
        "--wait-for-files", f"/w/{values[0]}", values[1],
        "--config", f"k={values[2]}", f"j='{values[3]}'",
        "--looks-quoted", looks_quoted,
        "--set-resource-scopes", f"mem_mb={values[4]}",
        "--cores", "4",
        "--force-use-threads",
        "--b64", b64,
        "--mode", "remote",
        "--snakefile", f"/f d/sub dir/S'nake$(touch {MARK}B10)",
        "--configfiles", "/f d/c\nf.yaml",
    ]  # fmt: skip
    assert markers(tmp_path) == []


def test_other_threads_keep_snakemakes_own_formatting() -> None:
    from snakemake_interface_executor_plugins import utils
    from snakemake_interface_executor_plugins.executors.real import format_cli_arg

    from snakemake_executor_plugin_frozen import shellwords

    original = (utils.format_cli_pos_arg, utils.format_cli_value)
    inside, done, seen = threading.Event(), threading.Event(), {}

    def other() -> None:
        inside.wait(10)
        seen["other"] = format_cli_arg("--x", "it's")
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with shellwords.bash_quoted_cli():
        inside.set()
        assert done.wait(10)
        seen["ours"] = format_cli_arg("--x", "it's")
    thread.join()
    assert seen == {"other": '--x "it\'s"', "ours": "--x 'it'\\''s'"}

    errors: list[str] = []

    def submitter(n: int) -> None:
        for i in range(200):
            with shellwords.bash_quoted_cli():
                if (got := format_cli_arg("--v", f"{n}'{i}")) != f"--v '{n}'\\''{i}'":
                    errors.append(got)
            if (got := format_cli_arg("--v", f"{n}'{i}")) != f'--v "{n}\'{i}"':
                errors.append(got)

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert (utils.format_cli_pos_arg, utils.format_cli_value) == original


def test_values_the_job_would_not_get_back_are_named() -> None:
    from snakemake_interface_executor_plugins.executors.real import format_cli_arg
    from snakemake_interface_executor_plugins.utils import TargetSpec

    from snakemake_executor_plugin_frozen import shellwords

    for value in ("a\0b", "-R.txt", "lone \ud800 surrogate"):
        with pytest.raises(shellwords.RefusedValue), shellwords.bash_quoted_cli():
            format_cli_arg("--wait-for-files", ["/w/tmp", value])
    with shellwords.bash_quoted_cli():
        assert format_cli_arg("--cores", -1) == "--cores -1"  # numbers are not options
    for value in ("a,b", "'q'", '"q', "q'"):
        problem = shellwords.target_jobs_problem([TargetSpec("make", {"v": value})])
        assert problem and shellwords.shown(value) in problem
    assert shellwords.target_jobs_problem([TargetSpec("make", {"v": "x'$(a)'y\nb"})]) is None
    for path in ("/w/a\nb", "/w/a\rb", "/w/a ", " /w/a"):
        problem = shellwords.wait_files_problem(["/w/ok", path])
        assert problem and shellwords.shown(path) in problem
    assert shellwords.wait_files_problem(["/w/a b", "/w/ü$(x)\x1cy"]) is None


def test_the_comment_line_and_the_node_helpers_arguments(tmp_path: Path) -> None:
    """The helper (`python -m ...node enter ...`) gets the archive, code root, prefix and
    scratch as they are; the description cannot start a line (of code, or `#SBATCH`)."""
    folder = tmp_path / f"py dir'$(touch {MARK}E1)'"
    folder.mkdir()
    record = tmp_path / "argv.jsonl"
    python = folder / "python"
    python.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(record)!r}, 'a') as f:\n"
        "    print(json.dumps([os.fsencode(a).hex() for a in sys.argv[1:]]), file=f)\n"
        "if 'enter' in sys.argv:\n"
        "    print('FROZEN_DIR=/f; FROZEN_JOB_DIR=/j; FROZEN_SCRATCH=/s')\n"
    )
    python.chmod(0o755)
    entry = FrozenEntry(
        python=str(python),
        archive=Path(f"/a r/c'h$(touch {MARK}E2)\n{NOT_UTF8}.tar.zst"),
        archive_sha256="0" * 64,
        snapshot_id="id",
        code_root=Path(f'/code `touch {MARK}E3`/x"y'),
        prefix=f"sub dir/$(touch {MARK}E4)",
        scratch="{TMPDIR}/s'cr\tatch",
        keep_extracted=True,
        # Folders of the user's tree, bound whole by the job's view.
        whole=(f"a'b$(touch {MARK}W1)", f"nl\n`touch {MARK}W2`", "-x", ""),
    )
    description = f"rule make (v=a\n touch {MARK}E5\n#SBATCH --wrap=x {NOT_UTF8}), run 1"
    # The recording Python runs `run` too (it does not run the job's command).
    text = render(description, "true", entry, python=str(python))
    comment = text.splitlines()[1]
    assert comment.startswith("# snakemake-executor-plugin-frozen: rule make (v=a\\n touch")
    assert "\\xff\\xfe" in comment
    run_script(tmp_path, text)
    enter, run, leave = [decoded(line) for line in record.read_text().splitlines()]
    assert enter[:-1] == [
        "-P", "-m", "snakemake_executor_plugin_frozen.node", "enter",
        "--archive", str(entry.archive), "--sha256", "0" * 64, "--id", "id",
        "--code-root", str(entry.code_root), "--prefix", entry.prefix, "--keep",
        "--scratch", entry.scratch, "--holder",
    ]  # fmt: skip
    assert run[3:] == [
        "run", "--view", "auto", f"--whole=a'b$(touch {MARK}W1)", f"--whole=nl\n`touch {MARK}W2`",
        "--whole=-x", "--whole=", "--", run[11], str(tmp_path / "job.sh"), "--frozen-job-command",
    ]  # fmt: skip
    assert leave == ["-P", "-m", "snakemake_executor_plugin_frozen.node", "leave"]
    assert markers(tmp_path) == []
    assert_script_lines_are_clean(text, len(text.splitlines()))


# -- whole workflows ---------------------------------------------------------------------------

SNAKEFILE = """\
configfile: "config.yaml"
wildcard_constraints:
    v="(?s:.+)"
rule all:
    input: expand("out/{v}.txt", v=config["values"])
rule make:
    output: "out/{v}.txt"
    shell: "printf '%s' {wildcards.v:q} > {output:q}"
"""


def workflow_files(values: list[str]) -> dict[str, str]:
    """The workflow making an output of each value (for ``make_workflow``)."""
    config = yaml.safe_dump({"values": values}, allow_unicode=True)
    return {"Snakefile": SNAKEFILE, "config.yaml": config}


def assert_outputs(workdir: Path, values: list[str]) -> None:
    out = workdir / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{v}.txt" for v in values)
    for value in values:
        assert (out / f"{value}.txt").read_text() == value


def local_run(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_snakemake(
        workdir, "--executor", "frozen", "--frozen-submit", "local", "-j6", *args, check=False
    )


def test_a_hostile_workdir_and_wildcard_values_run_locally(tmp_path: Path) -> None:
    """The real Snakemake command of each job, run by bash (no SLURM needed)."""
    name = f"q\"u'o`touch {MARK}L1` $(touch {MARK}L2) 100%j ünï\nnl"
    values = wildcard_values("L")
    workdir = make_workflow(tmp_path, files=workflow_files(values), folder=name)
    result = local_run(workdir)
    assert result.returncode == 0, result.stderr[-6000:]
    assert_outputs(workdir, values)
    assert markers_anywhere(workdir) == []


@pytest.mark.parametrize("value", ["a,b", "'q'", 'q"'])
def test_wildcard_values_the_job_would_not_get_back_are_refused_before_submission(
    tmp_path: Path, value: str
) -> None:
    """Snakemake's --target-jobs splits at ',' and strips end quotes: `'q'` would run the job
    for `q` (another output) and `a,b` fail on the node; say so before submitting."""
    workdir = make_workflow(tmp_path, files=workflow_files([value]))
    result = local_run(workdir)
    assert result.returncode != 0
    assert "frozen: rule make (v=" in result.stderr and "not submitted" in result.stderr
    assert "--target-jobs" in result.stderr, result.stderr[-3000:]
    assert not list((workdir / ".snakemake").rglob("job-*.sh"))
    assert not (workdir / "out").exists() or not list((workdir / "out").iterdir())


def test_a_line_break_in_a_wait_for_files_file_is_refused_before_submission(
    tmp_path: Path,
) -> None:
    """More than 20 input files go to the job in a file read line by line."""
    workdir = tmp_path / "wf"
    (workdir / "in").mkdir(parents=True)
    names = [f"f{i}" for i in range(20)] + ["two\nlines"]
    for name in names:
        (workdir / "in" / name).write_text("x")
    (workdir / "Snakefile").write_text(
        f"rule gather:\n    input: {['in/' + n for n in names]!r}\n"
        "    output: 'all.txt'\n    shell: 'cat {input:q} > {output:q}'\n"
    )
    result = local_run(workdir)
    assert result.returncode != 0
    assert "frozen: rule gather not submitted: the path" in result.stderr, result.stderr[-3000:]
    assert "two\\nlines" in result.stderr
    assert not (workdir / "all.txt").exists()


# -- on the cluster ----------------------------------------------------------------------------

WORKDIRS = {
    "issue": f"inj'$(touch {MARK}C1)'x",
    "everything": f"q\"u'o`touch {MARK}C2` $(touch {MARK}C3) 100%j sp ace ünï日本",
    "newline": f"new\nline$(touch {MARK}C4)",
}


def slurm_run(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_snakemake(
        workdir,
        "--executor", "frozen", "-j10", "--latency-wait", "10",
        "--default-resources", "mem_mb=100", "runtime=5",
        *args,
        check=False,
    )  # fmt: skip


@pytest.mark.slurm
@pytest.mark.parametrize("kind", WORKDIRS)
def test_hostile_workdirs_and_wildcard_values_on_the_cluster(tmp_path: Path, kind: str) -> None:
    values = wildcard_values(kind)
    workdir = make_workflow(tmp_path, files=workflow_files(values), folder=WORKDIRS[kind])
    result = slurm_run(workdir)
    assert result.returncode == 0, result.stderr[-8000:]
    assert len(SUBMITTED_RE.findall(result.stderr)) == len(values)
    assert all(job_id.isdigit() for job_id in SUBMITTED_RE.findall(result.stderr))
    assert_outputs(workdir, values)
    assert markers_anywhere(workdir) == []


@pytest.mark.slurm
def test_a_backslash_in_the_log_path_is_refused_before_submission(tmp_path: Path) -> None:
    """SLURM drops a backslash from --output (and its %j with it): no log, a failed job."""
    workdir = make_workflow(tmp_path, files=workflow_files(["a"]), folder="back\\slash")
    result = slurm_run(workdir)
    assert result.returncode != 0
    assert "must not contain a backslash" in result.stderr, result.stderr[-3000:]
    assert SUBMITTED_RE.findall(result.stderr) == []
