# CERTIFY (Cohen et al. 2019), or sequential certification at a radius grid (certify.procedure), in jobs of at
# most certify.images_per_job images (or certify.shards jobs) per model and sigma; a job's partial log
# (<output>.partial) survives a kill, so a rerun only certifies the images that are missing. A cell of one job
# writes its log directly (rule certify); the shards of a cell of several are merged (merge_certify).
# A job's parameters are its rendered options (rsmooth.pipeline.certify_arguments) and its model's data set,
# so that a new config key or default reruns no finished job unless it changes the job's command.


rule certify:
    input:
        model=ancient("results/models/{model}/model.pt"),
        data=model_data,
    output:
        CERTIFY_LOG,
    log:
        "results/logs/certify/{model}/sigma-{sigma}.log",
    benchmark:
        "results/benchmarks/certify/{model}/sigma-{sigma}.tsv"
    wildcard_constraints:
        model=one_of(WHOLE_CELL_MODELS, MODELS),
    resources:
        runtime=lambda wc, attempt: RUNTIME["certify"] * attempt,
        gpu=1,
    params:
        script=script("certify.py"),
        dataset=model_dataset,
        root=lambda wc, input: data_root(input.data),
        args=certify_job_arguments,
    shell:
        "python {params.script} {output} --checkpoint {input.model} --dataset {params.dataset} "
        "--data-root {params.root} --sigma {wildcards.sigma} {params.args} --no-progress > {log} 2>&1"


use rule certify as certify_shard with:
    output:
        CERTIFY_SHARD,
    log:
        "results/logs/certify/{model}/sigma-{sigma}/shard-{shard}.log",
    benchmark:
        "results/benchmarks/certify/{model}/sigma-{sigma}/shard-{shard}.tsv"
    wildcard_constraints:
        model=one_of(SHARDED_MODELS, MODELS),


if SHARDED_MODELS:

    rule merge_certify:
        input:
            lambda wc: [
                certification_shard(wc.model, wc.sigma, shard)
                for shard in range(len(CERTIFY_JOBS[wc.model]))
            ],
        output:
            CERTIFY_LOG,
        log:
            "results/logs/certify/{model}/sigma-{sigma}/merge.log",
        wildcard_constraints:
            model=one_of(SHARDED_MODELS, MODELS),
        localrule: True
        params:
            script=script("merge_certify.py"),
        shell:
            "python {params.script} {output} {input} > {log} 2>&1"


# The paper-protocol check (certify.cohen_skip): CERTIFY with the section's n0, n and alpha on every
# cohen_skip-th test image of a sequentially certified model, one job per (model, sigma), beside the sequential
# log of the same images (rule protocol_check).
if COHEN_CHECK:

    use rule certify as certify_cohen with:
        output:
            COHEN_CHECK_LOG,
        log:
            "results/logs/certify/{model}/sigma-{sigma}.cohen.log",
        benchmark:
            "results/benchmarks/certify/{model}/sigma-{sigma}.cohen.tsv"
        wildcard_constraints:
            model=MODEL_ID,
        params:
            script=script("certify.py"),
            dataset=model_dataset,
            root=lambda wc, input: data_root(input.data),
            args=lambda wc: cohen_check_arguments(config, MODELS[wc.model]),
