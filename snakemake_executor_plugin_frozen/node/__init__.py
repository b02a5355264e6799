"""What a job runs on its compute node around Snakemake (`python -P -m
snakemake_executor_plugin_frozen.node enter|run|leave`, see `__main__`): `enter` checks the
scratch folder (`scratch`), extracts the snapshot once per node or proves the copy already
there is still the snapshot's (`copy`), takes a lease on it (`leases`), removes what earlier
jobs left behind (`cleanup`) and prints the shell exports that point the job at it; `run`
runs the job's command and makes sure it ends, and ends with it every process it started
(`supervise`); `leave` releases the snapshot and removes the copy when the node's last job
using it has ended. What the batch script and this helper agree on is in `contract`.

Importing this package imports nothing: every job runs the helper, which must stay cheap to
start (no Snakemake, nothing of the snapshot engine until a copy is extracted).
"""
