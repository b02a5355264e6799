"""Helpers shared by the tests (no tests here), imported as `from helpers.<module> import ...`
(pytest puts tests/ on the import path: `pythonpath` in pyproject.toml).

- `paths`: the checkout, tests/workflows, the cluster script and its nodes.
- `files`: writing files, their modes and hashes, a tree read back, a folder others reach.
- `snapshots`: git repositories, packing with a store inside the tree, archive members.
- `records`: a working directory with snapshots, journal runs and rule logs (`Site`).
- `snakemake`: test workflows, and Snakemake run to its end or in the background.
- `cluster`: sacct's view of jobs and runs, a clock the test moves.
- `node`: the node helper run as the batch script runs it.
- `users`: commands run as the ordinary test user; nobody.
- `voice`: what the run's parts said and warned, kept for the test (voice.Voice).

Fixtures are in conftest.py: tests/conftest.py for all, tests/<folder>/conftest.py for one
folder."""
