"""What a config costs before it runs: GPU-hours per stage and experiment, SLURM jobs, and disk.

Torch-free (it reads the grid through :mod:`rsmooth.pipeline`), so ``scripts/plan.py`` and the ``plan`` rule
answer in seconds on a login node. Every figure is an estimate from a :class:`Throughput`; the defaults are
listed in :data:`DEFAULT_THROUGHPUT` with the GPU and the source of each, and ``--throughput FILE`` replaces
them with a user's own measurements.

Cost model (GPU-seconds; one GPU per job, as the SLURM profile asks):

- **Training**: ``epochs x images per epoch x factor / train_images_per_second[arch]``. Images per epoch are
  the data set's training split (``rsmooth.dataset_info``; the synthetic demo's ``n_train``); self-training
  doubles it (each epoch has as many pseudo-labelled batches as labelled ones, ``rsmooth.train.batches``).
  ``factor`` is the cost of one image relative to Gaussian training (:func:`method_factor`).
- **Certification**: ``images x samples per image / certify_samples_per_second[arch]``, ``images`` being
  every ``skip``-th test image. CERTIFY draws ``n0 + n`` samples; the sequential procedure draws on average
  ``n / sequential_saving[test]`` (the savings ``benchmarks/sequential_savings.py`` measured on the
  Cohen et al. CIFAR-10 logs at ``n_max`` = 100,000). Both are always estimated, the configured one counts
  in the total.
- **Attacks** (``empirical``): per attacked image, ``T`` attack steps over ``m_test`` noise draws at
  ``backward_cost`` forward passes each (``m_test`` forward passes for the gradient-free ``pgd_stein``),
  then PREDICT's ``n`` samples, at the certification rate.
- **Disk**: each model's ``model.pt`` (4 bytes per parameter) and its resume file (weights + SGD momentum,
  8 bytes per parameter), plus ``log_row_bytes`` per certified or attacked image.

Decisions:

- A model asked for by several experiments is trained once; the per-experiment table charges it to the
  first experiment that asks for it (config order), so the rows add up to the total. Pre-training, the
  standard model of ``pseudo_labels: {labels: model}`` and the attacks are rows of their own.
- Per-epoch monitoring on ``test_subset`` images (under 1 % of an epoch) and data loading are not counted.
- Method factors come from ``benchmarks/train_throughput.py`` on CPU (the only measurements in the
  repository; a GPU hides more of the per-pass overhead, so treat them as upper bounds). They are measured at
  one ``T`` and ``m``; :func:`method_factor` scales them by the structure of each method.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from rsmooth.dataset_info import TRAIN_SET_SIZE
from rsmooth.html_page import escape, page, readable_name
from rsmooth.pipeline import (
    attack_groups,
    attack_settings,
    certification_set_size,
    cohen_check_skip,
    explicit_attack_targets,
    grid_models,
    pretrain_models,
    work_ranges,
)
from rsmooth.train.methods import benchmark_cost, benchmark_rows, default_method_factors, get_method

__all__ = [
    "DEFAULT_THROUGHPUT",
    "Plan",
    "Throughput",
    "images_per_epoch",
    "load_throughput",
    "method_factor",
    "plan_config",
    "write_throughput",
]


def _method_factor_sources() -> str:
    """Where the default method factors come from: the methods' benchmark rows."""
    rows = benchmark_rows()
    lenet = [f"{b.label} {b.factor:g}" for _, b in rows.values() if b.measured]
    resnet = [f"{b.label} {b.resnet_factor:g}" for _, b in rows.values() if b.resnet_factor is not None]
    assumed = [f"{row} {b.factor:g} ({b.note})" for row, (_, b) in rows.items() if not b.measured]
    return (
        "benchmarks/train_throughput.py on CPU, image cost relative to Gaussian training: LeNet "
        f"{', '.join(lenet)}; ResNet-110 {', '.join(resnet)}; not measured: {', '.join(assumed)}"
    )


