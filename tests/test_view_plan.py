"""Which folders a job's view binds whole: only those that held nothing but the snapshot's
files at submission, and never one that holds or will hold what the workflow writes."""

from pathlib import Path

from snakemake_executor_plugin_frozen.view_plan import whole_folders


def tree(root: Path, *paths: str) -> None:
    for path in paths:
        target = root / path
        if path.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path)


def test_code_folders_whole_and_the_root_with_data_file_by_file(tmp_path: Path) -> None:
    tree(
        tmp_path,
        "Snakefile",
        "config.yaml",
        "results/a.txt",
        ".snakemake/log",
        "scripts/a.py",
        "scripts/lib/b.py",
        "scripts/__pycache__/a.cpython-311.pyc",
        "envs/x.yaml",
    )
    files = ["Snakefile", "config.yaml", "scripts/a.py", "scripts/lib/b.py", "envs/x.yaml"]
    assert whole_folders(tmp_path, files, []) == ["envs", "scripts"]


def test_a_folder_with_a_file_the_snapshot_left_out_stays_live(tmp_path: Path) -> None:
    # A gitignored data file, a secret, an empty folder: each is something a job may need.
    tree(tmp_path, "a/x.py", "a/ref.fa", "b/y.py", "b/.env", "c/z.py", "c/empty/", "d/w.py")
    files = ["a/x.py", "b/y.py", "c/z.py", "d/w.py"]
    assert whole_folders(tmp_path, files, []) == ["d"]


def test_a_folder_that_will_hold_an_output_stays_live(tmp_path: Path) -> None:
    tree(tmp_path, "config/config.yaml", "scripts/x.py", "scripts/deep/y.py")
    files = ["config/config.yaml", "scripts/x.py", "scripts/deep/y.py"]
    outputs = [tmp_path / "config/derived.tsv", tmp_path / "scripts/deep/out/z.txt"]
    # scripts/ holds scripts/deep/, which will hold an output: neither is whole.
    assert whole_folders(tmp_path, files, outputs) == []


def test_the_root_itself_when_it_holds_only_code(tmp_path: Path) -> None:
    tree(tmp_path, "Snakefile", "scripts/x.py")
    assert whole_folders(tmp_path, ["Snakefile", "scripts/x.py"], []) == [""]
    elsewhere = tmp_path.parent / "workdir" / "results" / "x"
    assert whole_folders(tmp_path, ["Snakefile", "scripts/x.py"], [elsewhere]) == [""]


def test_code_inside_written_data_is_never_whole(tmp_path: Path) -> None:
    tree(tmp_path, "Snakefile", "scripts/x.py")
    assert whole_folders(tmp_path, ["Snakefile", "scripts/x.py"], [tmp_path.parent]) == []


def test_a_missing_folder_is_not_whole(tmp_path: Path) -> None:
    tree(tmp_path, "Snakefile")
    assert whole_folders(tmp_path, ["Snakefile", "gone/x.py"], [tmp_path / "out"]) == []
