"""End-to-end tests: features through Snakemake, on the real cluster or with local submission."""