# The GPU the default figures are for, and where each comes from.
DEFAULT_GPU = "NVIDIA GTX 1080 Ti"
SOURCES = {
    "certify_samples_per_second": (
        "cifar_resnet110 and imagenet32_resnet110 (same 32x32 network): Cohen et al. 2019, about 14 s per CIFAR-10 "
        "image for CERTIFY at N0 + N = 100,100, ResNet-110, one GTX 1080 Ti (100,100 / 14 = 7,150/s); resnet50: "
        "config/imagenet.yaml's shard sizing, about 140 s per ImageNet image at N = 100,000 (715/s); lenet: an "
        "estimate (no published figure), 50x the ResNet-110 rate; cifar_resnet20/56: ResNet-110's rate scaled by "
        "depth"
    ),
    "train_images_per_second": (
        "Gaussian training, derived from the certification rate: one SGD step on an image costs about "
        "backward_cost forward passes (train rate = certify rate / backward_cost)"
    ),
    "backward_cost": "forward + backward = 3 forward passes (the usual rule of thumb for convolutional networks)",
    "method_factors": _method_factor_sources(),
    "sequential_saving": (
        "benchmarks/sequential_savings.py on the Cohen et al. CIFAR-10 logs (docs/benchmarks.md): 10.6x fewer samples "
        "than CERTIFY with the union test, 8.0x with the mixture test"
    ),
    "parameters": "counted from rsmooth.models (cifar_resnet110 1.73 M, as He et al. 2016; resnet50 25.6 M)",
    "log_row_bytes": "the size of one row of a certification or attack log (idx, label, predict, radius, ...)",
}

_RESNET110_RATE = 100_100 / 14.0  # samples per second (Cohen et al. 2019, GTX 1080 Ti)


@dataclass(frozen=True)
class Throughput:
    """The figures a plan is computed from (see :data:`SOURCES`); ``gpu`` names the GPU they are for."""

    gpu: str = DEFAULT_GPU
    certify_samples_per_second: Mapping[str, float] = field(
        default_factory=lambda: {
            "cifar_resnet20": _RESNET110_RATE * 110 / 20,
            "cifar_resnet56": _RESNET110_RATE * 110 / 56,
            "cifar_resnet110": _RESNET110_RATE,
            "imagenet32_resnet110": _RESNET110_RATE,
            "resnet50": 100_100 / 140.0,
            "lenet": _RESNET110_RATE * 50,
        }
    )
    # None: certify_samples_per_second / backward_cost, per architecture.
    train_images_per_second: Mapping[str, float] | None = None
    backward_cost: float = 3.0
    # The methods' benchmark rows (rsmooth.train.methods.Benchmark); ResNet family as "resnet:<row>".
    method_factors: Mapping[str, float] = field(default_factory=default_method_factors)
    sequential_saving: Mapping[str, float] = field(default_factory=lambda: {"union": 10.6, "mixture": 8.0})
    parameters: Mapping[str, float] = field(
        default_factory=lambda: {
            "cifar_resnet20": 0.27e6,
            "cifar_resnet56": 0.85e6,
            "cifar_resnet110": 1.73e6,
            "imagenet32_resnet110": 1.79e6,
            "resnet50": 25.6e6,
            "lenet": 431_080,
        }
    )
    log_row_bytes: float = 60.0

    def train_rate(self, arch: str) -> float:
        rates = self.train_images_per_second
        if rates is not None and arch in rates:
            return float(rates[arch])
        return self._lookup("certify_samples_per_second", arch) / self.backward_cost

    def certify_rate(self, arch: str) -> float:
        return self._lookup("certify_samples_per_second", arch)

    def parameter_count(self, arch: str) -> float:
        return self._lookup("parameters", arch)

    def _lookup(self, name: str, arch: str) -> float:
        table = getattr(self, name)
        depth = re.fullmatch(r"cifar_resnet(\d+)", arch)
        if arch not in table and depth and "cifar_resnet110" in table:
            # Any other CIFAR ResNet depth: time proportional to the depth, parameters to the blocks.
            scale = (int(depth[1]) - 2) / 108 if name == "parameters" else 110 / int(depth[1])
            return float(table["cifar_resnet110"]) * scale
        if arch not in table:
            raise ValueError(
                f"throughput: no {name} for architecture {arch!r}; it has {', '.join(sorted(table))}"
            )
        return float(table[arch])


