# One model per grid cell: from scratch, fine-tuned from its ImageNet32 model, and/or self-trained.
# The per-epoch resume state (<model>.resume) is not a declared output, so Snakemake never deletes it:
# a job killed by a time limit or preemption resumes where it stopped when it is run again.


def train_inputs(wildcards):
    cell = CELLS[wildcards.cell]
    inputs = {"data": training_datasets(cell.train, cell.pseudo_labels)}
    if cell.pretrain:
        inputs["pretrained"] = ancient(f"results/pretrain/{cell.pretrain}/model.pt")
    if cell.pseudo_labels:
        inputs["pseudo_labels"] = "results/pseudolabels/merged.npz"
    return inputs


def train_extra_arguments(wildcards, input):
    extra = []
    if "pretrained" in input.keys():
        extra.append(f"--pretrained {input.pretrained}")
    if "pseudo_labels" in input.keys():
        extra.append(f"--pseudo-labels {input.pseudo_labels}")
    return " ".join(extra)


rule train:
    input:
        unpack(train_inputs),
    output:
        model=protected("results/models/{cell}/model.pt"),
        log="results/models/{cell}/epochs.tsv",
    log:
        "results/logs/train/{cell}.log",
    benchmark:
        "results/benchmarks/train/{cell}.tsv"
    resources:
        runtime=lambda wc, attempt: 1440 * attempt,
    params:
        args=lambda wc: train_arguments(CELLS[wc.cell].train),
        extra=train_extra_arguments,
        root=DATA_ROOT,
    shell:
        "python {SCRIPTS}/train.py {output.model} {params.args} {params.extra} "
        "--data-root {params.root} --log {output.log} --no-progress > {log} 2>&1"
