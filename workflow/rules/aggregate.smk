# Aggregation: the papers' tables, figures and the paper-vs-run scorecard, for the report.
#
# Report layout: every category has at least two subcategories. Snakemake's report app (9.x,
# template/components/abstract_results.js) computes a subcategory's list of results once, in the React
# component's constructor; showCategory() of a category with a single subcategory goes straight to the
# "subcategory" view, so going from one such category to another (the intro's category links) re-renders
# the same Subcategory component with new props: the breadcrumb shows the new category, the list stays the
# old one. With two or more subcategories the app shows the category's list first (another component), so
# each subcategory list is built anew. Categories: REPORT_CERTIFIED, REPORT_RUN (and "Empirical robustness"
# in attack.smk).
REPORT_CERTIFIED = "Certified robustness"
REPORT_RUN = "Run and configuration"


rule describe_grid:
    output:
        grid=f"{ANALYSIS}/grid.json",
        config=f"{ANALYSIS}/config.json",
    log:
        "results/logs/describe_grid.log",
    localrule: True
    params:
        grid=lambda wc: json.dumps(grid_description(MODELS, cohen_check=bool(COHEN_CHECK)), sort_keys=True),
        config=lambda wc: json.dumps(config, sort_keys=True, default=str),
    run:
        # Written from params, so that any change of the grid or config reruns the aggregation.
        write_texts({output.grid: params.grid, output.config: params.config}, log[0])


rule aggregate:
    input:
        script=report_script("aggregate.py"),
        grid=rules.describe_grid.output.grid,
        config=rules.describe_grid.output.config,
        logs=all_certification_logs(),
    output:
        tables=[
            report(
                f"{ANALYSIS}/tables/{t}.html",
                caption=f"../report/tables/{t}.rst",
                category=REPORT_CERTIFIED,
                subcategory="Paper tables",
                labels={"table": t},
            )
            for t in ANALYSIS_TABLES
        ],
        scorecard=report(
            f"{ANALYSIS}/scorecard.html",
            caption="../report/scorecard.rst",
            category=REPORT_CERTIFIED,
            subcategory="Scorecard",
        ),
        not_run=report(
            f"{ANALYSIS}/scorecard_not_run.html",
            caption="../report/scorecard_not_run.rst",
            category=REPORT_CERTIFIED,
            subcategory="Scorecard",
        ),
        certifications=report(
            f"{ANALYSIS}/cells.html",
            caption="../report/cells.rst",
            category=REPORT_CERTIFIED,
            subcategory="Per-model results",
        ),
        configuration=report(
            f"{ANALYSIS}/configuration.html",
            caption="../report/configuration.rst",
            category=REPORT_RUN,
            subcategory="Configuration",
        ),
    log:
        "results/logs/aggregate.log",
    localrule: True
    params:
        out=lambda wc, output: Path(output.scorecard).parent,
    shell:
        "python {input.script} --grid {input.grid} --config {input.config} --out {params.out} > {log} 2>&1"


# The paper-protocol check (certify.cohen_skip): CERTIFY on a subset beside the sequential run, its
# scorecard against the papers (ACR included) and the two procedures' agreement image by image.
if COHEN_CHECK:

    rule protocol_check:
        input:
            script=report_script("protocol_check.py"),
            grid=rules.describe_grid.output.grid,
            config=rules.describe_grid.output.config,
            logs=all_certification_logs(),
            cohen_logs=all_cohen_check_logs(),
        output:
            page=report(
                f"{ANALYSIS}/protocol_check.html",
                caption="../report/protocol_check.rst",
                category=REPORT_CERTIFIED,
                subcategory="Scorecard",
            ),
            agreement=f"{ANALYSIS}/protocol_check.csv",
            scorecard=f"{ANALYSIS}/scorecard_cohen.csv",
        log:
            "results/logs/protocol_check.log",
        localrule: True
        params:
            out=lambda wc, output: Path(output.page).parent,
        shell:
            "python {input.script} --grid {input.grid} --config {input.config} --out {params.out} > {log} 2>&1"


# The figures are a directory: which of them a run has depends on its models and on the paper tables it
# covers (a figure with nothing to show is not written), so they cannot be declared one by one. The report
# lists every PNG there (patterns), each with its own caption (figures.rst, by the `figure` wildcard).
rule figures:
    input:
        script=report_script("figures.py"),
        grid=rules.describe_grid.output.grid,
        config=rules.describe_grid.output.config,
        logs=all_certification_logs(),
    output:
        figures=report(
            directory(f"{ANALYSIS}/figures"),
            patterns=["{figure}.png"],
            caption="../report/figures.rst",
            category=REPORT_CERTIFIED,
            subcategory="Figures",
            labels={"figure": "{figure}"},
        ),
    log:
        "results/logs/figures.log",
    localrule: True
    shell:
        "python {input.script} --grid {input.grid} --config {input.config} --out {output.figures} > {log} 2>&1"


# The cost estimate of the config (rsmooth.plan): local, seconds, no GPU. `throughput` (a file) replaces the
# default figures.
rule plan:
    input:
        script=report_script("plan.py"),
        config=rules.describe_grid.output.config,
        throughput=config.get("throughput") or [],
    output:
        csv=f"{ANALYSIS}/plan/plan.csv",
        html=report(
            f"{ANALYSIS}/plan/plan.html",
            caption="../report/plan.rst",
            category=REPORT_RUN,
            subcategory="Cost plan",
        ),
    log:
        "results/logs/plan.log",
    localrule: True
    params:
        throughput=lambda wc, input: f"--throughput {input.throughput}" if input.throughput else "",
        out=lambda wc, output: Path(output.csv).parent,
    shell:
        "python {input.script} {input.config} --name configuration {params.throughput} --out {params.out} "
        "> {log} 2>&1"


rule runtimes:
    input:
        script=report_script("runtimes.py"),
        models=[f"results/models/{c}/model.pt" for c in MODELS],
        logs=all_certification_logs(),
        # Every attack job too: without them the run times were read before the attacks had run.
        attacks=attack_plan_inputs,
        plan=rules.plan.output.csv,
        config=rules.describe_grid.output.config,
    output:
        page=report(
            f"{ANALYSIS}/runtimes.html",
            caption="../report/runtimes.rst",
            category=REPORT_RUN,
            subcategory="Run times",
        ),
        plan_figure=report(
            f"{ANALYSIS}/runtimes_plan.png",
            caption="../report/runtimes_plan.rst",
            category=REPORT_RUN,
            subcategory="Run times",
        ),
    log:
        "results/logs/runtimes.log",
    localrule: True
    params:
        benchmarks="results/benchmarks",
        # The efficiency table: work logs under results/, retries from the SLURM profile's slurm-logdir.
        results=lambda wc, output: Path(output.page).parents[1],  # results/analysis/runtimes.html
        slurm_logs="results/logs/slurm",
    shell:
        "python {input.script} {params.benchmarks} {output.page} --plan {input.plan} "
        "--plan-figure {output.plan_figure} --config {input.config} "
        "--results {params.results} --slurm-logs {params.slurm_logs} > {log} 2>&1"
