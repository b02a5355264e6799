"""Selection rules and their priorities, in real git repositories and plain folders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from helpers.files import write
from helpers.snapshots import git, make_repo, members, pack_tree, packed

from snakemake_executor_plugin_frozen.snapshot import SnapshotError, read_manifest
from snakemake_executor_plugin_frozen.snapshot.store import CACHEDIR_SIGNATURE


def test_tracked_file_matching_a_gitignore_pattern_is_packed(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"src/logging.py": "x = 1\n"}, ignore="log*\ntests/*/\n")
    write(root, "tests/case1/data.txt")
    git(root, "add", "-f", "tests/case1/data.txt")
    result = pack_tree(root)
    # Pure .gitignore matching would drop both: git tracks them, so they are code.
    assert {"src/logging.py", "tests/case1/data.txt", ".gitignore"} <= packed(result)


def test_untracked_file_that_git_does_not_ignore_is_packed(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"a.py": "a"}, ignore="*.log\n")
    write(root, "notes/new_helper.R", "f <- 1\n")
    write(root, "run.log")
    assert packed(pack_tree(root)) == {".gitignore", "a.py", "notes/new_helper.R"}


def test_gitignored_code_files_are_added_back_other_ignored_files_are_not(tmp_path: Path) -> None:
    ignore = "local_*.py\nsecret.yaml\n*.log\nSnakefile\n"
    root = make_repo(tmp_path / "repo", {"a.py": "a"}, ignore=ignore)
    for rel in ("local_settings.py", "conf/secret.yaml", "run.log", "Snakefile", "big.csv"):
        write(root, rel)
    (root / ".gitignore").write_text(ignore + "big.csv\n")
    result = pack_tree(root)
    assert packed(result) == {".gitignore", "a.py", "local_settings.py", "Snakefile"}
    manifest = result.manifest.read_text()
    assert '"added_back": ["Snakefile", "local_settings.py"]' in manifest
    # A gitignored config named like a secret stays out, and never silently.
    assert any("conf/secret.yaml" in w and "credentials" in w for w in result.warnings)


SECRETS = (
    ".env",
    ".env.production",
    "id_rsa",
    "keys/id_ed25519",
    "credentials.json",
    ".netrc",
    ".pypirc",
    "certs/server.pem",
    "certs/server.key",
    "config/api_secret.yaml",
    "hf_token.txt",
    ".ssh/config",
    ".aws/config",
    ".gnupg/pubring.kbx",
)


def test_files_that_look_like_credentials_stay_out_tracked_or_not(tmp_path: Path) -> None:
    tracked = {"a.py": "a", "tokenizer.py": "code, not a token", "keys/id_ed25519": "k"}
    root = make_repo(tmp_path / "repo", tracked)
    for rel in SECRETS:
        write(root, rel, "hunter2")
        (root / rel).chmod(0o600)
    result = pack_tree(root)
    assert packed(result) == {"a.py", "tokenizer.py"}
    (warning,) = [w for w in result.warnings if "look like credentials" in w]
    assert f"{len(SECRETS)} file(s)" in warning and "--allow-secrets" in warning
    assert ".env" in warning and "credentials.json" in warning
    names = [m.name for m in members(result.archive)]
    assert not any(name.endswith(SECRETS) for name in names), names


def test_secrets_are_packed_when_allowed_or_named_by_the_workflow(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"a.py": "a"})
    for rel in (".env", "certs/server.pem", "config/secrets.yaml"):
        write(root, rel, "x")
    result = pack_tree(root, allow_secrets=("certs/",), explicit=[root / "config/secrets.yaml"])
    assert packed(result) == {"a.py", "certs/server.pem", "config/secrets.yaml"}
    assert any("because the workflow names them" in w for w in result.warnings)


@pytest.fixture(params=["git", "walk"])
def mode(request: pytest.FixtureRequest) -> str:
    """Discovery by git, or by our own walk (a plain folder)."""
    return request.param


def _ignoring_tree(root: Path, mode: str, ignore: str, files: dict[str, str | bytes]) -> Path:
    """``files`` beside a committed ``a.py`` and a .gitignore, in git or a plain folder."""
    if mode == "git":
        make_repo(root, {"a.py": "a"}, ignore=ignore)
    else:
        write(root, "a.py", "a")
        write(root, ".gitignore", ignore)
    for rel, content in files.items():
        write(root, rel, content)
    return root


# Code-suffixed files in environments, caches and repositories inside ignored folders.
NOT_CODE = {
    ".venv/pyvenv.cfg": "home = /usr/bin\n",
    ".venv/lib/python3.11/site-packages/pkg/mod.py": "m",
    "build/conda/conda-meta/history": "",
    "build/conda/lib/python3.11/site.py": "s",
    "build/__pycache__/helper.py": "p",
    "build/web/node_modules/x/setup.sh": "n",
    "build/.tox/py311/lib/t.py": "t",
    "build/.nox/tests/n.py": "n",
    "build/.mypy_cache/3.11/m.py": "m",
    "build/.pytest_cache/v/cache/x.yaml": "x",
    "build/.ruff_cache/0.5/r.toml": "r",
    "build/cache/CACHEDIR.TAG": CACHEDIR_SIGNATURE + b"\n",
    "build/cache/c.py": "c",
    "build/clone/.git/HEAD": "ref: refs/heads/main\n",
    "build/clone/c.py": "c",
}


def test_code_files_inside_ignored_folders_are_added_back_but_not_from_envs_and_caches(
    tmp_path: Path, mode: str
) -> None:
    files = {
        **NOT_CODE,
        "gen/helper.py": "def helper(): ...\n",
        "gen/sub/x.yaml": "x: 1\n",
        "gen/data.bin": b"\0" * 100,
        "build/lib/pkg/generated.py": "g = 1\n",
        "build/fake/CACHEDIR.TAG": "not a cache tag\n",  # without the signature: no tag
        "build/fake/f.py": "f",
    }
    root = _ignoring_tree(tmp_path / "repo", mode, ".venv/\nbuild\ngen/\n", files)
    result = pack_tree(root)
    assert packed(result) == {
        ".gitignore",
        "a.py",
        "build/fake/f.py",
        "build/lib/pkg/generated.py",
        "gen/helper.py",
        "gen/sub/x.yaml",
    }
    assert result.added_back == (
        ("build/fake/f.py", 1),
        ("build/lib/pkg/generated.py", 6),
        ("gen/helper.py", 18),
        ("gen/sub/x.yaml", 5),
    )


def test_environments_and_caches_stay_out_even_when_not_ignored(tmp_path: Path, mode: str) -> None:
    """A workflow without a .gitignore for its venv or caches: still not code."""
    envs_and_caches = {p: c for p, c in NOT_CODE.items() if "/clone/" not in p}
    root = _ignoring_tree(tmp_path / "repo", mode, "", envs_and_caches)
    assert packed(pack_tree(root)) - {".gitignore"} == {"a.py"}


def test_hard_excluded_folders_win_over_everything(tmp_path: Path) -> None:
    # Tracked, untracked, gitignored code and explicitly named files alike, at any depth.
    root = make_repo(
        tmp_path / "repo",
        {"a.py": "a", "outputs/tracked.py": "t", "sub/datasets/tracked.yaml": "t"},
        ignore="ignored_*.py\n",
    )
    write(root, "outputs/untracked.py")
    write(root, "wandb/run/ignored_model.py")
    write(root, "deep/er/.snakemake/ignored_x.py")
    write(root, "datasets/named.yaml")
    result = pack_tree(root, explicit=[root / "datasets/named.yaml"])
    assert packed(result) == {".gitignore", "a.py"}
    assert any("hard-excluded" in w and "datasets/named.yaml" in w for w in result.warnings)


def test_nested_gitignore_files_are_honoured(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"a.py": "a", "sub/.gitignore": "*.dat\n!keep.dat\n"})
    for rel in ("sub/x.dat", "sub/keep.dat", "x.dat", "sub/deeper/y.dat"):
        write(root, rel)
    assert packed(pack_tree(root)) == {"a.py", "sub/.gitignore", "sub/keep.dat", "x.dat"}


def test_info_exclude_and_core_excludes_file_are_honoured(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"a.py": "a"})
    (root / ".git" / "info" / "exclude").write_text("*.tmp\n")
    global_ignore = write(tmp_path, "global-ignore", "*.bak\n")
    git(root, "config", "core.excludesFile", str(global_ignore))
    write(root, "x.tmp")
    write(root, "y.bak")
    write(root, "z.txt")
    assert packed(pack_tree(root)) == {"a.py", "z.txt"}


def test_outside_git_every_file_not_matched_by_nested_gitignores(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    write(root, ".gitignore", "*.log\nbuild/\nlocal_*.py\n")
    write(root, "sub/.gitignore", "*.csv\n!keep.csv\n")
    files = ["a.py", "run.log", "build/gen.py", "build/gen.txt", "local_cfg.py", "sub/d.csv"]
    for rel in [*files, "sub/keep.csv", "sub/x.txt", ".git/config", "outputs/o.py"]:
        write(root, rel)
    result = pack_tree(root)
    assert packed(result) == {
        ".gitignore",
        "sub/.gitignore",
        "a.py",
        "build/gen.py",  # inside an ignored folder: added back
        "local_cfg.py",  # ignored one by one: added back
        "sub/keep.csv",
        "sub/x.txt",
    }
    assert '"discovery": "walk"' in result.manifest.read_text()


def test_frozenignore_and_exclude_remove_more_but_never_explicit_files(tmp_path: Path) -> None:
    root = make_repo(
        tmp_path / "repo",
        {
            "a.py": "a",
            "notebooks/explore.py": "n",
            "docs/big.pdf": "pdf",
            "scripts/needed.py": "s",
            "scripts/draft.py": "d",
        },
        ignore="local.yaml\n",
    )
    write(root, ".frozenignore", "# comment\nnotebooks/\nscripts/*.py\nlocal.yaml\n")
    write(root, "local.yaml")
    result = pack_tree(root, exclude=("*.pdf",), explicit=[root / "scripts/needed.py"])
    assert packed(result) == {".gitignore", ".frozenignore", "a.py", "scripts/needed.py"}


def test_explicit_files_are_packed_even_if_ignored_and_relative_to_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_repo(tmp_path / "repo", {"wf/Snakefile": "rule a:\n"}, ignore="*.tsv\n")
    write(root, "wf/samples.tsv")
    write(root, "wf/config/local.tsv")
    monkeypatch.chdir(root / "wf")
    result = pack_tree(root, explicit=[Path("samples.tsv"), "config/local.tsv", "missing.txt"])
    assert packed(result) == {".gitignore", "wf/Snakefile", "wf/samples.tsv", "wf/config/local.tsv"}
    assert any("do not exist" in w and "wf/missing.txt" in w for w in result.warnings)


def test_explicit_file_outside_the_root_is_an_error_naming_it(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"a.py": "a"})
    outside = write(tmp_path, "shared/config.yaml")
    with pytest.raises(SnapshotError, match=r"shared/config\.yaml.*outside the code root"):
        pack_tree(root, explicit=[outside])


def test_store_log_dirs_and_tagged_caches_are_never_packed(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"a.py": "a"})
    write(root, "logs/rule_a/job.log")
    write(root, "logs/rule_a/x.py")
    first = pack_tree(root, store=root / "snaps")
    # Another store inside the tree (tagged with CACHEDIR.TAG) is skipped as well.
    result = pack_tree(root, store=root / "other-store", extra_excluded_dirs=(root / "logs",))
    assert packed(first) == {"a.py", "logs/rule_a/job.log", "logs/rule_a/x.py"}
    assert packed(result) == {"a.py"}


def test_reserved_manifest_folder_never_collides(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"a.py": "a", ".frozen/manifest.json": "{}"})
    result = pack_tree(root)
    assert packed(result) == {"a.py"}
    assert '"id"' in result.manifest.read_text()


def test_submodule_files_are_packed(tmp_path: Path) -> None:
    lib = make_repo(tmp_path / "lib", {"lib.py": "l", "sub/util.sh": "u"})
    root = make_repo(tmp_path / "repo", {"a.py": "a"})
    git(root, "submodule", "add", "-q", str(lib), "vendor/lib")
    git(root, "commit", "-q", "-m", "add submodule")
    assert packed(pack_tree(root)) >= {
        "a.py",
        ".gitmodules",
        "vendor/lib/lib.py",
        "vendor/lib/sub/util.sh",
    }


def test_untracked_nested_repository_is_reported(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"a.py": "a"})
    make_repo(root / "clone", {"c.py": "c"})
    result = pack_tree(root)
    assert packed(result) == {"a.py"}
    assert any("nested" in w and "clone" in w for w in result.warnings)


def test_deleted_tracked_file_is_simply_absent(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"a.py": "a", "gone.py": "g"})
    (root / "gone.py").unlink()
    result = pack_tree(root)
    assert packed(result) == {"a.py"}
    assert result.warnings == ()


def test_code_suffixes_setting_replaces_the_default(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"a.py": "a"}, ignore="local.*\n")
    write(root, "local.R")
    write(root, "local.py")
    assert packed(pack_tree(root, code_suffixes=("R",))) == {".gitignore", "a.py", "local.R"}


def test_exclude_folders_takes_names_not_paths(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"a.py": "a"})
    with pytest.raises(SnapshotError, match="exclude_folders entry 'data/raw'"):
        pack_tree(root, exclude_folders=("data/raw",))


def test_root_below_the_git_top_level_packs_only_that_folder(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"top.py": "t", "wf/a.py": "a"}, ignore="*.loc\n")
    write(root, "wf/untracked.txt")
    write(root, "wf/x.loc")
    assert packed(pack_tree(root / "wf")) == {"a.py", "untracked.txt"}


def test_excluded_folder_names_are_literal_not_globs(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", {"a.py": "a", "run[1]/t.py": "t"})
    write(root, "run[1]/u.py")
    write(root, "run1/u.py")
    assert packed(pack_tree(root, exclude_folders=("run[1]",))) == {"a.py", "run1/u.py"}


def test_folder_git_cannot_open_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # git skips an unreadable folder with a warning and success (chmod cannot show it
    # here: the tests may run as root), so a git that says so stands in for it.
    root = make_repo(tmp_path / "repo", {"a.py": "a"})
    real_git = shutil.which("git")
    shim = write(
        tmp_path,
        "bin/git",
        f'#!/bin/sh\n"{real_git}" "$@"\nstatus=$?\ncase "$*" in *--others*)\n'
        "  echo \"warning: could not open directory 'locked/': Permission denied\" >&2;;\n"
        "esac\nexit $status\n",
        mode=0o755,
    )
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(SnapshotError, match=r"could not open directory 'locked/'.*permissions"):
        pack_tree(root)


def test_without_git_a_repository_is_selected_by_its_gitignore_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_repo(tmp_path / "repo", {"a.py": "a", "notes.txt": "n"}, ignore="*.txt\n")
    write(root, "new.py", "n")
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    result = pack_tree(root)
    assert packed(result) == {".gitignore", "a.py", "new.py"}
    assert any("git was not found" in w for w in result.warnings)
    manifest = read_manifest(result.manifest)
    assert manifest.git is None and manifest.selection.discovery == "walk"


def test_a_root_that_its_enclosing_repository_ignores_is_selected_as_a_plain_folder(
    tmp_path: Path,
) -> None:
    """A scratch copy of a workflow inside another project's ignored folder: git lists none
    of it, so the folder's own .gitignore files decide."""
    outer = make_repo(tmp_path / "project", {"tool.py": "t"}, ignore="scratch/\n")
    root = outer / "scratch" / "wf"
    write(root, "Snakefile")
    write(root, "lib/helpers.py")
    write(root, "data.csv")
    write(root, "results/out.txt")
    write(root, ".gitignore", "results/\n")
    result = pack_tree(root)
    assert packed(result) == {".gitignore", "Snakefile", "data.csv", "lib/helpers.py"}
    assert any("ignored by the git repository around it" in w for w in result.warnings)


