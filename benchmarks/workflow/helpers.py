"""Imported by the Snakefile: a module the frozen plugin snapshots."""


def label(wildcards) -> str:
    return f"part {wildcards.i}"
