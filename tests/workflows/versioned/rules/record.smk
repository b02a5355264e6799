SMK_V = "v1"


rule queued:
    output:
        "out/queued.json",
    params:
        versions=lambda wc: dict(
            snakefile=SNAKEFILE_V, smk=SMK_V, config=config["version"],
            wflib=wflib.V, srcpkg=srcpkg.V,
        ),
    script:
        "../scripts/record.py"


rule later:
    input:
        "out/gate.txt",
    output:
        "out/later{n}.json",
    params:
        versions=lambda wc: dict(
            snakefile=SNAKEFILE_V, smk=SMK_V, config=config["version"],
            wflib=wflib.V, srcpkg=srcpkg.V,
        ),
    resources:
        slurm_extra=lambda wc: f"--nodelist=node{wc.n}",
    script:
        "../scripts/record.py"