DEFAULT_THROUGHPUT = Throughput()

# The one attack row measured on a ResNet as well as on LeNet: an unmeasured ResNet attack row scales its
# per-pass cost by this row's ResNet/LeNet ratio.
_RESNET_REFERENCE_ROW = "smoothadv_pgd"


def method_factor(values: Mapping[str, Any], throughput: Throughput = DEFAULT_THROUGHPUT) -> float:
    """The cost of one training image of the cell ``values`` (TrainConfig fields), relative to Gaussian training.

    The method says what an image costs (:meth:`~rsmooth.train.methods.Method.training_cost`: the measured row
    that applies, the noisy copies the SGD step trains on, the attack's forward-backward passes) and what its
    benchmark row measured (:func:`~rsmooth.train.methods.benchmark_cost`). A row measured with an attack costs
    ``copies + passes * a``, the per-pass cost ``a`` solved from the row's measured factor and setting, so the
    row's own setting gets its measured factor back; a row measured without one scales with the copies (MACER's
    and Consistency's m; Gaussian, Stability: one copy). A ResNet-family architecture uses a ``resnet:<row>``
    factor where one is given, else the LeNet one (an attack's passes scaled by the ResNet/LeNet ratio of
    :data:`_RESNET_REFERENCE_ROW`).
    """
    cost = get_method(values["method"]).training_cost(values)
    key = cost.row
    factors = throughput.method_factors
    if key not in factors:
        raise ValueError(f"throughput: no method factor for {key!r}; it has {', '.join(sorted(factors))}")
    resnet = "resnet" in str(values.get("arch", ""))
    measured = benchmark_cost(key)
    if not measured.attack_passes:
        factor = factors.get(f"resnet:{key}", factors[key]) if resnet else factors[key]
        return float(factor) * cost.copies / measured.copies
    per_pass = _per_pass(factors, key)
    if resnet:
        reference = _RESNET_REFERENCE_ROW
        if f"resnet:{key}" in factors:
            per_pass = _per_pass(factors, f"resnet:{key}")
        elif f"resnet:{reference}" in factors:
            per_pass *= _per_pass(factors, f"resnet:{reference}") / _per_pass(factors, reference)
    return cost.copies + cost.attack_passes * per_pass


def _per_pass(factors: Mapping[str, float], key: str) -> float:
    """The cost of one attack forward-backward pass, solved from the benchmarked factor of ``key``."""
    measured = benchmark_cost(key.removeprefix("resnet:"))
    return (float(factors[key]) - measured.copies) / measured.attack_passes


@dataclass
class Plan:
    """A plan's tables, as lists of row dicts (``stages``, ``experiments``, ``rules``) and its totals."""

    config_name: str
    throughput: Throughput
    procedure: str
    stages: list[dict[str, Any]]
    experiments: list[dict[str, Any]]
    rules: list[dict[str, Any]]
    total_gpu_hours: float
    gpu_jobs: int
    disk_gb: float

    def text(self) -> str:
        """The plan as plain-text tables (for stdout)."""
        lines = [
            f"Plan of {self.config_name} (throughput for {self.throughput.gpu}; certification: {self.procedure})",
            "",
            _text_table(
                self.stages, ["stage", "jobs", "gpu_hours", "cumulative_cohen", "cumulative_sequential"]
            ),
            "",
            _text_table(self.experiments, ["experiment", "models", "gpu_hours"]),
            "",
            f"total: {significant(self.total_gpu_hours)} GPU-hours, {self.gpu_jobs:,} GPU jobs (SLURM), "
            f"{self.disk_gb:,.2f} GB of outputs",
        ]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        """The plan for the report, a whole HTML page: the three tables and where the figures come from."""
        page_title = f"Plan of {self.config_name}"
        parts = [f"<h2>{escape(page_title)}</h2>", f"<p>{escape(self._summary())}</p>"]
        for title, rows in (
            ("Per stage", self.stages),
            ("Per experiment", self.experiments),
            ("Per rule", self.rules),
        ):
            parts += [f"<h3>{title}</h3>", _html_table(rows)]
        parts.append("<h3>Sources of the throughput figures</h3><ul>")
        parts += [f"<li><b>{k}</b>: {escape(v)}</li>" for k, v in SOURCES.items()]
        parts.append("</ul>")
        return page(page_title, "\n".join(parts))

    def _summary(self) -> str:
        return (
            f"{significant(self.total_gpu_hours)} GPU-hours on {self.throughput.gpu} (certification: {self.procedure}), "
            f"{self.gpu_jobs:,} GPU jobs, {self.disk_gb:,.2f} GB of outputs."
        )


