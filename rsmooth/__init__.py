"""rsmooth: certified robustness by randomized smoothing (Cohen et al. 2019, Salman et al. 2019).

One import rule: the modules in :data:`TORCH_FREE_MODULES` never import torch (or torchvision) when they are
imported. Snakemake imports them to build the DAG of thousands of jobs, and the light jobs (merges, the
analysis, the plan) run on them; torch costs seconds at every start. Code in them that needs torch imports
it inside the function that uses it. ``tests/test_style.py`` checks the rule.
"""

__version__ = "0.1.0"

TORCH_FREE_MODULES: tuple[str, ...] = (
    "rsmooth.options",
    "rsmooth.pipeline",
    "rsmooth.plan",
    "rsmooth.train_config",
    "rsmooth.train.methods",
    "rsmooth.dataset_info",
    "rsmooth.fastpath",
    "rsmooth.io",
    "rsmooth.html_page",
    "rsmooth.validation",
    "rsmooth.logformat",
    "rsmooth.sequential",
    "rsmooth.analysis",
    "rsmooth.analysis.results",
    "rsmooth.analysis.efficiency",
    "rsmooth.analysis.empirical_report",
    "rsmooth.analysis.figures",
)
