# Data sets: downloaded (CIFAR-10, MNIST; checksummed), checked in place (ImageNet, ImageNet32, TinyImages)
# or, for the demo, synthesized in the same on-disk formats.


def synthetic_arguments():
    data = config["data"]
    if data.get("source") != "synthetic":
        return ""
    sizes = data["synthetic"]
    names = ("n_train", "n_test", "n_tinyimages", "imagenet32_per_batch", "imagenet32_val", "seed")
    return " ".join(f"--{n.replace('_', '-')} {sizes[n]}" for n in names if n in sizes)


rule prepare_data:
    output:
        f"{DATA_ROOT}/.ready/{{dataset}}.json",
    log:
        "results/logs/prepare_data/{dataset}.log",
    localrule: True
    params:
        root=DATA_ROOT,
        source=config["data"].get("source", "download"),
        synthetic=synthetic_arguments(),
    shell:
        "python {SCRIPTS}/prepare_data.py {wildcards.dataset} {output} --root {params.root} "
        "--source {params.source} {params.synthetic} > {log} 2>&1"