def images_per_epoch(config: Mapping[str, Any], dataset: str, self_training: bool = False) -> int:
    """The images one training epoch on ``dataset`` goes through under the loaded ``config``: the training
    split (``rsmooth.dataset_info``; the synthetic demo's ``n_train``), doubled by self-training (as many
    pseudo-labelled batches as labelled ones, ``rsmooth.train.batches``)."""
    if config["data"]["source"] == "synthetic":
        sizes = config["data"]["synthetic"]
        size = int(sizes["n_tinyimages" if dataset == "tinyimages" else "n_train"])
    elif dataset in TRAIN_SET_SIZE:
        size = TRAIN_SET_SIZE[dataset]
    else:
        raise ValueError(
            f"the training split size of data set {dataset!r} is not recorded in rsmooth.dataset_info"
        )
    return size * (2 if self_training else 1)


@dataclass
class _Tally:
    """The rows of a plan as its steps add them: stages in order, GPU jobs and seconds per rule, disk bytes."""

    stages: list[dict[str, Any]] = field(default_factory=list)
    rules: dict[str, list[float]] = field(default_factory=dict)  # benchmark folder -> [jobs, seconds]
    disk: float = 0.0

    def add(self, stage: str, rule: str | None, jobs: int, seconds: float, **extra: Any) -> None:
        self.stages.append({"stage": stage, "jobs": jobs, "seconds": seconds, **extra})
        if rule is not None:
            entry = self.rules.setdefault(rule, [0, 0.0])
            entry[0] += jobs
            entry[1] += seconds


def plan_config(
    config: Mapping[str, Any], throughput: Throughput = DEFAULT_THROUGHPUT, name: str = "config"
) -> Plan:
    """The plan of a loaded pipeline config (``rsmooth.pipeline.load_config``: merged over the paper config
    where partial, every schema default filled in), as the workflow runs it."""
    config = dict(config)
    t = throughput
    models = grid_models(config)
    tally = _Tally()
    pretrain_seconds = _plan_pretraining(config, t, tally)
    _plan_standard_model(config, models, t, tally)
    train_seconds = _plan_training(config, models, t, tally)
    procedure, certify_seconds = _plan_certification(config, models, t, tally)
    attack_seconds = _plan_attacks(config, models, t, tally)
    totals = _cumulative_hours(tally.stages, procedure)
    experiments = _per_experiment(config, models, train_seconds, certify_seconds)
    if pretrain_seconds:
        pretrains = len(pretrain_models(config))
        experiments.append(
            {"experiment": "(pre-training)", "models": pretrains, "gpu_hours": pretrain_seconds / 3600}
        )
    if attack_seconds:
        experiments.append({"experiment": "(attacks)", "models": 0, "gpu_hours": attack_seconds / 3600})
    return Plan(
        config_name=name,
        throughput=t,
        procedure=procedure,
        stages=tally.stages,
        experiments=experiments,
        rules=[{"rule": r, "jobs": int(j), "gpu_hours": s / 3600} for r, (j, s) in tally.rules.items()],
        total_gpu_hours=totals[procedure] / 3600,
        gpu_jobs=sum(int(j) for j, _ in tally.rules.values()),
        disk_gb=tally.disk / 1e9,
    )


def _train_seconds(
    config: dict, values: Mapping[str, Any], t: Throughput, self_training: bool = False
) -> float:
    images = images_per_epoch(config, values["dataset"], self_training)
    if values.get("batches_per_epoch") is not None:  # absent from the values of older records
        images = values["batches_per_epoch"] * values["batch_size"]
    return values["epochs"] * images * method_factor(values, t) / t.train_rate(values["arch"])


