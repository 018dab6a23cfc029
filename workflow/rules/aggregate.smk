# Aggregation: the papers' tables, figures and the paper-vs-run scorecard, for the report.

ANALYSIS = "results/analysis"
ANALYSIS_TABLES = ["envelope", "per_model", "envelope_per_sigma", "abstention", "linf", "acr"]
ANALYSIS_FIGURES = [
    "certified_accuracy",
    "envelopes",
    "envelopes_per_sigma",
    "representative",
    "ablation_m_train",
    "ablation_eps",
    "ablation_method",
]
ANALYSIS_OUTPUTS = [
    *(f"{ANALYSIS}/tables/{t}.html" for t in ANALYSIS_TABLES),
    *(f"{ANALYSIS}/figures/{f}.png" for f in ANALYSIS_FIGURES),
    f"{ANALYSIS}/scorecard.html",
    f"{ANALYSIS}/cells.html",
    f"{ANALYSIS}/runtimes.html",
    f"{ANALYSIS}/configuration.html",
]


def grid_description():
    """Cells, their experiments and certification logs, as the aggregation scripts read them."""
    return {
        cell.id: {
            "experiments": cell.experiments,
            "train": cell.train,
            "pretrain": cell.pretrain,
            "pseudo_labels": cell.pseudo_labels,
            "logs": {format_value(s): log for s, log in zip(cell.certify_sigmas, certification_logs(cell))},
        }
        for cell in CELLS.values()
    }


rule describe_grid:
    output:
        grid=f"{ANALYSIS}/grid.json",
        config=f"{ANALYSIS}/config.json",
    localrule: True
    params:
        grid=lambda wc: json.dumps(grid_description(), sort_keys=True),
        config=lambda wc: json.dumps(config, sort_keys=True, default=str),
    run:
        # Written from params, so that any change of the grid or config reruns the aggregation.
        from rsmooth.io import atomic_open

        for path, text in ((output.grid, params.grid), (output.config, params.config)):
            with atomic_open(path) as handle:
                handle.write(text)


rule aggregate:
    input:
        grid=rules.describe_grid.output.grid,
        config=rules.describe_grid.output.config,
        logs=all_certification_logs(),
    output:
        tables=[
            report(
                f"{ANALYSIS}/tables/{t}.html",
                caption="../report/tables.rst",
                category="Tables",
                labels={"table": t},
            )
            for t in ANALYSIS_TABLES
        ],
        scorecard=report(
            f"{ANALYSIS}/scorecard.html",
            caption="../report/scorecard.rst",
            category="Scorecard",
        ),
        cells=report(f"{ANALYSIS}/cells.html", caption="../report/cells.rst", category="Per-cell results"),
        configuration=report(
            f"{ANALYSIS}/configuration.html",
            caption="../report/configuration.rst",
            category="Configuration",
        ),
    log:
        "results/logs/aggregate.log",
    localrule: True
    shell:
        "python {SCRIPTS}/aggregate.py --grid {input.grid} --config {input.config} "
        "--out {ANALYSIS} > {log} 2>&1"


rule figures:
    input:
        grid=rules.describe_grid.output.grid,
        config=rules.describe_grid.output.config,
        logs=all_certification_logs(),
    output:
        [
            report(
                f"{ANALYSIS}/figures/{f}.png",
                caption="../report/figures.rst",
                category="Figures",
                labels={"figure": f},
            )
            for f in ANALYSIS_FIGURES
        ],
    log:
        "results/logs/figures.log",
    localrule: True
    shell:
        "python {SCRIPTS}/figures.py --grid {input.grid} --config {input.config} "
        "--out {ANALYSIS}/figures > {log} 2>&1"


rule runtimes:
    input:
        models=[f"results/models/{c}/model.pt" for c in CELLS],
        logs=all_certification_logs(),
    output:
        report(f"{ANALYSIS}/runtimes.html", caption="../report/runtimes.rst", category="Run times"),
    log:
        "results/logs/runtimes.log",
    localrule: True
    shell:
        "python {SCRIPTS}/runtimes.py results/benchmarks {output} > {log} 2>&1"
