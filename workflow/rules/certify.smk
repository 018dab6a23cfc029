# CERTIFY (Cohen et al. 2019) in shards of the test set; a shard's partial log (<shard>.partial) survives a
# kill, so a rerun only certifies the images that are missing. The shards of a model are then merged.


def shard_bounds(wildcards):
    start, stop = SHARDS[int(wildcards.shard)]
    return f"--start {start} --stop {stop}"


rule certify_shard:
    input:
        model=ancient("results/models/{cell}/model.pt"),
        data=data_stamp(config["training"]["dataset"]),
    output:
        "results/certify/{cell}/sigma-{sigma}/shard-{shard}.tsv",
    log:
        "results/logs/certify/{cell}/sigma-{sigma}/shard-{shard}.log",
    benchmark:
        "results/benchmarks/certify/{cell}/sigma-{sigma}/shard-{shard}.tsv"
    resources:
        runtime=lambda wc, attempt: 720 * attempt,
    params:
        bounds=shard_bounds,
        root=DATA_ROOT,
        dataset=config["training"]["dataset"],
        c=config["certify"],
        amp="--amp" if config["certify"].get("amp") else "",
    shell:
        "python {SCRIPTS}/certify.py {output} --checkpoint {input.model} --dataset {params.dataset} "
        "--data-root {params.root} --sigma {wildcards.sigma} --N0 {params.c[n0]} --N {params.c[n]} "
        "--alpha {params.c[alpha]} --batch {params.c[batch]} --skip {params.c[skip]} "
        "--seed {params.c[seed]} {params.bounds} {params.amp} --no-progress > {log} 2>&1"


rule merge_certify:
    input:
        expand(
            "results/certify/{{cell}}/sigma-{{sigma}}/shard-{shard}.tsv",
            shard=range(len(SHARDS)),
        ),
    output:
        "results/certify/{cell}/sigma-{sigma}.tsv",
    log:
        "results/logs/certify/{cell}/sigma-{sigma}/merge.log",
    localrule: True
    shell:
        "python {SCRIPTS}/merge_certify.py {output} {input} > {log} 2>&1"
