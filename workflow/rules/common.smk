# Grid expansion and paths shared by every rule. The grid logic lives in rsmooth.pipeline (no torch
# import, so building the DAG stays fast).
import json
from pathlib import Path

from snakemake.utils import validate

from rsmooth.pipeline import (
    certification_set_size,
    format_value,
    model_cells,
    needs_pretraining,
    needs_pseudo_labels,
    pretrain_cells,
    shard_ranges,
    train_arguments,
)

validate(config, "../schemas/config.schema.yaml")

# Scripts by absolute path, so that the workflow also runs with --directory elsewhere.
SCRIPTS = Path(workflow.basedir).parent / "scripts"
DATA_ROOT = config["data"]["root"]
CELLS = model_cells(config)
PRETRAIN_CELLS = pretrain_cells(config)
SHARDS = shard_ranges(certification_set_size(config), config["certify"]["shards"])


wildcard_constraints:
    cell=r"[A-Za-z0-9_.\-]+",
    sigma=r"[0-9.]+",
    shard=r"\d+",
    dataset=r"[a-z0-9]+",


def data_stamp(dataset):
    """Written when a data set is in place; ancient() so that its timestamp never triggers reruns."""
    return ancient(f"{DATA_ROOT}/.ready/{dataset}.json")


def training_datasets(values, pseudo_labels):
    datasets = [values["dataset"]]
    if pseudo_labels:
        datasets.append("tinyimages")
    return [data_stamp(d) for d in datasets]


def certification_logs(cell):
    return [f"results/certify/{cell.id}/sigma-{format_value(s)}.tsv" for s in cell.certify_sigmas]


def all_certification_logs():
    return [path for cell in CELLS.values() for path in certification_logs(cell)]
