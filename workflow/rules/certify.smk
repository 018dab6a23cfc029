# CERTIFY (Cohen et al. 2019), or sequential certification at a radius grid (certify.procedure), in shards
# of the test set; a shard's partial log (<shard>.partial) survives a kill, so a rerun only certifies the
# images that are missing. The shards of a model are then merged.


rule certify_shard:
    input:
        model=ancient("results/models/{model}/model.pt"),
        data=data_stamp(config["training"]["dataset"]),
    output:
        "results/certify/{model}/sigma-{sigma}/shard-{shard}.tsv",
    log:
        "results/logs/certify/{model}/sigma-{sigma}/shard-{shard}.log",
    benchmark:
        "results/benchmarks/certify/{model}/sigma-{sigma}/shard-{shard}.tsv"
    resources:
        runtime=lambda wc, attempt: RUNTIME["certify"] * attempt,
        gpu=1,
    params:
        script=script("certify.py"),
        bounds=shard_bounds,
        root=lambda wc, input: data_root(input.data),
        dataset=config["training"]["dataset"],
        c=config["certify"],
        # --amp, the fast-path options that are not the defaults (precision, channels_last, compile), the
        # options of certify.procedure: sequential, and --trust-checkpoint. One parameter, so that CERTIFY's
        # command and parameters stay exactly as they were (no rerun of existing shards).
        amp=" ".join(
            filter(
                None,
                [
                    "--amp" if config["certify"].get("amp") else "",
                    *fast_path_arguments(config["certify"]),
                    sequential_arguments(config),
                    TRUST_CHECKPOINT,
                ],
            )
        ),
    shell:
        "python {params.script} {output} --checkpoint {input.model} --dataset {params.dataset} "
        "--data-root {params.root} --sigma {wildcards.sigma} --N0 {params.c[n0]} --N {params.c[n]} "
        "--alpha {params.c[alpha]} --batch {params.c[batch]} --skip {params.c[skip]} "
        "--seed {params.c[seed]} {params.bounds} {params.amp} --no-progress > {log} 2>&1"


rule merge_certify:
    input:
        expand(
            "results/certify/{{model}}/sigma-{{sigma}}/shard-{shard}.tsv",
            shard=range(len(SHARDS)),
        ),
    output:
        "results/certify/{model}/sigma-{sigma}.tsv",
    log:
        "results/logs/certify/{model}/sigma-{sigma}/merge.log",
    localrule: True
    params:
        script=script("merge_certify.py"),
    shell:
        "python {params.script} {output} {input} > {log} 2>&1"
