"""Tests of snakemake_executor_plugin_frozen.node."""
