"""The node side of the job's view, pure parts: which binds a plan makes, and how srun's
arguments are wrapped so that its tasks enter the view (the view itself is entered in
tests/node/test_commands.py, tests/e2e/test_view.py and tests/e2e/test_view_writes.py)."""

import pytest

from snakemake_executor_plugin_frozen.node.srun_wrapper import wrapped
from snakemake_executor_plugin_frozen.node.view import Bind, plan

ENTRIES = {
    "Snakefile": "f",
    "config": "d",
    "config/c.yaml": "f",
    "scripts": "d",
    "scripts/a.sh": "f",
    "scripts/lib": "d",
    "scripts/lib/b.py": "f",
    "scripts/link.sh": "l",
}


def test_whole_folders_cover_their_files_and_the_rest_is_bound_file_by_file() -> None:
    assert plan(ENTRIES, ["scripts", "scripts/lib"]) == [
        Bind("scripts", True),
        Bind("Snakefile", False),
        Bind("config/c.yaml", False),
    ]


def test_a_whole_folder_the_copy_lacks_is_ignored_and_the_root_covers_everything() -> None:
    assert plan(ENTRIES, ["gone"]) == [
        Bind("Snakefile", False),
        Bind("config/c.yaml", False),
        Bind("scripts/a.sh", False),
        Bind("scripts/lib/b.py", False),
    ]
    assert plan(ENTRIES, ["", "scripts"]) == [Bind("", True)]


PY = "/opt/py/bin/python"
ENTER = [PY, "-P", "-m", "snakemake_executor_plugin_frozen.node", "view-exec", "--"]


@pytest.mark.parametrize(
    ("argv", "program_at"),
    [
        (["hostname"], [0]),
        (["-N2", "--mem", "4G", "cat", "-n", "x"], [3]),
        (["--ntasks=2", "--", "prog", "--ntasks=3"], [2]),
        (["-n", "1", "a", ":", "-n", "1", "b"], [2, 6]),
    ],
)
def test_srun_arguments_get_the_view_before_each_program(
    argv: list[str], program_at: list[int]
) -> None:
    result, why = wrapped(argv, PY)
    assert why == ""
    expected = list(argv)
    for index in reversed(program_at):
        expected[index:index] = ENTER
    assert result == expected


def test_srun_arguments_that_cannot_be_wrapped_go_unchanged_with_the_reason() -> None:
    assert wrapped(["--multi-prog", "tasks.conf"], PY) == (
        ["--multi-prog", "tasks.conf"],
        "--multi-prog names a file of programs, which cannot be wrapped",
    )
    result, why = wrapped(["--no-such-option", "x"], PY)
    assert result == ["--no-such-option", "x"]
    assert "no-such-option" in why