def _plan_pretraining(config: dict, t: Throughput, tally: _Tally) -> float:
    """The ImageNet32 pre-training models: their GPU-seconds (0 without pre-training)."""
    pretrains = pretrain_models(config)
    if not pretrains:
        return 0.0
    seconds = sum(_train_seconds(config, v, t) for v in pretrains.values())
    tally.add("pre-training", "pretrain", len(pretrains), seconds)
    tally.disk += sum(12 * t.parameter_count(v["arch"]) for v in pretrains.values())
    return seconds


def _plan_standard_model(config: dict, models: dict, t: Throughput, tally: _Tally) -> None:
    """The labelling classifier of ``pseudo_labels: {labels: model}``, trained when a model self-trains."""
    if not any(m.self_training for m in models.values()) or config["pseudo_labels"]["labels"] != "model":
        return
    standard = {**config["training"], **config["pseudo_labels"]["standard_model"]}
    tally.add("standard model (pseudo-labels)", "pseudolabels", 1, _train_seconds(config, standard, t))
    tally.disk += 12 * t.parameter_count(standard["arch"])


def _plan_training(config: dict, models: dict, t: Throughput, tally: _Tally) -> dict[str, float]:
    """One stage per training method; the GPU-seconds of each model."""
    seconds = {m.id: _train_seconds(config, m.train, t, m.self_training) for m in models.values()}
    per_method: dict[str, list[float]] = {}
    for model in models.values():
        entry = per_method.setdefault(model.train["method"], [0, 0.0])
        entry[0] += 1
        entry[1] += seconds[model.id]
        tally.disk += 12 * t.parameter_count(model.train["arch"])
    for method, (jobs, total) in per_method.items():
        tally.add(f"training: {method}", "train", int(jobs), total)
    return seconds


def _plan_certification(
    config: dict, models: dict, t: Throughput, tally: _Tally
) -> tuple[str, dict[str, float]]:
    """Both procedures' stages (the configured one counts in the rule's total); the configured procedure and
    the GPU-seconds of each model's certification."""
    certify = config["certify"]
    procedure = certify["procedure"]
    n0, n = int(certify["n0"]), int(certify["n"])
    saving = float(t.sequential_saving[certify["test"]])
    seconds = {"cohen": 0.0, "sequential": 0.0}
    by_model: dict[str, float] = {}
    jobs = 0
    for model in models.values():
        dataset = model.train["dataset"]
        images = math.ceil(certification_set_size(config, dataset) / model.certify_skip)
        rate = t.certify_rate(model.train["arch"])
        for _sigma in model.certify_sigmas:
            jobs += len(work_ranges(config, "certify", model.certify_skip, dataset))
            seconds["cohen"] += images * (n0 + n) / rate
            seconds["sequential"] += images * (n / saving) / rate
            used = images * ((n0 + n) if procedure == "cohen" else n / saving) / rate
            by_model[model.id] = by_model.get(model.id, 0.0) + used
            tally.disk += images * t.log_row_bytes
    tally.add("certification: CERTIFY", None, jobs, seconds["cohen"], procedure="cohen")
    label = f"certification: sequential ({saving}x fewer samples)"
    tally.add(label, None, jobs, seconds["sequential"], procedure="sequential")
    tally.rules.setdefault("certify", [0, 0.0])
    tally.rules["certify"][0] += jobs
    tally.rules["certify"][1] += seconds[procedure]
    check = cohen_check_skip(config, models)
    if check:  # CERTIFY on a subset beside the sequential run: one job per (model, sigma)
        check_jobs, check_seconds = 0, 0.0
        for model in models.values():
            images = len(model.certify_sigmas) * math.ceil(  # over all the sigmas of the model
                certification_set_size(config, model.train["dataset"]) / check
            )
            cost = images * (n0 + n) / t.certify_rate(model.train["arch"])
            check_jobs += len(model.certify_sigmas)
            check_seconds += cost
            by_model[model.id] = by_model.get(model.id, 0.0) + cost
            tally.disk += images * t.log_row_bytes
        label = f"certification: CERTIFY check (1 in {check} images)"
        tally.add(label, "certify", check_jobs, check_seconds, procedure="sequential")
    return procedure, by_model


