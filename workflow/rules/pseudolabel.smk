# Self-training data (SmoothAdv appendix E.2): TinyImages pseudo-labels merged with CIFAR-10. With
# `pseudo_labels.labels: model` they come from a standard (non-robust) classifier trained here.


rule train_standard_model:
    input:
        data=data_stamp("cifar10"),
    output:
        model=protected("results/pseudolabels/standard_model.pt"),
        log="results/pseudolabels/standard_model_epochs.tsv",
    log:
        "results/logs/pseudolabels/standard_model.log",
    benchmark:
        "results/benchmarks/pseudolabels/standard_model.tsv"
    resources:
        gpu=1,
    params:
        args=lambda wc: train_arguments({**config["training"], **config["pseudo_labels"]["standard_model"]}),
        script=script("train.py"),
        root=lambda wc, input: data_root(input.data),
    shell:
        "python {params.script} {output.model} {params.args} --data-root {params.root} "
        "--log {output.log} --no-progress > {log} 2>&1"


rule merge_pseudo_labels:
    input:
        unpack(pseudo_label_inputs),
    output:
        "results/pseudolabels/merged.npz",
    log:
        "results/logs/pseudolabels/merge.log",
    params:
        script=script("pseudolabel.py"),
        root=lambda wc, input: data_root(input.cifar10),
        labels=config["pseudo_labels"]["labels"],
        # With --trust-checkpoint folded in, so that the job's parameters stay as they were without it.
        checkpoint=lambda wc, input: (
            f"--checkpoint {input.model} {TRUST_CHECKPOINT}".strip() if "model" in input.keys() else ""
        ),
    shell:
        "python {params.script} {output} --data-root {params.root} --labels {params.labels} "
        "{params.checkpoint} > {log} 2>&1"
