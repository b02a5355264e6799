"""Snapshot ids by unique prefix, as git resolves abbreviations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.records import make_site, run_cli

from snakemake_executor_plugin_frozen.record.errors import RecordError
from snakemake_executor_plugin_frozen.record.ids import resolve

IDS = ["abcd1" + "0" * 59, "abcd2" + "0" * 59, "ffff" + "1" * 60]


def test_a_unique_prefix_names_its_id_in_any_case() -> None:
    assert resolve("abcd1", IDS, "here") == IDS[0]
    assert resolve("FFFF", IDS, "here") == IDS[2]
    assert resolve(IDS[1], IDS, "here") == IDS[1]


def test_an_ambiguous_prefix_lists_the_candidates() -> None:
    with pytest.raises(RecordError) as caught:
        resolve("abcd", IDS, "the store /s")
    message = str(caught.value)
    assert "ambiguous" in message and IDS[0] in message and IDS[1] in message
    assert IDS[2] not in message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("prefix", ["abc", "xyz1", "live!", ""])
def test_short_or_non_hexadecimal_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(RecordError, match="not a snapshot id"):
        resolve(prefix, IDS, "here")


def test_an_unknown_prefix_says_where_it_looked() -> None:
    with pytest.raises(RecordError, match="no snapshot 1234 in the store /s"):
        resolve("1234", IDS, "the store /s")


def test_the_command_line_exits_2_naming_both_candidates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = make_site(tmp_path / "wf")
    real = site.pack()
    store = site.layout.store
    twin = real.id[:6] + ("0" if real.id[6] != "0" else "1") + real.id[7:]
    for suffix in (".json", ".tar.zst"):
        (store / f"{twin}{suffix}").write_bytes(
            (store / f"{real.id}{suffix}").read_bytes().replace(real.id.encode(), twin.encode())
        )
    code, _, err = run_cli(capsys, "-C", str(site.workdir), "show", real.id[:6])
    assert code == 2
    assert real.id in err and twin in err and "ambiguous" in err
    code, out, _ = run_cli(capsys, "show", real.id[:7], "-C", str(site.workdir), "--json")
    assert code == 0
    assert json.loads(out)["id"] == real.id
