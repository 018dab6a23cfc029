"""Aggregation and analysis of CERTIFY logs: metrics, the papers' tables and figures, the published numbers
with a scorecard against them, and provenance.

- ``rsmooth.logformat``: reading logs (``read_certify_log``, ``read_attack_log``), re-exported here.
- ``metrics``: certified accuracy, ACR, abstention rate, l2/l-inf conversion, Cohen et al.'s
  high-probability bound, the envelope (``best_per_radius``).
- ``grids``: the papers' radius grids, input dimensions and l-inf radii.
- ``tables``: table builders and CSV / Markdown / LaTeX / HTML renderers.
- ``figures``: certified-accuracy curves, envelopes, ablations (matplotlib: import
  ``rsmooth.analysis.figures`` itself, so that the table jobs start without it).
- ``paper``: the papers' numbers (package data) and the scorecard.
- ``results``: a run's grid description, which paper row each model stands for, and the report's tables.
- ``provenance``: configuration hash, code and package versions, seeds.
- ``efficiency``: the report's efficiency per rule (GPU-hours, images/s, retries) from benchmarks and logs.
"""

from rsmooth.analysis.grids import (
    COHEN_TABLE_RADII,
    INPUT_DIM,
    LINF_RADIUS,
    PAPER_LINF_L2_RADIUS,
    PLOT_MAX_RADIUS,
    PLOT_STEP,
    TABLE_RADII,
    radius_grid,
)
from rsmooth.analysis.metrics import (
    abstention_rate,
    accuracy_grid,
    acr,
    average_certified_radius,
    best_per_radius,
    certified_accuracy,
    clean_accuracy,
    clopper_pearson,
    envelope,
    high_probability_accuracy,
    l2_to_linf,
    linf_to_l2,
    max_certifiable_radius,
    mean_interval,
    representative_models,
)
from rsmooth.analysis.paper import (
    KEY_COLUMNS,
    envelope_cells,
    linf_cells,
    load_paper_numbers,
    load_paper_tables,
    model_cells,
    model_setting,
    not_run_list,
    not_run_summary,
    scorecard,
    scorecard_headline,
    scorecard_summary,
    scorecard_table,
    seed_summary,
    smoothmix_keys,
)
from rsmooth.analysis.provenance import collect_provenance, config_hash, write_provenance_sidecar
from rsmooth.analysis.results import (
    TABLES as RESULT_TABLES,
)
from rsmooth.analysis.results import (
    Certification,
    GridModel,
    by_group,
    by_sigma,
    certification_frame,
    method_group,
    paper_values,
    read_grid,
    result_tables,
    write_results,
)
from rsmooth.analysis.tables import (
    NO_ACR,
    Table,
    abstention_table,
    acr_table,
    envelope_table,
    linf_table,
    model_table,
    per_sigma_envelope_table,
    procedure_caption,
    to_csv,
    to_html,
    to_latex,
    to_markdown,
    write_table,
)
from rsmooth.logformat import parse_duration, read_attack_log, read_certify_log

__all__ = [
    "COHEN_TABLE_RADII",
    "INPUT_DIM",
    "KEY_COLUMNS",
    "LINF_RADIUS",
    "NO_ACR",
    "PAPER_LINF_L2_RADIUS",
    "PLOT_MAX_RADIUS",
    "PLOT_STEP",
    "RESULT_TABLES",
    "TABLE_RADII",
    "Certification",
    "GridModel",
    "Table",
    "abstention_rate",
    "abstention_table",
    "accuracy_grid",
    "acr",
    "acr_table",
    "average_certified_radius",
    "best_per_radius",
    "by_group",
    "by_sigma",
    "certification_frame",
    "certified_accuracy",
    "clean_accuracy",
    "clopper_pearson",
    "collect_provenance",
    "config_hash",
    "envelope",
    "envelope_cells",
    "envelope_table",
    "high_probability_accuracy",
    "l2_to_linf",
    "linf_cells",
    "linf_table",
    "linf_to_l2",
    "load_paper_numbers",
    "load_paper_tables",
    "max_certifiable_radius",
    "mean_interval",
    "method_group",
    "model_cells",
    "model_setting",
    "model_table",
    "not_run_list",
    "not_run_summary",
    "paper_values",
    "parse_duration",
    "per_sigma_envelope_table",
    "procedure_caption",
    "radius_grid",
    "read_attack_log",
    "read_certify_log",
    "read_grid",
    "representative_models",
    "result_tables",
    "scorecard",
    "scorecard_headline",
    "scorecard_summary",
    "scorecard_table",
    "seed_summary",
    "smoothmix_keys",
    "to_csv",
    "to_html",
    "to_latex",
    "to_markdown",
    "write_provenance_sidecar",
    "write_results",
    "write_table",
]
