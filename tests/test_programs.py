"""The environment record: programs at the head of ``shell:`` commands, resolved on the
submit host, conda environment files, and their place in the snapshot's manifest."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from helpers.files import sha256_of, write
from helpers.records import make_site, run_cli
from helpers.snapshots import make_repo

from snakemake_executor_plugin_frozen import programs
from snakemake_executor_plugin_frozen.programs import conda_file, environment_record, programs_in
from snakemake_executor_plugin_frozen.snapshot import SnapshotError, pack, read_manifest
from snakemake_executor_plugin_frozen.snapshot.archive import MANIFEST_NAME, read_member


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("samtools sort {input} | samtools index - > {output}", ["samtools"]),
        ("bwa mem ref.fa {input} && gzip -c x || rm -f x", ["bwa", "gzip", "rm"]),
        ("set -euo pipefail; cut -f1 {input}", ["cut"]),
        ("set -e;sort x", ["sort"]),
        ("TMPDIR=/tmp LC_ALL=C sort -k2 {input} > {output}", ["sort"]),
        ("grep 'a | b && c; d' x | wc -l", ["grep", "wc"]),
        ('awk "{{print \\$1}}" {input} | uniq', ["awk", "uniq"]),
        ("{input.tool} --x {output}; python3 -m pkg", ["python3"]),
        ("$SAMTOOLS view x; ${BWA} mem; `which a` b", []),
        ("cutadapt -a A \\\n    -o {output} \\\n    {input}", ["cutadapt"]),
        ("# align first | bwa\nhisat2 -x idx  # then: sort\nsort x", ["hisat2", "sort"]),
        ("if grep -q a f; then head -1 f; else tail -1 f; fi", ["grep", "head", "tail"]),
        ("for f in {input}; do gzip $f; done | tee log", ["gzip", "tee"]),
        ("env -i A=1 nohup time -p exec command -p fastqc x", ["fastqc"]),
        ("cd out && touch a; echo hi > b; test -e c; [ -e d ]; true; source x; . y", ["touch"]),
        ("2>/dev/null mkdir -p out; (cd out && make) > log 2>&1 &", ["mkdir", "make"]),
        ("x=$(date) ; { tar cf - . ; } | zstd", ["date", "tar", "zstd"]),
        ("sort a; sort b\nsort c", ["sort"]),
        ("./bin/tool a; scripts/run.sh b", ["./bin/tool", "scripts/run.sh"]),
        ('printf "%s" "unclosed; cat x', []),
        ("head -1 a; cat 'unclosed", ["head", "cat"]),
        ("", []),
    ],
)
def test_programs_at_the_head_of_each_simple_command(command: str, expected: list[str]) -> None:
    assert programs_in(command) == expected


def test_a_real_program_is_resolved_to_its_real_path_size_and_sha256() -> None:
    record = environment_record([("a", "bash -c 'exit 0' | true")], [])
    real = os.path.realpath(shutil.which("bash") or "")
    assert record["programs"] == [
        {"name": "bash", "path": real, "size": os.path.getsize(real), "sha256": sha256_of(real)}
    ]
    assert record["conda_envs"] == []


def test_a_missing_program_is_recorded_as_not_found() -> None:
    record = environment_record([("a", "no-such-program-frozen-test x")], [])
    assert record["programs"] == [
        {"name": "no-such-program-frozen-test", "path": None, "size": None, "sha256": None}
    ]


def _executable(folder: Path, name: str, content: bytes) -> Path:
    return write(folder, name, content, mode=0o755)


def test_programs_of_every_rule_once_each_file_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = _executable(tmp_path / "bin", "tool", b"#!/bin/sh\n")
    (tmp_path / "bin" / "tool-alias").symlink_to(tool)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    reads = []
    real_read = programs._size_and_sha256
    monkeypatch.setattr(programs, "_size_and_sha256", lambda p: reads.append(p) or real_read(p))
    record = environment_record(
        [("a", "tool x | tool-alias y"), ("b", "tool z"), ("c", "tool-alias w")], []
    )
    assert [(p["name"], p["path"]) for p in record["programs"]] == [
        ("tool", str(tool)),
        ("tool-alias", str(tool)),
    ]
    assert record["programs"][0]["sha256"] == record["programs"][1]["sha256"] == sha256_of(tool)
    assert reads == [str(tool)]


def test_a_program_above_the_hash_limit_is_recorded_by_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = _executable(tmp_path / "bin", "big", b"\0" * 2000)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setattr(programs, "HASH_LIMIT", 1000)
    record = environment_record([("a", "big")], [])
    assert record["programs"] == [{"name": "big", "path": str(big), "size": 2000, "sha256": None}]


def test_conda_file_of_a_rules_conda_directive(tmp_path: Path) -> None:
    rules_dir = str(tmp_path / "rules")
    assert conda_file("../envs/align.yaml", rules_dir) == tmp_path / "envs" / "align.yaml"
    assert conda_file(tmp_path / "e.yml", rules_dir) == tmp_path / "e.yml"
    assert conda_file("/abs/env.yaml", "https://github.com/x/y") == Path("/abs/env.yaml")
    assert conda_file("envs/a.yaml", "https://github.com/x/y/raw/main") is None
    assert conda_file("envs/{sample}.yaml", rules_dir) is None  # a pattern, per job
    assert conda_file("my-named-env", rules_dir) is None
    assert conda_file(lambda wildcards: "envs/a.yaml", rules_dir) is None
    assert conda_file(None, rules_dir) is None


def test_conda_environment_files_with_the_rules_that_use_them(tmp_path: Path) -> None:
    root = tmp_path / "wf"
    align = write(root, "envs/align.yaml", "dependencies: [bwa]\n")
    outside = write(tmp_path, "shared/env.yaml", "dependencies: [r]\n")
    record = environment_record(
        [],
        [("map", align), ("index", align), ("map", align), ("plot", outside)],
        root=root,
    )
    assert record["conda_envs"] == [
        {"path": str(outside), "sha256": sha256_of(str(outside)), "rules": ["plot"]},
        {"path": "envs/align.yaml", "sha256": sha256_of(str(align)), "rules": ["map", "index"]},
    ]
    missing = environment_record([], [("x", root / "envs/gone.yaml")], root=root)
    assert missing["conda_envs"] == [{"path": "envs/gone.yaml", "sha256": None, "rules": ["x"]}]


def test_the_record_goes_into_the_manifest_without_changing_the_id(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "wf", {"Snakefile": "rule a:\n    shell: 'bash x'\n"})
    plain = pack(root, tmp_path / "plain")
    extra = environment_record([("a", "bash x")], [])
    recorded = pack(root, tmp_path / "store", environment_extra=extra)
    assert recorded.id == plain.id and recorded.created
    stored = read_manifest(recorded.manifest).as_json()
    inner = json.loads(read_member(recorded.archive, MANIFEST_NAME))
    assert stored["programs"] == inner["programs"] == extra["programs"]
    assert stored["conda_envs"] == inner["conda_envs"] == []
    assert "programs" not in read_manifest(plain.manifest).as_json()

    # Stored already: its manifest, and the first run's record in it, stay as they were.
    again = pack(root, tmp_path / "store", environment_extra={"programs": []})
    assert again.id == recorded.id and not again.created
    assert read_manifest(again.manifest).as_json()["programs"] == extra["programs"]


def test_pack_refuses_an_environment_extra_it_does_not_know(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "wf", {"Snakefile": "rule a:\n    shell: 'bash x'\n"})
    with pytest.raises(SnapshotError, match="may only hold programs, conda_envs, not id"):
        pack(root, tmp_path / "store", environment_extra={"id": "x"})
    with pytest.raises(SnapshotError, match=r"environment_extra\['programs'\] is not JSON"):
        pack(root, tmp_path / "store", environment_extra={"programs": [object()]})
    assert not (tmp_path / "store").exists()


def test_show_and_diff_read_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    layout = site.layout
    bin_dir = tmp_path / "bin"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    tool = _executable(bin_dir, "tool", b"#!/bin/sh\necho 1\n")
    env = write(site.workdir, "envs/tools.yaml", "dependencies: [tool=1]\n")
    commands = [("count", "tool {input} | sort > {output}")]

    def packed() -> str:
        extra = environment_record(commands, [("count", env)], root=site.workdir)
        return pack(site.workdir, layout.store, environment_extra=extra).id

    first = packed()
    write(bin_dir, "tool", b"#!/bin/sh\necho 2\n", mode=0o755)
    site.edit("envs/tools.yaml", "dependencies: [tool=2]\n")
    second = packed()

    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "show", first)
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert code == 0
    sort = os.path.realpath(shutil.which("sort") or "")
    assert f"program sort: {sort} {sha256_of(sort)[:12]}" in lines
    old_tool = hashlib.sha256(b"#!/bin/sh\necho 1\n").hexdigest()[:12]
    assert f"program tool: {tool} {old_tool}" in lines
    old_env = hashlib.sha256(b"dependencies: [tool=1]\n").hexdigest()[:12]
    assert f"conda env envs/tools.yaml {old_env}" in lines

    code, out, _ = run_cli(capsys, "-C", str(site.workdir), "diff", first, second, "--json")
    shown = json.loads(out)
    assert code == 1 and shown["changed"][0]["path"] == "envs/tools.yaml"
    changes = {(c["what"], c["name"]): (c["a"], c["b"]) for c in shown["environment"]}
    new_tool = sha256_of(str(tool))[:12]
    assert changes == {
        ("program", "tool"): (f"{tool} {old_tool}", f"{tool} {new_tool}"),
        ("conda env", "envs/tools.yaml"): (old_env, sha256_of(str(env))[:12]),
    }
