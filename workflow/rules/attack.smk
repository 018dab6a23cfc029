# Attacks on smoothed classifiers at test time (config `empirical`; SmoothAdv §4.2, App. C.4-C.6). A shard's
# partial log survives a kill, as for certification. With `envelope`, which model each eps attacks depends on
# the certification results: the checkpoint choose_attack_targets records that choice once, and the DAG is
# then re-evaluated; a later run (or a rerun of one shard) reads the recorded choice instead of redoing it.

EMPIRICAL = config.get("empirical")
ATTACK_SETTINGS = attack_settings(config) if EMPIRICAL else {}
ATTACK_GROUPS = attack_groups(config, MODELS) if EMPIRICAL else {}
ATTACK_MODELS = explicit_attack_targets(config, MODELS) if EMPIRICAL else []
# [start, stop) index ranges of each attack run's jobs: one job writes the run's log itself (rule attack),
# several write shards that merge_attack merges.
ATTACK_JOBS = work_ranges(config, "empirical", EMPIRICAL["skip"]) if EMPIRICAL else []
ATTACK_SHELL = (
    "python {params.script} {output} --checkpoint {input.model} --dataset {params.dataset} "
    "--data-root {params.root} --sigma {wildcards.sigma} --eps {wildcards.eps} {params.setting} "
    "--steps {params.e[steps]} --alpha {params.e[alpha]} --batch {params.e[batch]} "
    "--skip {params.e[skip]} --seed {params.e[seed]} {params.bounds} {params.trust} "
    "--no-progress > {log} 2>&1"
)
# The fast-path options that are not the defaults, and --trust-checkpoint: empty for a default config.
ATTACK_OPTIONS = " ".join(filter(None, [*fast_path_arguments(EMPIRICAL or {}), TRUST_CHECKPOINT]))


EMPIRICAL_OUT = f"{ANALYSIS}/empirical"
EMPIRICAL_FIGURES = ["m_test", "n", "estimator", "groups"]


wildcard_constraints:
    setting=r"[a-z_]+(-base)?(_m-\d+)?_n-\d+",
    eps=r"[0-9.]+",


if len(ATTACK_JOBS) == 1:

    rule attack:
        input:
            model=ancient("results/models/{model}/model.pt"),
            data=data_stamp(config["training"]["dataset"]),
        output:
            "results/attack/{model}/sigma-{sigma}/{setting}/eps-{eps}.tsv",
        log:
            "results/logs/attack/{model}/sigma-{sigma}/{setting}/eps-{eps}.log",
        benchmark:
            "results/benchmarks/attack/{model}/sigma-{sigma}/{setting}/eps-{eps}.tsv"
        resources:
            runtime=lambda wc, attempt: RUNTIME["attack"] * attempt,
            gpu=1,
        params:
            script=script("attack.py"),
            bounds=attack_bounds,
            root=lambda wc, input: data_root(input.data),
            dataset=config["training"]["dataset"],
            e=EMPIRICAL,
            setting=lambda wc: ATTACK_SETTINGS[wc.setting].arguments(),
            trust=ATTACK_OPTIONS,
        shell:
            ATTACK_SHELL


if len(ATTACK_JOBS) > 1:

    rule attack_shard:
        input:
            model=ancient("results/models/{model}/model.pt"),
            data=data_stamp(config["training"]["dataset"]),
        output:
            "results/attack/{model}/sigma-{sigma}/{setting}/eps-{eps}/shard-{shard}.tsv",
        log:
            "results/logs/attack/{model}/sigma-{sigma}/{setting}/eps-{eps}/shard-{shard}.log",
        benchmark:
            "results/benchmarks/attack/{model}/sigma-{sigma}/{setting}/eps-{eps}/shard-{shard}.tsv"
        resources:
            runtime=lambda wc, attempt: RUNTIME["attack"] * attempt,
            gpu=1,
        params:
            script=script("attack.py"),
            bounds=attack_bounds,
            root=lambda wc, input: data_root(input.data),
            dataset=config["training"]["dataset"],
            e=EMPIRICAL,
            setting=lambda wc: ATTACK_SETTINGS[wc.setting].arguments(),
            trust=ATTACK_OPTIONS,
        shell:
            ATTACK_SHELL

    rule merge_attack:
        input:
            expand(
                "results/attack/{{model}}/sigma-{{sigma}}/{{setting}}/eps-{{eps}}/shard-{shard}.tsv",
                shard=range(len(ATTACK_JOBS)),
            ),
        output:
            "results/attack/{model}/sigma-{sigma}/{setting}/eps-{eps}.tsv",
        log:
            "results/logs/attack/{model}/sigma-{sigma}/{setting}/eps-{eps}/merge.log",
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
        eps=" ".join(format_value(float(e)) for e in (EMPIRICAL or {}).get("eps", [])),
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
        plan=rules.describe_attacks.output[0],
        config=rules.describe_grid.output.config,
        logs=attack_plan_inputs,
    output:
        figures=[
            report(
                f"{EMPIRICAL_OUT}/figures/{f}.png",
                caption="../report/empirical.rst",
                category="Empirical robustness",
                subcategory="Figures",
                labels={"figure": f},
            )
            for f in EMPIRICAL_FIGURES
        ],
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
        script=script("empirical.py"),
        out=lambda wc, output: Path(output.accuracy).parent,
    shell:
        "python {params.script} --plan {input.plan} --config {input.config} --out {params.out} "
        "> {log} 2>&1"
