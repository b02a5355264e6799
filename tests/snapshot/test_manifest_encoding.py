"""The manifest writes a file's path, size and sha256 without ``json`` when json would write
them as they are (``manifest._plain``): byte for byte what ``json`` writes, for any value."""

import json
import random

import pytest

from snakemake_executor_plugin_frozen.snapshot.manifest import FileRecord, _plain

TRICKY = [
    0, 1, -5, 10**30, True, False, None, 1.5,
    "", "a", 'a"b', "a\\b", "é", "\x7f", "\x00", "tab\t", "line\n", "~ !", "\u2028",
    "\udcff", "pkg/sub 1/m0.py", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
]  # fmt: skip


@pytest.mark.parametrize("value", TRICKY)
def test_plain_is_json(value: object) -> None:
    assert _plain(value) == json.dumps(value)


def test_plain_is_json_for_random_strings() -> None:
    rng = random.Random(18)
    for _ in range(20_000):
        text = "".join(chr(rng.choice([rng.randint(0, 0x7F), rng.randint(0x80, 0x3000)]))
                       for _ in range(rng.randint(0, 8)))  # fmt: skip
        assert _plain(text) == json.dumps(text), repr(text)


def test_file_line_is_its_json() -> None:
    record = FileRecord('a "b"\\c/é\x01.py', "file", 12, 0o644, "ab" * 32)
    assert json.loads(record.line()) == record.as_json()
    assert record.line() == json.dumps(record.as_json())