def test_outputs_logs_and_benchmarks_are_data_but_explicit_files_win(
    tmp_path: Path, mode: str
) -> None:
    files = {
        "scripts/run.py": "r",
        "scripts/made.py": "written by a rule",
        "config/config.yaml": "written by a rule, parsed by the main process",
        "logs/a.log": "log",
        "results/summary.yaml": "s",  # ignored code: added back if it were not data
        "results/plots/p.py": "p",
        "results/keep.py": "k",
    }
    root = _ignoring_tree(tmp_path / "repo", mode, "results/\n", files)
    data = (
        root / "scripts/made.py",
        root / "config/config.yaml",
        root / "logs",
        root / "results/summary.yaml",
        root / "results/plots",
        root / "benchmarks/a.tsv",  # not made yet
        tmp_path / "elsewhere/out.py",  # outside the root: ignored
    )
    result = pack_tree(root, data=data, explicit=[root / "config/config.yaml"])
    assert packed(result) == {
        ".gitignore",
        "a.py",
        "scripts/run.py",
        "config/config.yaml",
        "results/keep.py",
    }
    selection = read_manifest(result.manifest).as_json()["selection"]
    # logs/ is walked by git (it is not ignored), not by us; results/plots/ by neither.
    left_out = ["results/plots/", "results/summary.yaml", "scripts/made.py"]
    left_out += ["logs/a.log"] if mode == "git" else ["logs/"]
    assert selection["data_excluded_paths"] == sorted(left_out)
    assert selection["data_excluded"] == result.data_excluded == 4
    assert selection["explicit"] == ["config/config.yaml"]


def test_a_rerun_with_its_outputs_as_data_has_the_first_runs_id(tmp_path: Path, mode: str) -> None:
    root = _ignoring_tree(tmp_path / "repo", mode, "*.log\n", {"Snakefile": "rule a:\n"})
    first = pack_tree(root)
    outputs = {
        "results/a.txt": "a",
        "results/b.yaml": "b: 1\n",
        "results/tables/t.py": "t",  # inside a directory() output
        "logs/a.log": "log",
        "benchmarks/a.tsv": "s\t1\n",
    }
    for rel, content in outputs.items():
        write(root, rel, content)
    assert pack_tree(root).id != first.id  # the outputs would be packed otherwise
    data = [root / rel for rel in outputs if not rel.startswith("results/tables/")]
    again = pack_tree(root, data=(*data, root / "results/tables"))
    assert again.id == first.id
    assert not again.created
    assert again.data_excluded == 4  # logs/a.log is ignored: never a candidate
