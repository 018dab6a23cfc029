# Every model of the grid (rsmooth.pipeline.GridModel): from scratch, fine-tuned from its ImageNet32 model,
# and/or self-trained.
# The per-epoch resume state (<model>.resume) is not a declared output, so Snakemake never deletes it:
# a job killed by a time limit or preemption resumes where it stopped when it is run again.


rule train:
    input:
        unpack(train_inputs),
    output:
        model=protected("results/models/{model}/model.pt"),
        log="results/models/{model}/epochs.tsv",
    log:
        "results/logs/train/{model}.log",
    benchmark:
        "results/benchmarks/train/{model}.tsv"
    resources:
        runtime=lambda wc, attempt: RUNTIME["train"] * attempt,
        gpu=1,
    params:
        args=lambda wc: train_arguments(MODELS[wc.model].train),
        extra=train_extra_arguments,
        script=script("train.py"),
        root=lambda wc, input: data_root(input.data),
    shell:
        "python {params.script} {output.model} {params.args} {params.extra} "
        "--data-root {params.root} --log {output.log} --no-progress > {log} 2>&1"
