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
    params:
        args=lambda wc: train_arguments(
            {**config["training"], **config["pseudo_labels"].get("standard_model", {})}
        ),
        root=DATA_ROOT,
    shell:
        "python {SCRIPTS}/train.py {output.model} {params.args} --data-root {params.root} "
        "--log {output.log} --no-progress > {log} 2>&1"


def pseudo_label_inputs(wildcards):
    inputs = {"cifar10": data_stamp("cifar10"), "tinyimages": data_stamp("tinyimages")}
    if config["pseudo_labels"]["labels"] == "model":
        inputs["model"] = rules.train_standard_model.output.model
    return inputs


rule merge_pseudo_labels:
    input:
        unpack(pseudo_label_inputs),
    output:
        "results/pseudolabels/merged.npz",
    log:
        "results/logs/pseudolabels/merge.log",
    params:
        root=DATA_ROOT,
        labels=config.get("pseudo_labels", {}).get("labels", "shipped"),
        checkpoint=lambda wc, input: (f"--checkpoint {input.model}" if "model" in input.keys() else ""),
    shell:
        "python {SCRIPTS}/pseudolabel.py {output} --data-root {params.root} --labels {params.labels} "
        "{params.checkpoint} > {log} 2>&1"