def _plan_attacks(config: dict, models: dict, t: Throughput, tally: _Tally) -> float:
    """The empirical study's attack jobs (section ``empirical``): their GPU-seconds (0 without one)."""
    jobs, seconds, runs, images = _attacks(config, models, t)
    if jobs:
        tally.add("attacks (empirical)", "attack", jobs, seconds)
        tally.disk += runs * images * t.log_row_bytes
    return seconds


def _attacks(config: dict, models: dict, t: Throughput) -> tuple[int, float, int, int]:
    """GPU jobs, GPU-seconds, attack runs and images per run of the empirical study."""
    empirical = config.get("empirical")  # an optional section
    if not empirical:
        return 0, 0.0, 0, 0
    settings = attack_settings(config)
    eps = len(empirical["eps"])
    # Explicit targets: every eps; envelope groups: one (model, sigma) per group and eps, chosen after
    # certification; its architecture and data set are taken as the group's first member's.
    targets = [mid for mid, _ in explicit_attack_targets(config, models) for _ in range(eps)]
    targets += [
        members[0][0] for members in attack_groups(config, models).values() if members for _ in range(eps)
    ]
    steps, skip = int(empirical["steps"]), int(empirical["skip"])
    seconds, jobs, images = 0.0, 0, 0
    for mid in targets:
        arch, dataset = models[mid].train["arch"], models[mid].train["dataset"]
        images = math.ceil(certification_set_size(config, dataset) / skip)
        jobs += len(settings) * len(work_ranges(config, "empirical", skip, dataset))
        for s in settings.values():
            if s.attack == "pgd_stein":
                passes = s.num_noise * steps
            else:
                passes = (1 if s.base_attack else s.num_noise) * steps * t.backward_cost
            seconds += images * (passes + s.n) / t.certify_rate(arch)
    return jobs, seconds, len(targets) * len(settings), images


def _cumulative_hours(stages: list[dict[str, Any]], procedure: str) -> dict[str, float]:
    """Each stage's GPU-hours and the cumulative GPU-hours in stage order with one certification procedure or
    the other (rows rewritten in place); the totals in GPU-seconds."""
    totals = {"cohen": 0.0, "sequential": 0.0}
    for row in stages:
        proc = row.pop("procedure", None)
        for which in totals:
            if proc is None or proc == which:
                totals[which] += row["seconds"]
        row["gpu_hours"] = row.pop("seconds") / 3600
        row["cumulative_cohen"] = totals["cohen"] / 3600 if proc != "sequential" else None
        row["cumulative_sequential"] = totals["sequential"] / 3600 if proc != "cohen" else None
        if proc is not None:
            row["configured"] = proc == procedure
    return totals


def _per_experiment(
    config: dict, models: dict, train_seconds: dict[str, float], certify_seconds: dict[str, float]
) -> list[dict[str, Any]]:
    """Models and GPU-hours per experiment; a model of several experiments is charged to the first."""
    per_experiment: dict[str, list[float]] = {e: [0, 0.0] for e in config["experiments"]}
    for model in models.values():
        entry = per_experiment[model.experiments[0]]
        entry[0] += 1
        entry[1] += train_seconds[model.id] + certify_seconds.get(model.id, 0.0)
    return [
        {"experiment": e, "models": int(c), "gpu_hours": s / 3600} for e, (c, s) in per_experiment.items()
    ]


# -- throughput files ------------------------------------------------------------------------------------------

_TABLES = {
    "certify_samples_per_second",
    "train_images_per_second",
    "method_factors",
    "sequential_saving",
    "parameters",
}
_NUMBERS = {"backward_cost", "log_row_bytes"}


def load_throughput(path: str | Path, base: Throughput = DEFAULT_THROUGHPUT) -> Throughput:
    """A :class:`Throughput` from a YAML or JSON file: each key it has replaces the default (a table key's
    entries are merged over the default table). A ValueError naming the file and the bad key or value for an
    unknown key, a non-mapping table, or a figure that is not a positive finite number."""
    path = Path(path)
    return _parse_throughput(path, _read_throughput_file(path), base)


