"""The record read back: what ``snakemake-frozen list|show|which|diff|restore|verify|gc`` do.

Each module is one question asked of a working directory's store (``snapshots``) and journal
(``history``); ``cli.py`` is only the argument parsing around them. Nothing here imports
Snakemake.
"""
