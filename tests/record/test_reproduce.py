"""``reproduce``: the job that made an output, run again from its snapshot into a folder of
its own, compared with what the journal recorded; and the journal's records of inputs and
outputs it compares with.

The cluster tests share one real run (module scope) of a workflow written below: a rule with
a wildcard, a config file, a file read while the Snakefile is parsed, a ``python -m`` tool
found in the working directory, reading a data input; and a rule making an output larger
than the journal hashes. After the run the live code, config and parse-time file are edited,
so that a rerun against the live folder would make something else. The tests run in file
order: the one that changes an input comes after the ones that need it unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.files import write
from helpers.records import Job, make_site, run_cli
from helpers.snakemake import run_snakemake
from helpers.snapshots import make_repo
from helpers.users import OrdinaryUser

from snakemake_executor_plugin_frozen import journal
from snakemake_executor_plugin_frozen.record import reproduce, reproduce_run
from snakemake_executor_plugin_frozen.record.history import History
from snakemake_executor_plugin_frozen.record.history import Job as HistoryJob
from snakemake_executor_plugin_frozen.record.layout import Layout

BIG = journal.HASH_LIMIT + 1
TOOL = """import sys

VERSION = "{version}"
DATA = open(sys.argv[1]).read().strip()
print(f"{{VERSION}} {{DATA}} x{{sys.argv[2]}} {{sys.argv[3]}}")
"""
SNAKEFILE = """configfile: "config/config.yaml"

# Read while the workflow is parsed: every job's own parse reads it again.
with open("scripts/factor.txt") as f:
    FACTOR = f.read().strip()


rule all:
    input:
        "results/a.txt",
        "results/b.txt",
        "results/big.bin",
    localrule: True


rule make:
    input:
        "data/{{sample}}.in",
    output:
        "results/{{sample}}.txt",
    params:
        factor=FACTOR,
        greeting=config["greeting"],
    resources:
        runtime=2,
        mem_mb=100,
    shell:
        "{python} -m scripts.tool {{input}} {{params.factor}} {{params.greeting}} > {{output}}"


rule big:
    output:
        "results/big.bin",
    resources:
        runtime=2,
        mem_mb=100,
    shell:
        "truncate -s {big} {{output}}"
"""
MADE = {"results/a.txt": "v1 alpha x3 hello\n", "results/b.txt": "v1 beta x3 hello\n"}


@dataclass(frozen=True)
class Site:
    workdir: Path

    def records(self, event: str) -> list[dict]:
        contents = journal.read(Layout.of(self.workdir).journal)
        return [r for r in contents.records if r["event"] == event]

    def submitted(self, rule: str) -> list[dict]:
        return [r for r in self.records("submitted") if r["rule"] == rule]


def _code() -> dict[str, str]:
    return {
        "Snakefile": SNAKEFILE.format(python=shlex.quote(sys.executable), big=BIG),
        "scripts/tool.py": TOOL.format(version="v1"),
        "scripts/factor.txt": "3\n",
        "config/config.yaml": "greeting: hello\n",
    }


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, slurm_cluster: None) -> Site:
    workdir = make_repo(
        tmp_path_factory.mktemp("reproduce") / "wf", _code(), ignore="data/\nresults/\n"
    )
    (workdir / "data").mkdir()
    (workdir / "data/a.in").write_text("alpha\n")
    (workdir / "data/b.in").write_text("beta\n")
    run_snakemake(workdir, "--executor", "frozen", "--jobs", "3")
    assert {p: (workdir / p).read_text() for p in MADE} == MADE
    # The live code, config and parse-time file now make something else.
    (workdir / "scripts/tool.py").write_text(TOOL.format(version="v2-live"))
    (workdir / "scripts/factor.txt").write_text("9\n")
    (workdir / "config/config.yaml").write_text("greeting: live\n")
    return Site(workdir)


def _table(out: str, first: str) -> dict[str, dict[str, str]]:
    """The rows of the table whose header starts with ``first``, by their first column:
    each cell cut at its header's column."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first + " "))
    header = lines[start]
    names = [n for n in re.split(r"\s{2,}", header) if n]
    edges = [header.index(n) for n in names] + [None]
    rows = {}
    for line in lines[start + 1 :]:
        if line[:1] in ("", " ") or line.startswith(("OUTPUT ", "note:", "result:")):
            break
        cells = {n: line[a:b].strip() for n, a, b in zip(names, edges[:-1], edges[1:], strict=True)}
        rows[cells[first]] = cells
    return rows


