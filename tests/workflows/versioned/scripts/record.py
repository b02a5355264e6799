import json
import os
import socket

import helper_mod
import srcpkg

SCRIPT_V = "v1"

versions = dict(snakemake.params.versions)  # noqa: F821
versions.update(script=SCRIPT_V, helper_mod=helper_mod.V, srcpkg_in_script=srcpkg.V)
record = {
    "versions": versions,
    "host": socket.gethostname(),
    "frozen_dir": os.environ.get("FROZEN_DIR"),
    "srcpkg_file": srcpkg.__file__,
}
with open(snakemake.output[0], "w") as out:  # noqa: F821
    json.dump(record, out)
