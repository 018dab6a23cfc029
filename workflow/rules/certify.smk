# CERTIFY (Cohen et al. 2019), or sequential certification at a radius grid (certify.procedure), in jobs of at
# most certify.images_per_job images (or certify.shards jobs) per model and sigma; a job's partial log
# (<output>.partial) survives a kill, so a rerun only certifies the images that are missing. A cell of one job
# writes its log directly (rule certify); the shards of a cell of several are merged (merge_certify).

# The certify command of both rules. --amp, the fast-path options that are not the defaults (precision,
# channels_last, compile), the options of certify.procedure: sequential and --trust-checkpoint are one
# parameter, empty for a default config.
CERTIFY_SHELL = (
    "python {params.script} {output} --checkpoint {input.model} --dataset {params.dataset} "
    "--data-root {params.root} --sigma {wildcards.sigma} --N0 {params.c[n0]} --N {params.c[n]} "
    "--alpha {params.c[alpha]} --batch {params.c[batch]} --skip {params.skip} "
    "--seed {params.c[seed]} {params.bounds} {params.amp} --no-progress > {log} 2>&1"
)
CERTIFY_OPTIONS = " ".join(
    filter(
        None,
        [
            "--amp" if config["certify"].get("amp") else "",
            *fast_path_arguments(config["certify"]),
            sequential_arguments(config),
            TRUST_CHECKPOINT,
        ],
    )
)


if WHOLE_CELL_MODELS:

    rule certify:
        input:
            model=ancient("results/models/{model}/model.pt"),
            data=data_stamp(config["training"]["dataset"]),
        output:
            "results/certify/{model}/sigma-{sigma}.tsv",
        log:
            "results/logs/certify/{model}/sigma-{sigma}.log",
        benchmark:
            "results/benchmarks/certify/{model}/sigma-{sigma}.tsv"
        wildcard_constraints:
            model=one_of(WHOLE_CELL_MODELS),
        resources:
            runtime=lambda wc, attempt: RUNTIME["certify"] * attempt,
            gpu=1,
        params:
            script=script("certify.py"),
            bounds=certify_bounds,
            skip=certify_skip,
            root=lambda wc, input: data_root(input.data),
            dataset=config["training"]["dataset"],
            c=config["certify"],
            amp=CERTIFY_OPTIONS,
        shell:
            CERTIFY_SHELL


if SHARDED_MODELS:

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
        wildcard_constraints:
            model=one_of(SHARDED_MODELS),
        resources:
            runtime=lambda wc, attempt: RUNTIME["certify"] * attempt,
            gpu=1,
        params:
            script=script("certify.py"),
            bounds=certify_bounds,
            skip=certify_skip,
            root=lambda wc, input: data_root(input.data),
            dataset=config["training"]["dataset"],
            c=config["certify"],
            amp=CERTIFY_OPTIONS,
        shell:
            CERTIFY_SHELL

    rule merge_certify:
        input:
            lambda wc: expand(
                "results/certify/{model}/sigma-{sigma}/shard-{shard}.tsv",
                model=wc.model,
                sigma=wc.sigma,
                shard=range(len(CERTIFY_JOBS[wc.model])),
            ),
        output:
            "results/certify/{model}/sigma-{sigma}.tsv",
        log:
            "results/logs/certify/{model}/sigma-{sigma}/merge.log",
        wildcard_constraints:
            model=one_of(SHARDED_MODELS),
        localrule: True
        params:
            script=script("merge_certify.py"),
        shell:
            "python {params.script} {output} {input} > {log} 2>&1"