def _listing(top: Path) -> dict[str, tuple]:
    """Every entry below ``top`` but ``.snakemake/``: type, size, mtime, ctime, content."""
    found = {}
    for folder, folders, files in os.walk(top):
        folders[:] = [f for f in folders if f != ".snakemake" or Path(folder) != top]
        for name in folders + files:
            path = Path(folder, name)
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            found[str(path.relative_to(top))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return found


@pytest.mark.slurm
def test_the_journal_records_inputs_at_submission_and_outputs_hashed_at_the_end(
    site: Site,
) -> None:
    (submitted,) = [r for r in site.submitted("make") if r["wildcards"]["sample"] == "a"]
    st = (site.workdir / "data/a.in").stat()
    assert submitted["inputs"] == [
        {"path": "data/a.in", "type": "file", "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    ]
    ended = {r["slurm_id"]: r for r in site.records("ended")}
    (output,) = ended[submitted["slurm_id"]]["outputs"]
    made = (site.workdir / "results/a.txt").read_bytes()
    assert output["sha256"] == hashlib.sha256(made).hexdigest() and output["hashed"] is True
    assert (output["path"], output["type"], output["size"]) == ("results/a.txt", "file", len(made))

    (big,) = site.submitted("big")
    assert big["inputs"] == []
    (output,) = ended[big["slurm_id"]]["outputs"]
    assert (output["size"], output["sha256"], output["hashed"]) == (BIG, None, False)


@pytest.mark.slurm
def test_reproduce_runs_the_old_code_into_its_own_folder_and_leaves_the_live_one_untouched(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _listing(site.workdir)
    code, out, err = run_cli(capsys, "-C", str(site.workdir), "reproduce", "results/a.txt")

    assert code == 0, out + err
    assert _listing(site.workdir) == before
    lines = out.splitlines()
    assert lines[-1] == "result: identical"
    assert "live working directory: read-only" in out
    inputs, outputs = _table(out, "INPUT"), _table(out, "OUTPUT")
    assert {p: (r["READ FROM"], r["STATE"]) for p, r in inputs.items()} == {
        "data/a.in": ("live", "unchanged")
    }
    assert outputs["results/a.txt"]["STATE"] == "identical" and len(outputs) == 1
    folder = Path(lines[1].removeprefix("folder: "))
    assert folder.parent == site.workdir / ".snakemake/frozen/reproduced"
    assert (folder / "results/a.txt").read_text() == MADE["results/a.txt"]  # v1, x3, hello
    assert (folder / "data/a.in").readlink() == site.workdir / "data/a.in"
    assert (folder / "scripts/tool.py").read_text() == TOOL.format(version="v1")


@pytest.mark.slurm
def test_into_a_new_folder_outside_gives_the_same_and_json(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mine"
    code, out, _ = run_cli(
        capsys, "-C", str(site.workdir), "reproduce", "results/b.txt", "--into", str(mine), "--json"
    )
    done = json.loads(out)
    assert (code, done["status"], done["dir"], done["workdir"]) == (
        0,
        "identical",
        str(mine),
        str(mine),
    )
    assert [(c["path"], c["state"], c["how"]) for c in done["inputs"]] == [
        ("data/b.in", "unchanged", "linked")
    ]
    (output,) = done["outputs"]
    assert output["now"]["sha256"] == output["recorded"]["sha256"]
    assert (mine / "results/b.txt").read_text() == MADE["results/b.txt"]


@pytest.mark.slurm
def test_an_output_above_the_hashing_limit_is_not_compared(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "reproduce", "results/big.bin")
    assert code == 2
    row = _table(out, "OUTPUT")["results/big.bin"]
    assert row["STATE"] == "not compared"
    detail = row["AS THE JOB LEFT IT -> AS REPRODUCED"]
    assert "larger than 64 MiB" in detail and "no sha256" in detail
    assert out.splitlines()[-1] == "result: unknown"


@pytest.mark.slurm
def test_a_destination_that_is_not_new_or_lies_in_the_working_directory_is_refused(
    site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("keep me\n")
    workdir = str(site.workdir)
    code, _, err = run_cli(
        capsys, "-C", workdir, "reproduce", "results/a.txt", "--into", str(taken)
    )
    assert code == 2 and f"{taken} is not empty" in err
    assert [p.name for p in taken.iterdir()] == ["notes.txt"]

    inside = site.workdir / "results" / "again"
    code, _, err = run_cli(
        capsys, "-C", workdir, "reproduce", "results/a.txt", "--into", str(inside)
    )
    assert code == 2 and "lies inside the working directory" in err
    output = site.workdir / "results/a.txt"
    code, _, err = run_cli(
        capsys, "-C", workdir, "reproduce", "results/a.txt", "--into", str(output)
    )
    assert code == 2 and "lies inside results/a.txt, an output of the workflow (rule make)" in err
    assert not inside.exists() and output.read_text() == MADE["results/a.txt"]


@pytest.mark.slurm
def test_an_input_changed_since_is_named_and_the_output_differs(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    (site.workdir / "data/b.in").write_text("beta, edited\n")
    before = _listing(site.workdir)
    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "reproduce", "results/b.txt")

    assert code == 1
    assert _listing(site.workdir) == before
    changed = _table(out, "INPUT")["data/b.in"]
    assert (changed["READ FROM"], changed["STATE"]) == ("live", "changed")
    assert changed["SINCE SUBMISSION"].startswith("size 5 B -> 13 B, modified ")
    made = _table(out, "OUTPUT")["results/b.txt"]
    assert made["STATE"] == "different"
    assert made["AS THE JOB LEFT IT -> AS REPRODUCED"].startswith("size 17 B -> 25 B, sha256 ")
    assert "note: 1 input(s) changed since the job ran: data/b.in" in out
    assert out.splitlines()[-1] == "result: different"


# -- without the cluster ------------------------------------------------------------------


def test_the_guard_makes_the_live_folder_read_only_and_keeps_the_reproduction_writable(
    tmp_path: Path,
) -> None:
    live = tmp_path / "live"
    (live / "mine").mkdir(parents=True)
    report = tmp_path / "report"
    result = subprocess.run(
        [
            sys.executable, "-P", "-m", reproduce_run.__name__, reproduce_run.GUARD,
            "--report", str(report), "--read-only", str(live), "--writable", str(live / "mine"),
            "--", "bash", "-c", f"touch {live}/written; touch {live}/mine/written",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert report.read_text().startswith("read-only"), report.read_text()
    assert "Read-only file system" in result.stderr
    assert not (live / "written").exists() and (live / "mine/written").is_file()


def test_facts_hash_outputs_up_to_the_limit_and_never_read_inputs(tmp_path: Path) -> None:
    (tmp_path / "tree/sub").mkdir(parents=True)
    (tmp_path / "tree/sub/x").write_bytes(b"12345")
    (tmp_path / "small").write_bytes(b"1234")
    os.mkfifo(tmp_path / "fifo")  # must not block
    facts = journal.output_facts(["small", "tree", "fifo", "gone"], tmp_path, limit=4)
    assert [(f["type"], f["size"], f["hashed"]) for f in facts] == [
        ("file", 4, True),
        ("folder", None, False),  # 5 bytes in it: above the limit
        ("other", 0, False),
        ("missing", None, False),
    ]
    assert facts[0]["sha256"] == hashlib.sha256(b"1234").hexdigest()
    first = journal.output_facts(["tree"], tmp_path)[0]
    (tmp_path / "tree/sub/x").write_bytes(b"12346")
    assert (
        first["hashed"] and journal.output_facts(["tree"], tmp_path)[0]["sha256"] != first["sha256"]
    )
    (inputs,) = journal.input_facts(["small"], tmp_path)
    assert set(inputs) == {"path", "type", "size", "mtime_ns"}


def test_records_without_inputs_and_outputs_read_as_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    site.run(
        "aaaaaaaa-0000-4000-8000-000000000001", site.pack(), [Job("count", "results/a.tsv", "7")]
    )
    (job,) = History.read(site.layout.journal).jobs
    assert (job.input_facts, job.output_facts) == (None, None)
    job.record["inputs"] = [{"path": "x", "size": "big"}, {"path": 3}, "y"]
    assert job.input_facts == [{"path": "x", "size": None, "mtime_ns": None}]

    code, _, err = run_cli(capsys, "-C", str(site.workdir), "reproduce", "results/a.tsv")
    assert code == 2 and "does not record the inputs of SLURM job 7" in err
    assert not (site.workdir / ".snakemake/frozen/reproduced").exists()


def test_a_job_writing_outside_its_working_directory_is_not_reproduced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    elsewhere = str(tmp_path / "shared/result.txt")
    site.run("aaaaaaaa-0000-4000-8000-000000000002", site.pack(), [Job("count", elsewhere, "8")])
    code, _, err = run_cli(capsys, "-C", str(site.workdir), "reproduce", elsewhere)
    assert code == 2 and f"{elsewhere}, an output of SLURM job 8, lies outside" in err


@pytest.mark.slurm
def test_the_guard_holds_for_an_ordinary_user(ordinary_user: OrdinaryUser) -> None:
    live = ordinary_user.workspace / "live"
    ordinary_user.run("mkdir", "-p", str(live / "mine"))
    report = ordinary_user.workspace / "report"
    result = ordinary_user.run(
        "python", "-P", "-m", reproduce_run.__name__, reproduce_run.GUARD,
        "--report", str(report), "--read-only", str(live), "--writable", str(live / "mine"),
        "--", "bash", "-c", f"touch {live}/written; touch {live}/mine/written; id -u",
        check=False,
    )  # fmt: skip
    assert report.read_text() == "read-only (user and mount namespace)"
    assert "Read-only file system" in result.stderr
    assert result.stdout.strip() == str(ordinary_user.uid)
    assert not (live / "written").exists() and (live / "mine/written").is_file()


SCRIPT_RUN = "aaaaaaaa-0000-4000-8000-000000000003"
GOOD_SCRIPT = '#!/bin/bash\nif [ "${1-}" = --frozen-job-command ]; then\n    true\n    exit\nfi\n'


@pytest.mark.parametrize(
    ("where", "text", "mode", "refusal"),
    [
        ("logdir", None, 0o700, "is not in the log folder"),
        ("outside", GOOD_SCRIPT, 0o700, "is not in the log folder"),
        ("logdir", GOOD_SCRIPT, 0o722, "that only you can write"),
        ("logdir", "#!/bin/bash\ntrue\n", 0o700, "holds no job command line"),
    ],
)
def test_the_job_command_comes_only_from_its_own_batch_script_in_the_log_folder(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    where: str,
    text: str | None,
    mode: int,
    refusal: str,
) -> None:
    site = make_site(tmp_path / "wf")
    snapshot = site.pack()
    folder = site.layout.logdir / "rule_count" if where == "logdir" else tmp_path / "elsewhere"
    log = folder / "9.log"
    write(folder, log.name, "")
    if text is not None:
        write(folder, f"job-{SCRIPT_RUN[:8]}-1.sh", text).chmod(mode)
    common = {"run": SCRIPT_RUN, "snapshot": snapshot.id}
    journal.append(
        site.layout.journal,
        [
            journal.run_started(
                **common, code_root=site.workdir, workdir=site.workdir, argv=["snakemake"]
            ),
            journal.submitted(
                **common, rule="count", wildcards={}, outputs=["results/a.tsv"], job=1,
                slurm_id="9", log=log, workdir=site.workdir, mode="freeze", inputs=[],
            ),
            journal.ended(run=SCRIPT_RUN, slurm_id="9", outcome="success", state="COMPLETED"),
        ],
    )  # fmt: skip
    code, _, err = run_cli(capsys, "-C", str(site.workdir), "reproduce", "results/a.tsv")
    assert code == 2 and refusal in err, err
    assert not (site.workdir / ".snakemake/frozen/reproduced").exists()


def test_a_difference_without_a_changed_input_says_where_to_look(tmp_path: Path) -> None:
    job = HistoryJob("aaaaaaaa-0000-4000-8000-000000000004", {"rule": "count", "slurm_id": "5"})
    done = reproduce.Reproduction(
        "r.txt", job, "0" * 64, tmp_path, tmp_path, tmp_path / "log", 0, "read-only"
    )
    done.inputs = [reproduce.Check("data/a.txt", "unchanged")]
    done.outputs = [reproduce.Check("r.txt", "identical"), reproduce.Check("s.txt", "different")]
    (note,) = reproduce._notes(done)
    assert note.startswith("no input changed since the job ran")
    assert note.endswith(f"diff s.txt {tmp_path / 's.txt'}")
    done.outputs[1].state = "missing"
    assert (done.status, reproduce._notes(done)) == ("different", [])
