"""A trivial amount of work: a small sum, the host name, written to the output."""

import socket

sm = snakemake  # noqa: F821 - injected by Snakemake
total = sum(i * i for i in range(200_000))
with open(sm.output[0], "w") as out:
    out.write(f"{sm.params.label}\t{socket.gethostname()}\t{total}\n")
