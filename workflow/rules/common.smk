# Grid expansion and paths shared by every rule. The grid logic lives in rsmooth.pipeline (no torch
# import, so building the DAG stays fast).
import json
import os
import re
from pathlib import Path

from snakemake.utils import validate

from rsmooth.fastpath import fast_path_arguments
from rsmooth.pipeline import (
    attack_groups,
    attack_log,
    attack_settings,
    certification_log,
    certification_set_size,
    explicit_attack_targets,
    format_value,
    grid_description,
    grid_models,
    pretrain_models,
    sequential_arguments,
    train_arguments,
    work_ranges,
)

validate(config, "../schemas/config.schema.yaml")

# Scripts by absolute path, so that the workflow also runs with --directory elsewhere.
SCRIPTS = Path(workflow.basedir).parent / "scripts"
DATA_ROOT = config["data"]["root"]
MODELS = grid_models(config)
PRETRAIN_MODELS = pretrain_models(config)
RUNTIME = config["runtime_minutes"]  # schema defaults fill it in
# [start, stop) index ranges of each model's certification jobs (the same at every sigma).
CERTIFY_JOBS = {m.id: work_ranges(config, "certify", m.certify_skip) for m in MODELS.values()}
WHOLE_CELL_MODELS = sorted(m for m, jobs in CERTIFY_JOBS.items() if len(jobs) == 1)
SHARDED_MODELS = sorted(m for m, jobs in CERTIFY_JOBS.items() if len(jobs) > 1)
TRUST_CHECKPOINT = "--trust-checkpoint" if config["trust_checkpoints"] else ""


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
    f"{ANALYSIS}/plan/plan.html",
    f"{ANALYSIS}/configuration.html",
]


wildcard_constraints:
    model=r"[A-Za-z0-9_.\-]+",
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


def certification_logs(model):
    return [certification_log(model.id, s) for s in model.certify_sigmas]


def one_of(names):
    """A wildcard constraint matching exactly these names."""
    return "|".join(re.escape(name) for name in names)


def all_certification_shards():
    """The shards of the cells certified in several jobs (a cell of one job has none)."""
    return [
        str(Path(certification_log(model, sigma)).with_suffix("") / f"shard-{shard}.tsv")
        for model in SHARDED_MODELS
        for sigma in MODELS[model].certify_sigmas
        for shard in range(len(CERTIFY_JOBS[model]))
    ]


def all_certification_logs():
    return [path for model in MODELS.values() for path in certification_logs(model)]


def synthetic_arguments():
    data = config["data"]
    if data.get("source") != "synthetic":
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


def certify_bounds(wildcards):
    """--start/--stop of a certification job: the cell's only job, or its shard."""
    start, stop = CERTIFY_JOBS[wildcards.model][int(wildcards.get("shard", 0))]
    return f"--start {start} --stop {stop}"


def certify_skip(wildcards):
    return MODELS[wildcards.model].certify_skip


def attack_bounds(wildcards):
    """--start/--stop of an attack job (ATTACK_JOBS, rules/attack.smk)."""
    return "--start {} --stop {}".format(*ATTACK_JOBS[int(wildcards.get("shard", 0))])


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


def attack_runs():
    """Every attack log of the study, as dicts; reads the envelope choice (a checkpoint) when there are groups."""
    targets = [(None, model, sigma, eps) for model, sigma in ATTACK_MODELS for eps in EMPIRICAL["eps"]]
    if ATTACK_GROUPS:
        chosen = json.loads(Path(checkpoints.choose_attack_targets.get().output[0]).read_text())
        for group, by_eps in chosen.items():
            # targets.json names the model "cell" (the file format of finished runs).
            targets.extend((group, t["cell"], t["sigma"], float(eps)) for eps, t in by_eps.items())
    return [
        {
            "group": group,
            "cell": model,
            "sigma": float(sigma),
            "eps": float(eps),
            "setting": setting.id,
            "attack": setting.attack,
            "base_attack": setting.base_attack,
            "num_noise": setting.num_noise,
            "n": setting.n,
            "log": attack_log(model, float(sigma), setting.id, float(eps)),
            "certify_log": certification_log(model, float(sigma)),
        }
        for group, model, sigma, eps in targets
        for setting in ATTACK_SETTINGS.values()
    ]


def attack_plan_inputs(wildcards):
    """The attack logs, their shards and the certification logs they are audited against. `all` takes them
    too: Snakemake remakes a deleted shard only when a target needs it (as for the certification shards)."""
    runs = attack_runs()
    shards = {
        f"{r['log'][: -len('.tsv')]}/shard-{k}.tsv"
        for r in runs
        for k in range(len(ATTACK_JOBS) if len(ATTACK_JOBS) > 1 else 0)
    }
    return sorted({r["log"] for r in runs} | shards | {r["certify_log"] for r in runs})


def attack_plan():
    alpha_certify = config["certify"]["alpha"]
    return {"alpha_certify": alpha_certify, "alpha_predict": EMPIRICAL["alpha"], "runs": attack_runs()}


def empirical_targets():
    if not EMPIRICAL:
        return []
    outputs = [f"{EMPIRICAL_OUT}/figures/{f}.png" for f in EMPIRICAL_FIGURES]
    return [*outputs, f"{EMPIRICAL_OUT}/accuracy.html", f"{EMPIRICAL_OUT}/audit.html"]
