"""No holes in the freeze, on the real cluster: every way of tests/workflows/holes to read
code or config says "v1"; while the `gate` job holds the run (before any other job is
submitted) the test rewrites them all to "v2", then reads back what each job saw:

- a sample sheet read while the Snakefile is parsed (csv, open().read(), pathlib, yaml),
  which every job parses again;
- `python -m pkg.tool` and `python -c 'import mod'` in a `shell:` command (Python puts the
  live working directory first on sys.path for those);
- a `script:` importing a module beside it;
- a config file outside the code root, given with --configfile, and
  --replace-workflow-config (the `configfile:` directive's keys must stay dropped; Snakemake 8
  has no such option, and keeps them in the main process and the jobs alike);
- a module in the gitignored gen/ folder;
- a two-node job whose second node imports the workflow's module (srun inside the job).

The control run (--frozen-mode off) shows the same edits reaching the jobs, so the test can
fail. Snakemake's own runtime source cache pins the Snakefile and the script itself in both."""

import json
from pathlib import Path

import pytest
from helpers.files import write
from helpers.snakemake import KNOWS_REPLACE_WORKFLOW_CONFIG, BackgroundRun, make_workflow

from snakemake_executor_plugin_frozen.snapshot import read_manifest

EDITED = (
    "config/samples.tsv",
    "config/units.yaml",
    "wflib.py",
    "wfpkg/__init__.py",
    "gen/genmod.py",
    "scripts/sibling.py",
)


def run_with_edit(tmp_path: Path, *args: str) -> tuple[Path, str]:
    # The workflow as a git repository of its own, and a config file outside it.
    workdir = make_workflow(tmp_path, "holes", ignore="out/\n.snakemake/\ngate.open\ngen/\n")
    shared = write(tmp_path, "shared/params.yaml", "shared: v1\n")
    command = [
        *("--executor", "frozen", "--jobs", "6", "--latency-wait", "10"),
        "--configfile",
        str(shared),
        *(["--replace-workflow-config"] if KNOWS_REPLACE_WORKFLOW_CONFIG else []),
        # The same path on every node, a different folder behind it on each.
        *("--frozen-scratch", "{SLURM_CI_NODE_LOCAL}"),
        *args,
    ]
    with BackgroundRun(workdir, *command) as run:
        run.wait_for_submissions(1)  # the gate; the others wait for it
        for name in EDITED:
            path = workdir / name
            path.write_text(path.read_text().replace("v1", "v2"))
        shared.write_text("shared: v2\n")
        (workdir / "gate.open").touch()
        code, output = run.finish()
    assert code == 0, output
    return workdir, output


def seen(workdir: Path) -> dict:
    out = workdir / "out"
    return {
        "parse": json.loads((out / "parse.json").read_text()),
        "shell": json.loads((out / "shell.json").read_text()),
        "script": json.loads((out / "script.json").read_text()),
        "twonode": (out / "twonode.txt").read_text().splitlines(),
    }


@pytest.mark.slurm
@pytest.mark.parametrize("view", ["auto", "python"])
def test_every_job_sees_the_submission_time_code_and_config(tmp_path: Path, view: str) -> None:
    """In the mount view (auto, here) and in the Python view, the fallback where a node has
    no user namespaces."""
    workdir, output = run_with_edit(tmp_path, "--frozen-view", view)
    versions = seen(workdir)
    print(json.dumps(versions, indent=1))
    assert versions["parse"] == {
        "csv": "v1",
        "open": "v1",
        "pathlib": "v1",
        "yaml": "v1",
        "wflib": "v1",
        "genmod": "v1",
        "shared": "v1",
        # --replace-workflow-config dropped config/wf.yaml's keys
        "name": "none" if KNOWS_REPLACE_WORKFLOW_CONFIG else "from-wf-yaml",
    }
    assert versions["shell"] == {"python_m": "v1", "python_c": "v1"}
    assert versions["script"] == {"sibling": "v1"}
    assert versions["twonode"] == ["node1 v1", "node2 v1"]

    # What the start-up said, and what the snapshot holds.
    assert (
        "1 gitignored file(s) packed for their code suffix, largest first: gen/genmod.py" in output
    )
    assert "1 workflow source(s) outside the code root packed too:" in output
    archive = next((workdir / ".snakemake" / "frozen_logs" / "rule_parse").glob("code-*.tar.zst"))
    files = {f.path: f.as_json() for f in read_manifest(archive).files}
    assert files["../shared/params.yaml"]["original"] == str(tmp_path / "shared" / "params.yaml")
    assert "gen/genmod.py" in files
    # The end of the run says what was edited meanwhile.
    assert "7 file(s) of the code were edited during this run" in output
    log = next((workdir / ".snakemake" / "frozen_logs" / "rule_parse").glob("*.log")).read_text()
    if view == "python":
        # The parse job's log says which reads its Snakemake served from the snapshot.
        assert "config/samples.tsv  (the live file differs: edited since submission)" in log
    else:
        assert "frozen: view: mount (mount namespace on node" in log


@pytest.mark.slurm
def test_without_freezing_the_same_edits_reach_the_jobs(tmp_path: Path) -> None:
    workdir, _ = run_with_edit(tmp_path, "--frozen-mode", "off")
    versions = seen(workdir)
    print(json.dumps(versions, indent=1))
    parse = versions["parse"]
    for key in ("csv", "open", "pathlib", "yaml", "wflib", "genmod", "shared"):
        assert parse[key] == "v2", (key, parse)
    assert parse["name"] == "from-wf-yaml"  # the dropped keys came back
    assert versions["shell"] == {"python_m": "v2", "python_c": "v2"}
    assert versions["script"] == {"sibling": "v2"}
    assert versions["twonode"] == ["node1 v2", "node2 v2"]
