rule count:
    input:
        "data/{sample}.txt",
    output:
        "results/counts/{sample}.tsv",
    threads: 2
    params:
        top=config["top_words"],
    resources:
        mem_mb=200,
        runtime=5,
    script:
        "../scripts/count_words.py"
