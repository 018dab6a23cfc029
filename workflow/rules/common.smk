# Grid expansion and paths shared by every rule. The grid logic lives in rsmooth.pipeline (no torch
# import, so building the DAG stays fast).
import json
import os
import re
from pathlib import Path

from rsmooth.pipeline import (
    ATTACK_LOG,
    ATTACK_SHARD,
    CERTIFY_LOG,
    CERTIFY_SHARD,
    COHEN_CHECK_LOG,
    attack_arguments,
    attack_groups,
    attack_runs,
    attack_settings,
    attack_shard,
    certification_log,
    certification_shard,
    certify_arguments,
    cohen_check_arguments,
    cohen_check_log,
    cohen_check_skip,
    explicit_attack_targets,
    format_value,
    grid_description,
    grid_models,
    pretrain_models,
    train_arguments,
    work_ranges,
)

# Scripts by absolute path, so that the workflow also runs with --directory elsewhere.
SCRIPTS = Path(workflow.basedir).parent / "scripts"
DATA_ROOT = config["data"]["root"]
MODELS = grid_models(config)
PRETRAIN_MODELS = pretrain_models(config)
RUNTIME = config["runtime_minutes"]
# [start, stop) index ranges of each model's certification jobs (the same at every sigma), on its data set.
CERTIFY_JOBS = {
    m.id: work_ranges(config, "certify", m.certify_skip, m.train["dataset"]) for m in MODELS.values()
}
WHOLE_CELL_MODELS = sorted(m for m, jobs in CERTIFY_JOBS.items() if len(jobs) == 1)
SHARDED_MODELS = sorted(m for m, jobs in CERTIFY_JOBS.items() if len(jobs) > 1)
TRUST_CHECKPOINT = "--trust-checkpoint" if config["trust_checkpoints"] else ""
# certify.cohen_skip: CERTIFY on a subset beside the sequential procedure (None: no such check).
COHEN_CHECK = cohen_check_skip(config, MODELS)


ANALYSIS = "results/analysis"
ANALYSIS_TABLES = ["envelope", "per_model", "envelope_per_sigma", "abstention", "linf", "acr"]
ANALYSIS_OUTPUTS = [
    *(f"{ANALYSIS}/tables/{t}.html" for t in ANALYSIS_TABLES),
    f"{ANALYSIS}/figures",  # a directory: the figures the run has (rule figures)
    f"{ANALYSIS}/scorecard.html",
    f"{ANALYSIS}/cells.html",
    f"{ANALYSIS}/runtimes.html",
    f"{ANALYSIS}/plan/plan.html",
    f"{ANALYSIS}/configuration.html",
    *([f"{ANALYSIS}/protocol_check.html"] if COHEN_CHECK else []),
]


MODEL_ID = r"[A-Za-z0-9_.\-]+"


wildcard_constraints:
    model=MODEL_ID,
    sigma=r"[0-9.]+",
    shard=r"\d+",
    dataset=r"[a-z0-9]+",


def script(name):
    """A script of scripts/ by absolute path (passed as a param, so the workflow runs from any directory)."""
    return str(SCRIPTS / name)


def report_script(name):
    """A script of scripts/ by its path relative to the working directory, for the local rules whose outputs
    go into the report: they take it as an input (run as ``{input.script}``), since the report shows every
    such rule's inputs, params and code, and none may show an absolute path of the machine that ran it. As an
    input it also reruns the (cheap) job when the script changes."""
    return os.path.relpath(SCRIPTS / name)


def data_root(stamps):
    """The data root that a data set's stamp file (<root>/.ready/<dataset>.json) lies in."""
    stamp = stamps if isinstance(stamps, str) else stamps[0]
    return str(Path(stamp).parent.parent)


def data_stamp(dataset):
    """Written when a data set is in place; ancient() so that its timestamp never triggers reruns."""
    return ancient(f"{DATA_ROOT}/.ready/{dataset}.json")


def training_datasets(values, self_training):
    datasets = [values["dataset"]]
    if self_training:
        datasets.append("tinyimages")
    return [data_stamp(d) for d in datasets]


def model_data(wildcards):
    """The data stamp of a certified or attacked model's data set (its training set's evaluation split)."""
    return data_stamp(MODELS[wildcards.model].train["dataset"])


def model_dataset(wildcards):
    return MODELS[wildcards.model].train["dataset"]


def certification_logs(model):
    return [certification_log(model.id, s) for s in model.certify_sigmas]


def one_of(names, among):
    """A wildcard constraint matching exactly these of the model ids ``among``: any model id when they are all
    of them (a regex of hundreds of names slows the DAG down), none when there are none."""
    if set(names) == set(among):
        return MODEL_ID
    return "|".join(re.escape(name) for name in names) or "(?!)"


