import json

import sibling  # beside this script: Snakemake puts the script's folder on sys.path

with open(snakemake.output[0], "w") as out:  # noqa: F821 -- Snakemake's script global
    json.dump({"sibling": sibling.VERSION}, out)
