# ImageNet32 pre-training (SmoothAdv appendix E.1): one model per (sigma, eps) of pretraining.grid.


rule pretrain:
    input:
        data=data_stamp("imagenet32"),
    output:
        model=protected("results/pretrain/{pretrain_model}/model.pt"),
        log="results/pretrain/{pretrain_model}/epochs.tsv",
    log:
        "results/logs/pretrain/{pretrain_model}.log",
    benchmark:
        "results/benchmarks/pretrain/{pretrain_model}.tsv"
    resources:
        runtime=lambda wc, attempt: RUNTIME["pretrain"] * attempt,
        gpu=1,
    params:
        args=lambda wc: train_arguments(PRETRAIN_MODELS[wc.pretrain_model]),
        script=script("train.py"),
        root=lambda wc, input: data_root(input.data),
    shell:
        "python {params.script} {output.model} {params.args} --data-root {params.root} "
        "--log {output.log} --no-progress > {log} 2>&1"