def _read_throughput_file(path: Path) -> Any:
    try:
        text = path.read_text()
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot read a throughput file: {err}") from err


def _parse_throughput(path: Path, data: Any, base: Throughput) -> Throughput:
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: a throughput file is a mapping of keys to figures, got {type(data).__name__}"
        )
    allowed = {f.name for f in fields(Throughput)}
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key not in allowed:
            raise ValueError(f"{path}: unknown key {key!r}; allowed: {', '.join(sorted(allowed))}")
        if key == "gpu":
            if not isinstance(value, str) or not value:
                raise ValueError(f"{path}: 'gpu' must name the GPU the figures are for, got {value!r}")
            changes[key] = value
        elif key in _TABLES:
            if not isinstance(value, dict):
                raise ValueError(f"{path}: {key!r} must map names to numbers, got {value!r}")
            for name, figure in value.items():
                _check_figure(path, f"{key}.{name}", figure)
            changes[key] = {**(getattr(base, key) or {}), **{str(k): float(v) for k, v in value.items()}}
        else:
            _check_figure(path, key, value)
            changes[key] = float(value)
    return replace(base, **changes)


def write_throughput(path: str | Path, figures: Mapping[str, Any], update: bool = False) -> Path:
    """Write ``figures`` (the keys of :class:`Throughput`, e.g. ``gpu`` and ``certify_samples_per_second``) as a
    YAML throughput file for ``--throughput``, checked as :func:`load_throughput` checks it before anything is
    written; the file appears whole or not at all. With ``update``, an existing file of the same GPU keeps its
    other figures (tables merged entry by entry), so each benchmark adds its own to one file."""
    from rsmooth.io import atomic_open

    path = Path(path)
    figures = dict(figures)
    if update and path.exists():
        old = _read_throughput_file(path)
        _parse_throughput(path, old, DEFAULT_THROUGHPUT)  # a bad existing file is reported, not replaced
        if "gpu" in old and "gpu" in figures and old["gpu"] != figures["gpu"]:
            raise ValueError(f"{path}: its figures are for {old['gpu']!r}, these for {figures['gpu']!r}")
        for key, value in figures.items():
            old[key] = (
                {**old[key], **value} if isinstance(value, dict) and isinstance(old.get(key), dict) else value
            )
        figures = old
    _parse_throughput(path, figures, DEFAULT_THROUGHPUT)
    with atomic_open(path) as handle:
        if path.suffix == ".json":
            json.dump(figures, handle, indent=1)
        else:
            yaml.safe_dump(figures, handle, sort_keys=False)
    return path


def _check_figure(path: Path, key: str, value: Any) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise ValueError(f"{path}: {key} must be a positive number, got {value!r}")


# -- rendering -------------------------------------------------------------------------------------------------


def significant(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` significant figures in plain notation, the whole part kept (0.0000126, 12.3,
    1,234), so that the demo's tiny GPU-hours read as numbers, not 0.0; ``n/a`` for None and NaN."""
    if value is None or math.isnan(value):
        return "n/a"
    if value == 0:
        return "0"
    decimals = max(digits - 1 - math.floor(math.log10(abs(value))), 0)
    return f"{value:,.{decimals}f}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return significant(value)
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _text_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(columns, widths, strict=True))
        )
    ]
    lines += [
        "  ".join(
            v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    return "\n".join(lines)


# Column headers of the HTML page (the CSV and the text table keep the field names).
_HTML_HEADERS = {
    "gpu_hours": "GPU-hours",
    "cumulative_cohen": "Cumulative GPU-hours (CERTIFY)",
    "cumulative_sequential": "Cumulative GPU-hours (sequential)",
}


def _html_table(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{escape(_HTML_HEADERS.get(c, readable_name(c)))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_cell(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_csv(plan: Plan, path: str | Path) -> None:
    """The per-stage, per-experiment and per-rule rows in one long CSV (``table`` column names the table)."""
    import csv

    from rsmooth.io import atomic_open

    rows = [
        *({"table": "stage", **r} for r in plan.stages),
        *({"table": "experiment", **r} for r in plan.experiments),
        *({"table": "rule", **r} for r in plan.rules),
    ]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_open(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
