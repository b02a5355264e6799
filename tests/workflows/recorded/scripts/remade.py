VERSION = "v1"

with open(snakemake.output[0], "w") as out:  # noqa: F821
    print("remade by", VERSION, file=out)
