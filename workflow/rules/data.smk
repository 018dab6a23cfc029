# Data sets: downloaded (CIFAR-10, MNIST; checksummed), checked in place (ImageNet, ImageNet32, TinyImages)
# or, for the demo, synthesized in the same on-disk formats.


rule prepare_data:
    output:
        f"{DATA_ROOT}/.ready/{{dataset}}.json",
    log:
        "results/logs/prepare_data/{dataset}.log",
    localrule: True
    params:
        script=script("prepare_data.py"),
        root=lambda wc, output: data_root(output[0]),
        source=config["data"]["source"],
        synthetic=synthetic_arguments(),
    shell:
        "python {params.script} {wildcards.dataset} {output} --root {params.root} "
        "--source {params.source} {params.synthetic} > {log} 2>&1"
