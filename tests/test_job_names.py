from snakemake_executor_plugin_frozen.job_names import wildcards_comment, wildcards_dir


def test_wildcard_helpers():
    wildcards = {"sample": "a", "path": "x/y"}
    assert wildcards_comment("align", wildcards) == "rule_align_wildcards_a_x_y"
    assert wildcards_comment("all", {}) == "rule_all"
    assert wildcards_dir(wildcards) == "a_x_y"
    assert wildcards_dir({}) == ""
    assert wildcards_dir({"p": "50%"}) == "50_"
    # A value that is not UTF-8 (a file name read from disk) is a folder name all the same.
    assert wildcards_dir({"f": "caf\udce9"}) == "caf\udce9"
    assert len(wildcards_dir({"f": "\udce9" * 300}).encode(errors="surrogateescape")) <= 255


def test_long_wildcards_dir_is_shortened_uniquely():
    first = wildcards_dir({"a": "x" * 300})
    second = wildcards_dir({"a": "x" * 301})
    assert len(first.encode()) <= 200 and first != second
    assert wildcards_dir({"a": "é" * 150}).encode().decode() and "/" not in first
