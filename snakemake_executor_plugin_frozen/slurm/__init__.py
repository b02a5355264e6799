"""SLURM-facing building blocks, free of Snakemake imports.

- ``submit``: turn plain job data into an ``sbatch`` argv (resource mapping and
  validation compatible with ``snakemake-executor-plugin-slurm`` 2.x).
- ``sbatch_options``: sbatch's option grammar (its long and short options as the binary
  parses them) and the ``slurm_extra`` parser.
- ``srun_options``: srun's option grammar, to find the program in an ``srun`` argv.
- ``status``: parse ``sacct``/``squeue`` output, map states to outcomes, track jobs
  that stay invisible, and compute the poll interval.
- ``commands``: the thin subprocess layer (``sbatch``, status queries, ``scancel``).
"""
