"""The job-site hook (jobsite/sitecustomize.py) that every Python process of a frozen job
loads: imports and reads of code-root files come from the snapshot's copy, whatever the
working directory puts first.

Each test builds a live code root (everything says "live") and a frozen copy of it
(everything says "frozen"), runs a real Python process in the live tree with the job's
environment, and checks which version it saw; the control runs without the hook."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from snakemake_executor_plugin_frozen.node.commands import JOBSITE

FILES = {
    "mod.py": 'V = "{v}"\nif __name__ == "__main__":\n    print("main", V)\n',
    "pkg/__init__.py": "",
    "pkg/tool.py": 'import mod\nprint("tool", mod.V)\n',
    "config/samples.tsv": "sample\tversion\ns1\t{v}\n",
    "config/units.yaml": "version: {v}\n",
    "config/settings.json": '{{"version": "{v}"}}\n',
}


def write_tree(root: Path, version: str) -> None:
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(v=version))


@pytest.fixture
def job(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """(live code root, the environment a job running from the frozen copy has)."""
    live, copy = tmp_path / "live", tmp_path / "copy"
    write_tree(live, "live")
    write_tree(copy, "frozen")
    env = {
        **os.environ,
        "PYTHONPATH": f"{JOBSITE}:{copy}",
        "FROZEN_DIR": str(copy),
        "FROZEN_COPY": str(copy),
        "FROZEN_CODE_ROOT": str(live),
        "FROZEN_PYTHONPATH": str(copy),
    }
    env.pop("FROZEN_REPORT_READS", None)
    return live, env


def python(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result


def without_hook(env: dict[str, str]) -> dict[str, str]:
    return {**env, "PYTHONPATH": env["PYTHONPATH"].split(":", 1)[1]}


def test_python_c_and_m_import_the_snapshot_although_the_live_tree_comes_first(job) -> None:
    live, env = job
    assert python(live, env, "-c", "import mod; print(mod.V)").stdout == "frozen\n"
    assert python(live, env, "-m", "mod").stdout == "main frozen\n"
    assert python(live, env, "-m", "pkg.tool").stdout == "tool frozen\n"
    # Control: without the hook Python puts the live working directory first.
    plain = without_hook(env)
    assert python(live, plain, "-c", "import mod; print(mod.V)").stdout == "live\n"
    assert python(live, plain, "-m", "pkg.tool").stdout == "tool live\n"


def test_a_module_the_snapshot_lacks_still_imports_from_the_live_tree(job) -> None:
    live, env = job
    (live / "extra.py").write_text('V = "live-only"\n')
    assert python(live, env, "-c", "import extra; print(extra.V)").stdout == "live-only\n"


READS = """
import csv, json, pathlib, yaml
print(list(csv.DictReader(open("config/samples.tsv"), delimiter="\\t"))[0]["version"])
print(open("config/samples.tsv").read().split()[-1])
print(pathlib.Path("config/samples.tsv").read_text().split()[-1])
print(yaml.safe_load(open("config/units.yaml"))["version"])
print(json.loads(pathlib.Path("config/settings.json").read_bytes())["version"])
print(open(pathlib.Path.cwd() / "config" / "units.yaml", "rb").read().split()[-1].decode())
"""


def test_reads_of_snapshot_files_return_the_snapshots_bytes(job) -> None:
    live, env = job
    assert python(live, env, "-c", READS).stdout.split() == ["frozen"] * 6
    assert python(live, without_hook(env), "-c", READS).stdout.split() == ["live"] * 6


def test_writes_and_files_outside_the_snapshot_stay_live(job) -> None:
    live, env = job
    (live / "results").mkdir()
    (live / "results" / "out.txt").write_text("live output\n")
    code = """
print(open("results/out.txt").read().strip())
with open("config/units.yaml", "a") as f:   # written: never redirected, read live after
    f.write("# appended\\n")
print(open("config/units.yaml").read().count("appended"))
"""
    assert python(live, env, "-c", code).stdout.split() == ["live", "output", "1"]
    assert "appended" not in (Path(env["FROZEN_DIR"]) / "config" / "units.yaml").read_text()


def test_sources_above_the_code_root_are_read_from_above_the_copy(tmp_path: Path) -> None:
    """A snapshot with files outside the code root: the copy of the code root lies at
    <copy>/nest/subdir and the outside file at <copy>/resources/test.txt."""
    live_base, copy = tmp_path / "live", tmp_path / "copy"
    for base, version in ((live_base, "live"), (copy, "frozen")):
        (base / "nest" / "subdir").mkdir(parents=True)
        (base / "resources").mkdir()
        (base / "resources" / "test.txt").write_text(version)
    code_root = live_base / "nest" / "subdir"
    env = {
        **os.environ,
        "PYTHONPATH": str(JOBSITE),
        "FROZEN_DIR": str(copy / "nest" / "subdir"),
        "FROZEN_COPY": str(copy),
        "FROZEN_CODE_ROOT": str(code_root),
    }
    read = "print(open('../../resources/test.txt').read()); print(open('/etc/hostname').read())"
    lines = python(code_root, env, "-c", read).stdout.splitlines()
    assert lines[0] == "frozen"
    assert lines[1] == Path("/etc/hostname").read_text().strip()


def test_the_report_lists_served_reads_and_edits_and_is_not_inherited(job) -> None:
    live, env = job
    (live / "config" / "units.yaml").write_text("version: frozen\n")  # same as the copy
    # Edited to the same size: only the bytes tell it apart.
    (live / "config" / "samples.tsv").write_text("sample\tversion\ns1\tFROZEN\n")
    code = """
import subprocess, sys
open("config/samples.tsv").read(); open("config/units.yaml").read()
subprocess.run([sys.executable, "-c", "open('config/settings.json').read()"], check=True)
"""
    reported = python(live, {**env, "FROZEN_REPORT_READS": "1"}, "-c", code).stderr
    lines = [line for line in reported.splitlines() if line.startswith("frozen:")]
    assert lines[0] == "frozen: 2 file(s) of the code root were read from the snapshot:"
    assert lines[1].endswith("config/samples.tsv  (the live file differs: edited since submission)")
    assert lines[2].endswith("config/units.yaml")
    assert "settings.json" not in reported  # the child process reports nothing


def test_another_sitecustomize_still_runs(job, tmp_path: Path) -> None:
    live, env = job
    other = tmp_path / "other-site"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import os\nos.environ['OTHER_SITE'] = 'ran'\n")
    env = {**env, "PYTHONPATH": f"{env['PYTHONPATH']}:{other}"}
    code = "import os, mod, json; print(json.dumps([os.environ.get('OTHER_SITE'), mod.V]))"
    assert json.loads(python(live, env, "-c", code).stdout) == ["ran", "frozen"]
