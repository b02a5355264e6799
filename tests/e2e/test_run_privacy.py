"""A run's copies of the code are no more readable than the code, secrets stay out, and a
damaged record is repaired by the next run (local submission: no SLURM needed)."""

import os
from pathlib import Path

from helpers.files import mode
from helpers.snakemake import LOCAL, make_workflow, run_snakemake

from snakemake_executor_plugin_frozen.snapshot import read_manifest
from snakemake_executor_plugin_frozen.snapshot.hashing import file_sha256

SNAKEFILE = "rule a:\n    output: 'out.txt'\n    shell: 'cat private_helper.py > {output}'\n"
SECRETS = (".env", "id_rsa", "api_token.txt")
FILES = {
    "Snakefile": SNAKEFILE,
    "private_helper.py": "KEY = 'not for others'\n",
    **dict.fromkeys(SECRETS, "hunter2\n"),
}
PRIVATE = dict.fromkeys(("private_helper.py", *SECRETS), 0o600)  # only their owner reads them


def test_copies_are_private_and_secrets_stay_out(tmp_path: Path) -> None:
    workdir = make_workflow(tmp_path, files=FILES, modes=PRIVATE)
    result = run_snakemake(workdir, *LOCAL)
    rule_dir = workdir / ".snakemake" / "frozen_logs" / "rule_a"
    (archive,) = rule_dir.glob("code-*.tar.zst")
    (manifest,) = rule_dir.glob("code-*.json")
    (script,) = rule_dir.glob("job-*.sh")
    store = workdir / ".snakemake" / "frozen" / "snapshots"
    assert {p.name: mode(p) for p in (archive, manifest, script)} == {
        archive.name: 0o400,
        manifest.name: 0o400,
        script.name: 0o700,
    }
    snapshot_files = [*store.glob("*.tar.zst"), *store.glob("[0-9a-f]*.json")]
    assert {mode(p) for p in snapshot_files} == {0o400}
    assert {mode(p) for p in store.glob("statcache-*")} == {0o600}  # paths and hashes
    packed = {f.path for f in read_manifest(archive).files}
    assert packed == {"Snakefile", "private_helper.py"}
    warning = next(line for line in result.stderr.splitlines() if "look like credentials" in line)
    assert all(name in warning for name in (".env", "id_rsa", "api_token.txt"))
    assert "--frozen-allow-secrets" in warning


def test_a_damaged_rule_log_copy_is_repaired_by_the_next_run(tmp_path: Path) -> None:
    """The copy beside the logs is independent of the store (issue 16 item 6): damaging it
    damages nothing else, and the next run places it again."""
    workdir = make_workflow(tmp_path, files=FILES, modes=PRIVATE)
    run_snakemake(workdir, *LOCAL)
    (archive,) = (workdir / ".snakemake" / "frozen_logs" / "rule_a").glob("code-*.tar.zst")
    record = archive.with_suffix("").with_suffix(".json")
    (stored,) = (workdir / ".snakemake" / "frozen" / "snapshots").glob("*.tar.zst")
    assert not os.path.samefile(archive, stored)
    archive.chmod(0o600)
    with open(archive, "r+b") as damaged:  # in place
        damaged.seek(100)
        damaged.write(b"\0" * 16)
    assert file_sha256(stored) == read_manifest(record).archive_sha256  # unharmed
    again = run_snakemake(workdir, *LOCAL, "--forceall")
    assert "did not hold this tree's code" not in again.stderr  # the store was intact
    assert file_sha256(archive) == read_manifest(record).archive_sha256
    assert mode(archive) == 0o400 and not os.path.samefile(archive, stored)
