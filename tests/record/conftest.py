"""Fixtures of the record tests."""

from pathlib import Path

import pytest
from helpers.records import RUN_A, RUN_B, RUN_C, Job, Site, days_ago, make_site

from snakemake_executor_plugin_frozen.snapshot import PackResult


@pytest.fixture
def three(tmp_path: Path) -> tuple[Site, list[PackResult]]:
    """Three runs of three snapshots, 30, 10 and 1 day(s) ago."""
    site = make_site(tmp_path / "wf")
    snapshots = []
    for run, age, version in ((RUN_A, 30, "v1"), (RUN_B, 10, "v2"), (RUN_C, 1, "v3")):
        site.edit("scripts/count.py", f"VERSION = '{version}'\n")
        snapshot = site.pack()
        site.run(
            run,
            snapshot,
            [Job("count", f"results/{version}.tsv", f"{age}01", (("s", version),))],
            time=days_ago(age),
        )
        snapshots.append(snapshot)
    return site, snapshots
