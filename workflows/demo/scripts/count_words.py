"""Count the most frequent words of one sample (run by Snakemake's `script:`)."""

import socket

import wordcount

sm = snakemake  # noqa: F821 - injected by Snakemake
with open(sm.input[0]) as handle:
    words = wordcount.top_words(handle.read(), sm.params.top)
with open(sm.output[0], "w") as out:
    listed = " ".join(f"{w}={n}" for w, n in words)
    out.write(
        f"{sm.wildcards.sample}\tcode={wordcount.CODE_VERSION}\t{socket.gethostname()}\t{listed}\n"
    )
