# Attacks on smoothed classifiers at test time (config `empirical`; SmoothAdv §4.2, App. C.4-C.6). A shard's
# partial log survives a kill, as for certification. With `envelope`, which model each eps attacks depends on
# the certification results: the checkpoint choose_attack_targets records that choice once, and the DAG is
# then re-evaluated; a later run (or a rerun of one shard) reads the recorded choice instead of redoing it.

EMPIRICAL = config.get("empirical")  # an optional section: no attacks without it
ATTACK_SETTINGS = attack_settings(config) if EMPIRICAL else {}
ATTACK_GROUPS = attack_groups(config, MODELS) if EMPIRICAL else {}
ATTACK_MODELS = explicit_attack_targets(config, MODELS) if EMPIRICAL else []
# [start, stop) index ranges of each model's attack runs, on its data set: one job writes the run's log itself
# (rule attack), several write shards that merge_attack merges. Any model can be an envelope's choice.
_ATTACK_JOBS_ON = {
    dataset: work_ranges(config, "empirical", EMPIRICAL["skip"], dataset)
    for dataset in {m.train["dataset"] for m in MODELS.values()}
    if EMPIRICAL
}
ATTACK_JOBS = {m.id: _ATTACK_JOBS_ON[m.train["dataset"]] for m in MODELS.values()} if EMPIRICAL else {}
WHOLE_RUN_MODELS = sorted(m for m, jobs in ATTACK_JOBS.items() if len(jobs) == 1)
SHARDED_RUN_MODELS = sorted(m for m, jobs in ATTACK_JOBS.items() if len(jobs) > 1)


EMPIRICAL_OUT = f"{ANALYSIS}/empirical"


wildcard_constraints:
    setting=r"[a-z_]+(-base)?(_m-\d+)?_n-\d+",
    eps=r"[0-9.]+",


# A job's parameters are its rendered options (rsmooth.pipeline.attack_arguments) and its model's data set.
rule attack:
    input:
        model=ancient("results/models/{model}/model.pt"),
        data=model_data,
    output:
        ATTACK_LOG,
    log:
        "results/logs/attack/{model}/sigma-{sigma}/{setting}/eps-{eps}.log",
    benchmark:
        "results/benchmarks/attack/{model}/sigma-{sigma}/{setting}/eps-{eps}.tsv"
    wildcard_constraints:
        model=one_of(WHOLE_RUN_MODELS, MODELS),
    resources:
        runtime=lambda wc, attempt: RUNTIME["attack"] * attempt,
        gpu=1,
    params:
        script=script("attack.py"),
        dataset=model_dataset,
        root=lambda wc, input: data_root(input.data),
        args=attack_job_arguments,
    shell:
        "python {params.script} {output} --checkpoint {input.model} --dataset {params.dataset} "
        "--data-root {params.root} --sigma {wildcards.sigma} --eps {wildcards.eps} {params.args} "
        "--no-progress > {log} 2>&1"


use rule attack as attack_shard with:
    output:
        ATTACK_SHARD,
    log:
        "results/logs/attack/{model}/sigma-{sigma}/{setting}/eps-{eps}/shard-{shard}.log",
    benchmark:
        "results/benchmarks/attack/{model}/sigma-{sigma}/{setting}/eps-{eps}/shard-{shard}.tsv"
    wildcard_constraints:
        model=one_of(SHARDED_RUN_MODELS, MODELS),


if SHARDED_RUN_MODELS:

    rule merge_attack:
        input:
            lambda wc: [
                attack_shard(wc.model, wc.sigma, wc.setting, wc.eps, shard)
                for shard in range(len(ATTACK_JOBS[wc.model]))
            ],
        output:
            ATTACK_LOG,
        log:
            "results/logs/attack/{model}/sigma-{sigma}/{setting}/eps-{eps}/merge.log",
        wildcard_constraints:
            model=one_of(SHARDED_RUN_MODELS, MODELS),
        localrule: True
        params:
            script=script("merge_certify.py"),
        shell:
            "python {params.script} {output} {input} > {log} 2>&1"


checkpoint choose_attack_targets:
    input:
        logs=attack_group_logs(),
        groups=f"{EMPIRICAL_OUT}/groups.json",
    output:
        f"{EMPIRICAL_OUT}/targets.json",
    log:
        "results/logs/attack/choose_targets.log",
    localrule: True
    params:
        script=script("attack_targets.py"),
        eps=" ".join(format_value(float(e)) for e in EMPIRICAL["eps"]) if EMPIRICAL else "",
    shell:
        "python {params.script} --groups {input.groups} --eps {params.eps} --out {output} > {log} 2>&1"


rule describe_attack_groups:
    output:
        f"{EMPIRICAL_OUT}/groups.json",
    log:
        "results/logs/attack/describe_groups.log",
    localrule: True
    params:
        groups=lambda wc: json.dumps(attack_group_members(), sort_keys=True),
    run:
        write_texts({output[0]: params.groups}, log[0])


rule describe_attacks:
    input:
        attack_plan_inputs,
    output:
        f"{EMPIRICAL_OUT}/attacks.json",
    log:
        "results/logs/attack/describe.log",
    localrule: True
    run:
        write_texts({output[0]: json.dumps(attack_plan(), indent=1, sort_keys=True)}, log[0])


rule empirical:
    input:
        script=report_script("empirical.py"),
        plan=rules.describe_attacks.output[0],
        config=rules.describe_grid.output.config,
        logs=attack_plan_inputs,
    output:
        # A directory, as the certified figures: only the figures with something to compare are written.
        figures=report(
            directory(f"{EMPIRICAL_OUT}/figures"),
            patterns=["{figure}.png"],
            caption="../report/empirical.rst",
            category="Empirical robustness",
            subcategory="Figures",
            labels={"figure": "{figure}"},
        ),
        accuracy=report(
            f"{EMPIRICAL_OUT}/accuracy.html",
            caption="../report/empirical_accuracy.rst",
            category="Empirical robustness",
            subcategory="Accuracy per attack",
            labels={"table": "accuracy per attack"},
        ),
        audit=report(
            f"{EMPIRICAL_OUT}/audit.html",
            caption="../report/audit.rst",
            category="Empirical robustness",
            subcategory="Certificate audit",
            labels={"table": "certificate audit"},
        ),
    log:
        "results/logs/empirical.log",
    localrule: True
    params:
        out=lambda wc, output: Path(output.accuracy).parent,
    shell:
        "python {input.script} --plan {input.plan} --config {input.config} --out {params.out} > {log} 2>&1"