def all_certification_shards():
    """The shards of the cells certified in several jobs (a cell of one job has none)."""
    return [
        certification_shard(model, sigma, shard)
        for model in SHARDED_MODELS
        for sigma in MODELS[model].certify_sigmas
        for shard in range(len(CERTIFY_JOBS[model]))
    ]


def all_certification_logs():
    return [path for model in MODELS.values() for path in certification_logs(model)]


def all_cohen_check_logs():
    """The CERTIFY check logs (certify.cohen_skip): one per model and sigma, none without the check."""
    if not COHEN_CHECK:
        return []
    return [cohen_check_log(m.id, s) for m in MODELS.values() for s in m.certify_sigmas]


def synthetic_arguments():
    data = config["data"]
    if data["source"] != "synthetic":
        return ""
    sizes = data["synthetic"]
    names = ("n_train", "n_test", "n_tinyimages", "imagenet32_per_batch", "imagenet32_val", "seed")
    return " ".join(f"--{n.replace('_', '-')} {sizes[n]}" for n in names if n in sizes)


def pseudo_label_inputs(wildcards):
    inputs = {"cifar10": data_stamp("cifar10"), "tinyimages": data_stamp("tinyimages")}
    if config["pseudo_labels"]["labels"] == "model":
        inputs["model"] = rules.train_standard_model.output.model
    return inputs


def train_inputs(wildcards):
    model = MODELS[wildcards.model]
    inputs = {"data": training_datasets(model.train, model.self_training)}
    if model.pretrain:
        inputs["pretrained"] = ancient(f"results/pretrain/{model.pretrain}/model.pt")
    if model.self_training:
        inputs["self_training_set"] = "results/pseudolabels/merged.npz"
    return inputs


def train_extra_arguments(wildcards, input):
    extra = []
    if "pretrained" in input.keys():
        extra.append(f"--pretrained {input.pretrained}")
    if "self_training_set" in input.keys():
        extra.append(f"--pseudo-labels {input.self_training_set}")
    return " ".join(extra)


def job_index(wildcards):
    """The job of a cell or attack run: its shard, or 0 for a rule that writes the whole log."""
    return int(wildcards.shard) if "shard" in wildcards.keys() else 0


def certify_job_arguments(wildcards):
    """The certify options of a job (its only parameter: rsmooth.pipeline.certify_arguments)."""
    model = MODELS[wildcards.model]
    return certify_arguments(config, model, CERTIFY_JOBS[model.id][job_index(wildcards)])


def attack_job_arguments(wildcards):
    """The attack options of a job (its only parameter: rsmooth.pipeline.attack_arguments)."""
    job = ATTACK_JOBS[wildcards.model][job_index(wildcards)]
    return attack_arguments(config, ATTACK_SETTINGS[wildcards.setting], job)


def write_texts(texts, log):
    """Write each text to its path atomically, and say so in the log."""
    from rsmooth.io import atomic_open

    for path, text in texts.items():
        with atomic_open(path) as handle:
            handle.write(text)
    Path(log).write_text("".join(f"wrote {path}\n" for path in texts))


def attack_group_members():
    """Envelope group -> [model id, sigma, certification log] of its members (JSON for choose_attack_targets)."""
    return {
        group: [[model, sigma, certification_log(model, sigma)] for model, sigma in members]
        for group, members in ATTACK_GROUPS.items()
    }


def attack_group_logs():
    return sorted({log for members in attack_group_members().values() for _, _, log in members})


def study_attack_runs():
    """Every attack run of the study (rsmooth.pipeline.attack_runs); reads the envelope choice (a checkpoint)
    when there are groups."""
    chosen = None
    if ATTACK_GROUPS:
        chosen = json.loads(Path(checkpoints.choose_attack_targets.get().output[0]).read_text())
    return attack_runs(config, MODELS, chosen)


def attack_plan_inputs(wildcards):
    """The attack logs, their shards and the certification logs they are audited against. `all` takes them
    too: Snakemake remakes a deleted shard only when a target needs it (as for the certification shards).
    None without an empirical section."""
    if not config.get("empirical"):
        return []
    runs = study_attack_runs()
    shards = {
        attack_shard(r["cell"], r["sigma"], r["setting"], r["eps"], k)
        for r in runs
        if len(ATTACK_JOBS[r["cell"]]) > 1
        for k in range(len(ATTACK_JOBS[r["cell"]]))
    }
    return sorted({r["log"] for r in runs} | shards | {r["certify_log"] for r in runs})


def attack_plan():
    alpha_certify = config["certify"]["alpha"]
    return {"alpha_certify": alpha_certify, "alpha_predict": EMPIRICAL["alpha"], "runs": study_attack_runs()}


def empirical_targets():
    if not EMPIRICAL:
        return []
    return [f"{EMPIRICAL_OUT}/figures", f"{EMPIRICAL_OUT}/accuracy.html", f"{EMPIRICAL_OUT}/audit.html"]
