"""The experiment grid of the Snakemake pipeline: config -> grid models, pre-training models, shards.

Importable without torch, so that building the DAG of the full paper grid stays fast.

The configuration is loaded once, by :func:`load_config` (files) or :func:`complete_config` (a mapping, as the
Snakefile receives it): the merge rule (the paper config is the base unless the given config has
``experiments``), then the schema (``workflow/schemas/config.schema.yaml``) with every default filled in. The
Snakefile, ``scripts/plan.py``, the analysis scripts (through the workflow's ``config.json``) and the tests all
read that one result, so no reader spells a default again: the schema is the one home of every default.

A *grid model*
(:class:`GridModel`) is one model
to train; its id names every hyper-parameter that differs from the config's ``training`` defaults (plus
``init-imagenet32`` / ``selftrain`` markers), so identical models requested by two experiments are trained
once, and a result path says what it holds.
"""

from __future__ import annotations

import copy
import functools
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from rsmooth.dataset_info import DATASET_SPECS, dataset_spec, evaluation_split_size_on_disk
from rsmooth.fastpath import fast_path_arguments
from rsmooth.train.methods import get_method
from rsmooth.train_config import (
    OMITTED_AT_DEFAULT,
    OPTIONS,
    PIPELINE_SET,
    TRAIN_FIELDS,
    TrainConfig,
    method_defaults,
)
from rsmooth.validation import check_sigma

# Set by the pipeline from the experiment's `init` / `pseudo_labels` keys, never by hand.
_PATH_FIELDS = PIPELINE_SET

# Certified (or attacked) images per GPU job when the config gives neither shards nor images_per_job: each data
# set's spec (rsmooth.dataset_info, ``images_per_job``).
DEFAULT_IMAGES_PER_JOB = {n: s.images_per_job for n, s in DATASET_SPECS.items() if s.images_per_job}

# The analysis radii (the CIFAR-10 radii of the SmoothAdv tables): the schema's analysis.radii default, and
# scripts/certify.py's --radii default for users outside the pipeline (a test checks that the two agree).
DEFAULT_ANALYSIS_RADII = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25]

_REPOSITORY = Path(__file__).resolve().parents[1]
# The paper config: the base of a partial override (one without `experiments`).
PAPER_CONFIG = _REPOSITORY / "config" / "config.yaml"
SCHEMA = _REPOSITORY / "workflow" / "schemas" / "config.schema.yaml"

# Result paths, as Snakemake patterns: the rules declare their outputs with these, and the library fills them
# in (certification_log, attack_log), so that each name is written once.
CERTIFY_LOG = "results/certify/{model}/sigma-{sigma}.tsv"
CERTIFY_SHARD = "results/certify/{model}/sigma-{sigma}/shard-{shard}.tsv"
# CERTIFY on a subset beside a sequential run (certify.cohen_skip): the paper-protocol check.
COHEN_CHECK_LOG = "results/certify/{model}/sigma-{sigma}.cohen.tsv"
ATTACK_LOG = "results/attack/{model}/sigma-{sigma}/{setting}/eps-{eps}.tsv"
ATTACK_SHARD = "results/attack/{model}/sigma-{sigma}/{setting}/eps-{eps}/shard-{shard}.tsv"


class ConfigError(ValueError):
    """A pipeline config the schema rejects; the message names the file(s), the key and what is allowed.
    ``path`` is the bad key's path in the config (empty for the top level, or a file that cannot be read)."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


# -- loading: the merge rule, the schema, every default --------------------------------------------------------


def read_config_files(*files: str | Path) -> dict[str, Any]:
    """The YAML (or JSON) files merged in order, as Snakemake merges several ``--configfile``s."""
    config: dict[str, Any] = {}
    for path in files:
        path = Path(path)
        try:
            text = path.read_text()
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (OSError, ValueError, yaml.YAMLError) as err:
            raise ConfigError(f"{path}: cannot read a config file: {err}") from err
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a config file is a mapping of sections, got {type(data).__name__}")
        config = merge_config(config, data)
    return config


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` deep-merged over ``base``: mappings merge key by key, any other value (lists included)
    replaces the old one (Snakemake's rule for ``--configfile`` over ``configfile:``)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(*files: str | Path, base: str | Path = PAPER_CONFIG) -> dict[str, Any]:
    """The pipeline config of ``files`` (merged in order): see :func:`complete_config`. A ConfigError names
    the files, the key and what is allowed."""
    where = ", ".join(str(f) for f in files)
    try:
        return complete_config(read_config_files(*files), base)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}", err.path) from None


def complete_config(given: Mapping[str, Any], base: str | Path = PAPER_CONFIG) -> dict[str, Any]:
    """The config the workflow runs: ``given`` itself when it has ``experiments`` (a complete preset), else
    ``given`` merged over the paper config ``base`` (a partial override); validated against the schema with
    every default filled in. ``given`` is not modified."""
    config = dict(given) if "experiments" in given else merge_config(read_config_files(base), given)
    return validate_config(config)


@functools.cache
def _schema_validator() -> Any:
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def fill_defaults(validator, properties, instance, schema):
        # The jsonschema FAQ's default-filling validator (as snakemake.utils.validate), with a copy of each
        # default, so that filling one config never changes the schema's defaults.
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": fill_defaults})(schema)


def validate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``config`` checked against the schema, with every schema default filled in."""
    config = copy.deepcopy(dict(config))
    error = next(iter(_schema_validator().iter_errors(config)), None)
    if error is not None:
        path = tuple(error.absolute_path)
        key = ".".join(str(part) for part in path) or "(top level)"
        raise ConfigError(f"{key}: {error.message}", path)
    return config


@dataclass
class GridModel:
    """One model of the grid: its training values, the experiments asking for it, the sigmas to certify it at."""

    id: str
    train: dict[str, Any]  # TrainConfig fields (without the input paths)
    experiments: list[str] = field(default_factory=list)
    certify_sigmas: list[float] = field(default_factory=list)
    # Every how-many-th test image is certified: the gcd of the skips of the experiments asking for the model
    # (None: config certify.skip), so that each experiment's images are among the certified ones.
    certify_skip: int | None = None
    pretrain: str | None = None  # id of the pre-training model to fine-tune
    self_training: bool = False  # the experiment sets `pseudo_labels: true`

    @property
    def from_scratch(self) -> bool:
        """Neither fine-tuned from a pre-trained model nor self-trained."""
        return not self.pretrain and not self.self_training


def format_value(value: Any) -> str:
    """A value as it appears in ids and on command lines (floats without trailing noise: 0.25, 1.0)."""
    if isinstance(value, float):
        return repr(float(value))
    return str(value)


@functools.cache
def _defaults(method: str) -> dict[str, Any]:
    return method_defaults(method)


def _short(name: str) -> str:
    return OPTIONS[name].short or name


def model_id(values: dict[str, Any], defaults: dict[str, Any], markers: tuple[str, ...] = ()) -> str:
    """A readable, canonical id: markers, the method (and attack), its identifying hyper-parameters, then
    ``key-value`` for every other value that differs from ``defaults`` (in TrainConfig field order; a field
    that ``defaults`` does not set is compared with the method's own default). The method's class
    (``rsmooth.train.methods``) gives the head and the identifying fields.

    Example: ``smoothadv-pgd_sigma-0.25_eps-0.5_T-10_m-2_multi``.
    """
    method = get_method(values["method"])
    identity = method.id_fields(values)
    parts = [*markers, method.id_head(values)]
    parts += [f"{_short(name)}-{format_value(values[name])}" for name in identity]
    if values.get("multi_noise"):
        parts.append("multi")
    if values["self_training_weight"] != 1.0 or "selftrain" in markers:
        parts.append(f"stweight-{format_value(values['self_training_weight'])}")
    shown = {"method", "attack", "multi_noise", "self_training_weight", *identity}
    parts += [
        f"{name}-{format_value(values[name])}"
        for name in TRAIN_FIELDS
        if name in values
        and name not in shown
        and name not in _PATH_FIELDS
        and values[name] != defaults.get(name, _defaults(method.name)[name])
    ]
    return "_".join(parts)


def _experiment_values(name: str, experiment: dict[str, Any]) -> list[dict[str, Any]]:
    fixed = dict(experiment.get("set", {}))
    if "grid" in experiment:
        keys = list(experiment["grid"])
        return [
            {**fixed, **dict(zip(keys, combo, strict=True))}
            for combo in itertools.product(*(experiment["grid"][k] for k in keys))
        ]
    return [{**fixed, **values} for values in experiment.get("cells", [])]


def _check_train_keys(where: str, values: dict[str, Any]) -> None:
    unknown = sorted(set(values) - set(TRAIN_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown training option(s) {unknown}; allowed: {', '.join(TRAIN_FIELDS)}")
    for name in _PATH_FIELDS:
        if name in values:
            raise ValueError(f"{where}: set {name!r} through the experiment's init / pseudo_labels keys")


def pretrain_models(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Pre-training model id -> TrainConfig values, from ``config['pretraining']``."""
    section = config.get("pretraining") or {}
    if not section.get("grid"):
        return {}
    base = {**config["training"], **section.get("training", {})}
    _check_train_keys("pretraining.training", base)
    models = {}
    keys = list(section["grid"])
    _check_train_keys("pretraining.grid", dict.fromkeys(keys))
    for combo in itertools.product(*(section["grid"][k] for k in keys)):
        values = TrainConfig.from_dict({**base, **dict(zip(keys, combo, strict=True))}).validate().to_dict()
        models[model_id(values, base)] = values
    return models


def grid_models(config: dict[str, Any]) -> dict[str, GridModel]:
    """Every model the experiments ask for, by model id (identical requests share one model)."""
    defaults = dict(config["training"])
    _check_train_keys("training", defaults)
    pretrains = pretrain_models(config)
    models: dict[str, GridModel] = {}
    for name, experiment in config["experiments"].items():
        init = experiment.get("init")
        pseudo = experiment["pseudo_labels"]
        for overrides in _experiment_values(name, experiment):
            _check_train_keys(f"experiments.{name}", overrides)
            values = {**defaults, **(config.get("finetuning", {}) if init else {}), **overrides}
            if values.get("num_noise_vec", 1) == 1:
                values["multi_noise"] = False  # one noise draw: both update rules are the same computation
            values = TrainConfig.from_dict(values).validate().to_dict()
            pretrain = _matching_pretrain(name, values, pretrains, config) if init else None
            markers = tuple(m for m, on in ((f"init-{init}", init), ("selftrain", pseudo)) if on)
            reference = {**defaults, **(config.get("finetuning", {}) if init else {})}
            mid = model_id(values, reference, markers)
            # The training sigma is the default, and a noise-free method trains at sigma 0: name the key to set.
            sigmas = [
                check_sigma(s, f"experiments.{name}.certify_sigmas")
                for s in experiment.get("certify_sigmas", [values["sigma"]])
            ]
            model = models.setdefault(mid, GridModel(mid, values, pretrain=pretrain, self_training=pseudo))
            model.experiments.append(name)
            model.certify_sigmas = sorted(set(model.certify_sigmas) | set(sigmas))
            skip = int(experiment.get("certify_skip", config["certify"]["skip"]))
            model.certify_skip = skip if model.certify_skip is None else math.gcd(model.certify_skip, skip)
    return models


def _matching_pretrain(name: str, values: dict[str, Any], pretrains: dict[str, dict], config: dict) -> str:
    """The pre-training model with the fine-tuned model's sigma and eps (appendix E.1: "the corresponding model")."""
    for pid, pvalues in pretrains.items():
        if pvalues["sigma"] == values["sigma"] and pvalues["eps"] == values["eps"]:
            return pid
    grid = (config.get("pretraining") or {}).get("grid") or {}
    raise ValueError(
        f"experiments.{name}: no pre-training cell with sigma={values['sigma']}, eps={values['eps']}; "
        f"pretraining.grid has sigma {grid.get('sigma')} and eps {grid.get('eps')}"
    )


def certification_set_size(config: dict[str, Any], dataset: str | None = None) -> int:
    """Number of images in the evaluation split of ``dataset`` (default: the config's training data set)
    certified: the synthetic stand-in's ``n_test``, else the split on disk where its size can be read there (a
    smaller MNIST or ImageNet val set), else the size of the published split (the files are downloaded or
    verified by the data job)."""
    data = config["data"]
    if data["source"] == "synthetic":
        return int(data["synthetic"]["n_test"])
    dataset = dataset or config["training"]["dataset"]
    on_disk = evaluation_split_size_on_disk(dataset, data["root"])
    return on_disk if on_disk is not None else int(dataset_spec(dataset).fact("test_set_size"))


def shard_ranges(num_images: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous ``[start, stop)`` index ranges covering ``range(num_images)``."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    bounds = [round(i * num_images / shards) for i in range(shards + 1)]
    return list(itertools.pairwise(bounds))


def job_ranges(num_images: int, skip: int, images_per_job: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` index ranges covering ``range(num_images)``, each holding at most
    ``images_per_job`` of the selected images (every ``skip``-th index), as evenly as that allows."""
    if skip < 1 or images_per_job < 1:
        raise ValueError(f"skip and images_per_job must be >= 1, got {skip} and {images_per_job}")
    selected = -(-num_images // skip)
    jobs = max(1, -(-selected // images_per_job))
    # Cut between selected images (multiples of skip), so each job certifies the images it counts.
    bounds = [round(i * selected / jobs) * skip for i in range(jobs)] + [num_images]
    return list(itertools.pairwise(bounds))


def work_ranges(
    config: dict[str, Any], section: str, skip: int, dataset: str | None = None
) -> list[tuple[int, int]]:
    """The jobs of one model's certification (``section`` "certify") or one attack run ("empirical") on
    ``dataset`` (default: the config's training data set): a fixed number (``shards``) or a size
    (``images_per_job``, default :data:`DEFAULT_IMAGES_PER_JOB` of the data set)."""
    values = config[section]
    dataset = dataset or config["training"]["dataset"]
    size = certification_set_size(config, dataset)
    if "shards" in values and "images_per_job" in values:
        raise ValueError(
            f"{section}: give shards (a number of jobs) or images_per_job (their size), not both; "
            f"got shards={values['shards']}, images_per_job={values['images_per_job']}"
        )
    if "shards" in values:
        return shard_ranges(size, int(values["shards"]))
    per_job = values.get("images_per_job") or dataset_spec(dataset).fact("images_per_job")
    return job_ranges(size, skip, int(per_job))


def train_arguments(values: dict[str, Any]) -> str:
    """TrainConfig values as ``scripts/train.py`` options."""
    parts = []
    for name in TRAIN_FIELDS:
        if name not in values or name in _PATH_FIELDS or values[name] is None:
            continue
        if name in OMITTED_AT_DEFAULT and values[name] == OPTIONS[name].default:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(values[name], bool):
            parts.append(flag if values[name] else f"--no-{name.replace('_', '-')}")
        else:
            parts.append(f"{flag} {format_value(values[name])}")
    return " ".join(parts)


def certify_radii(config: dict[str, Any]) -> list[float]:
    """The sequential procedure's radius grid: ``certify.radii``, else the analysis radii; checked here so
    that a bad grid fails when the DAG is built, not in every certification job."""
    radii = [float(r) for r in config["certify"].get("radii") or config["analysis"]["radii"]]
    if any(r < 0 for r in radii) or any(b <= a for a, b in itertools.pairwise(radii)):
        raise ValueError(f"certify.radii must be >= 0 and strictly increasing, got {radii}")
    return radii


def sequential_arguments(config: dict[str, Any]) -> str:
    """``scripts/certify.py`` options of ``certify.procedure``: none for CERTIFY (its command is unchanged)."""
    certify = config["certify"]
    if certify["procedure"] == "cohen":
        return ""
    radii = " ".join(format_value(r) for r in certify_radii(config))
    return f"--procedure sequential --test {certify['test']} --radii {radii}"


def _options(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def certify_arguments(config: dict[str, Any], model: GridModel, job: tuple[int, int]) -> str:
    """The options of one certification job (``scripts/certify.py``) after ``--sigma``: CERTIFY's settings,
    the model's skip, the job's ``[start, stop)``, then ``--amp``, the fast-path options that are not the
    defaults, the options of ``certify.procedure`` and ``--trust-checkpoint`` (none for a default config). The
    job's only parameter, so that a new config key or default never changes a finished job's parameters."""
    c = config["certify"]
    options = _options(
        "--amp" if c["amp"] else "",
        *fast_path_arguments(c),
        sequential_arguments(config),
        "--trust-checkpoint" if config["trust_checkpoints"] else "",
    )
    return (
        f"--N0 {c['n0']} --N {c['n']} --alpha {c['alpha']} --batch {c['batch']} --skip {model.certify_skip} "
        f"--seed {c['seed']} --start {job[0]} --stop {job[1]} {options}"
    )


def cohen_check_skip(config: dict[str, Any], models: Mapping[str, GridModel]) -> int | None:
    """``certify.cohen_skip``, checked when the DAG is built: it needs the sequential procedure (CERTIFY beside
    CERTIFY checks nothing) and must be a multiple of every model's skip, so that each image it certifies with
    CERTIFY is also certified sequentially. None: no check configured."""
    certify = config["certify"]
    skip = certify.get("cohen_skip")
    if skip is None:
        return None
    if certify["procedure"] != "sequential":
        raise ValueError(
            f"certify.cohen_skip ({skip}) sets CERTIFY beside the sequential procedure, but certify.procedure "
            f"is {certify['procedure']!r}: set procedure: sequential, or unset cohen_skip"
        )
    skips = sorted({m.certify_skip for m in models.values() if skip % m.certify_skip})
    if skips:
        raise ValueError(
            f"certify.cohen_skip ({skip}) must be a multiple of every model's certification skip, so that its "
            f"images are certified both ways; not a multiple of {skips}"
        )
    return int(skip)


def cohen_check_arguments(config: dict[str, Any], model: GridModel) -> str:
    """The options of a model's CERTIFY check job (``certify.cohen_skip``): ``certify_arguments`` under
    CERTIFY with the section's n0, n and alpha, every cohen_skip-th image of the whole set, in one job."""
    cohen = {**config, "certify": {**config["certify"], "procedure": "cohen"}}
    checked = replace(model, certify_skip=config["certify"]["cohen_skip"])
    return certify_arguments(cohen, checked, (0, certification_set_size(config, model.train["dataset"])))


# -- the empirical study (config section `empirical`): attacks at test time --------------------------------------


@dataclass(frozen=True)
class AttackSetting:
    """One attack configuration of the empirical study; ``id`` names it in result paths."""

    attack: str
    base_attack: bool
    num_noise: int
    n: int

    @property
    def id(self) -> str:
        if self.base_attack:
            return f"{self.attack}-base_n-{self.n}"
        return f"{self.attack}_m-{self.num_noise}_n-{self.n}"

    def arguments(self) -> str:
        """``scripts/attack.py`` options of this setting."""
        base = " --base-attack" if self.base_attack else ""
        return f"--attack {self.attack} --num-noise-vec {self.num_noise} --N {self.n}{base}"


def attack_settings(config: dict[str, Any]) -> dict[str, AttackSetting]:
    """Every setting the `empirical.attacks` entries ask for (each entry a product of its lists), by id."""
    settings: dict[str, AttackSetting] = {}
    for name, entry in config["empirical"]["attacks"].items():
        base = entry["base_attack"]
        noises = [1] if base else entry["num_noise"]
        for m, n in itertools.product(noises, entry["n"]):
            if entry["attack"] == "pgd_stein" and (base or m < 2):
                raise ValueError(
                    f"empirical.attacks.{name}: pgd_stein needs num_noise >= 2 and no base_attack, got m = {m}"
                )
            setting = AttackSetting(entry["attack"], base, int(m), int(n))
            settings.setdefault(setting.id, setting)
    return settings


def attack_groups(config: dict[str, Any], models: dict[str, GridModel]) -> dict[str, list[tuple[str, float]]]:
    """The envelope groups: name -> the (model id, sigma) certification logs among which each eps picks the one
    with the best certified accuracy at radius eps. ``envelope: true`` is one group of every model."""
    envelope = config["empirical"]["envelope"]
    if not envelope:
        return {}
    if envelope is True:
        envelope = {"all": list(config["experiments"])}
    groups = {}
    for group, experiments in envelope.items():
        unknown = sorted(set(experiments) - set(config["experiments"]))
        if unknown:
            raise ValueError(f"empirical.envelope.{group}: unknown experiments {unknown}")
        groups[group] = [
            (model.id, sigma)
            for model in models.values()
            if set(model.experiments) & set(experiments)
            for sigma in model.certify_sigmas
        ]
    return groups


def explicit_attack_targets(config: dict[str, Any], models: dict[str, GridModel]) -> list[tuple[str, float]]:
    """The (model id, sigma) pairs of `empirical.cells` (model ids), each attacked at every eps (at its
    certification sigmas)."""
    targets = []
    for mid in config["empirical"]["cells"]:
        if mid not in models:
            raise ValueError(f"empirical.cells: unknown model {mid!r}; the grid has {sorted(models)[:5]} ...")
        targets.extend((mid, sigma) for sigma in models[mid].certify_sigmas)
    return targets


def attack_arguments(config: dict[str, Any], setting: AttackSetting, job: tuple[int, int]) -> str:
    """The options of one attack job (``scripts/attack.py``) after ``--eps``: the setting, the attack's
    settings, the job's ``[start, stop)``, then the fast-path options that are not the defaults and
    ``--trust-checkpoint``. The job's only parameter, as for :func:`certify_arguments`."""
    e = config["empirical"]
    options = _options(*fast_path_arguments(e), "--trust-checkpoint" if config["trust_checkpoints"] else "")
    return (
        f"{setting.arguments()} --steps {e['steps']} --alpha {e['alpha']} --batch {e['batch']} "
        f"--skip {e['skip']} --seed {e['seed']} --start {job[0]} --stop {job[1]} {options}"
    )


def attack_runs(
    config: dict[str, Any],
    models: dict[str, GridModel],
    chosen: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """Every attack run of the empirical study, one dict per (target, setting): the explicit targets
    (`empirical.cells`) at every eps, then each envelope group's target per eps from ``chosen`` (the envelope
    choice, ``targets.json``: group -> eps -> {cell, sigma}); ``chosen`` is needed when there are groups."""
    empirical = config["empirical"]
    targets = [(None, model, sigma, eps) for model, sigma in explicit_attack_targets(config, models) for eps in empirical["eps"]]  # fmt: skip
    groups = attack_groups(config, models)
    if groups:
        if chosen is None:
            raise ValueError(f"the envelope groups {sorted(groups)} need the envelope choice (targets.json)")
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
        for setting in attack_settings(config).values()
    ]


def certification_log(model: str, sigma: float) -> str:
    """The merged certification log of one model at one sigma."""
    return CERTIFY_LOG.format(model=model, sigma=format_value(sigma))


def certification_shard(model: str, sigma: float, shard: int) -> str:
    return CERTIFY_SHARD.format(model=model, sigma=format_value(sigma), shard=shard)


def attack_log(model: str, sigma: float, setting: str, eps: float) -> str:
    return ATTACK_LOG.format(model=model, sigma=format_value(sigma), setting=setting, eps=format_value(eps))


def attack_shard(model: str, sigma: float, setting: str, eps: float, shard: int) -> str:
    values = {"sigma": format_value(sigma), "eps": format_value(eps)}
    return ATTACK_SHARD.format(model=model, setting=setting, shard=shard, **values)


def cohen_check_log(model: str, sigma: float) -> str:
    """The CERTIFY check log of one model at one sigma (``certify.cohen_skip``)."""
    return COHEN_CHECK_LOG.format(model=model, sigma=format_value(sigma))


def grid_description(models: dict[str, GridModel], *, cohen_check: bool = False) -> dict[str, Any]:
    """What the analysis reads of the grid (``rsmooth.analysis.results``): every model, and every
    certification log with its model id and sigma (a number), models in grid order and sigmas ascending; with
    ``cohen_check``, each certification's CERTIFY check log too (``cohen_log``)."""
    return {
        "models": {
            m.id: {
                "experiments": m.experiments,
                "train": m.train,
                "pretrain": m.pretrain,
                "self_training": m.self_training,
            }
            for m in models.values()
        },
        "certifications": [
            {
                "model": m.id,
                "sigma": float(s),
                "log": certification_log(m.id, s),
                **({"cohen_log": cohen_check_log(m.id, s)} if cohen_check else {}),
            }
            for m in models.values()
            for s in m.certify_sigmas
        ],
    }


# -- toy scale: a preset's every experiment and stage, at a size that runs on a laptop CPU in minutes ---------

# What toy scale sets: one epoch of small batches, tiny synthetic stand-ins, tiny CERTIFY and attacks.
# batches_per_epoch None: one pass over the toy set (a preset's step budget would be hundreds of toy steps).
TOY_TRAINING = {"epochs": 1, "batch_size": 8, "workers": 0, "test_subset": 2, "batches_per_epoch": None}
TOY_DATA = {
    "root": "resources/toy-data",
    "source": "synthetic",
    "synthetic": {"n_train": 16, "n_test": 2, "n_tinyimages": 16, "imagenet32_per_batch": 2, "imagenet32_val": 2, "seed": 0},
}  # fmt: skip
TOY_CERTIFY = {"n0": 8, "n": 16, "batch": 64, "skip": 1, "shards": 1}
TOY_EMPIRICAL = {"steps": 1, "batch": 64, "skip": 1, "shards": 1}
TOY_N = 8  # PREDICT's n in the toy attacks


def _toy_values(values: dict[str, Any]) -> dict[str, Any]:
    """Training values with the toy's epochs, batch, workers, monitoring subset and epoch length where they are
    set."""
    return {k: TOY_TRAINING.get(k, v) for k, v in values.items()}


def _first_cell(experiment: dict[str, Any]) -> dict[str, Any]:
    """The experiment cut to its first model (the first value of each grid list, or its first cell)."""
    cut = {k: v for k, v in experiment.items() if k not in ("grid", "cells", "certify_skip")}
    if "set" in cut:
        cut["set"] = _toy_values(cut["set"])
    if "grid" in experiment:
        cut["grid"] = {k: [v[0]] for k, v in _toy_values(experiment["grid"]).items()}
    else:
        cut["cells"] = [_toy_values(experiment["cells"][0])]
    return cut


def toy_config(config: dict[str, Any]) -> dict[str, Any]:
    """The toy-scale version of a complete preset: every experiment, stage and section kept, each grid cut to
    one model, one epoch, synthetic stand-ins of a few images in the real formats, CERTIFY with N0 8 / N 16,
    attacks at one eps with n 8 and at most 4 noise draws. Its numbers mean nothing: it runs every job of the preset's DAG, through
    aggregation, figures and the report, in minutes on a CPU ("check my config before the cluster":
    ``scripts/toy_config.py``). Architectures are kept, so that fine-tuning and checkpoints are checked too.
    """
    if "experiments" not in config:
        raise ValueError("toy_config needs a complete preset (with `experiments`), not a partial override")
    toy = {k: v for k, v in config.items() if k not in ("data", "throughput")}
    toy["data"] = {**TOY_DATA, "synthetic": dict(TOY_DATA["synthetic"])}
    toy["training"] = _toy_values({**config["training"], **TOY_TRAINING})
    toy["experiments"] = {name: _first_cell(e) for name, e in config["experiments"].items()}
    if config.get("finetuning"):
        toy["finetuning"] = _toy_values({**config["finetuning"], "epochs": 1})
    if config.get("pretraining"):
        toy["pretraining"] = _toy_pretraining(config, toy["experiments"])
    if config.get("pseudo_labels", {}).get("standard_model"):
        standard = _toy_values({**config["pseudo_labels"]["standard_model"], "epochs": 1})
        toy["pseudo_labels"] = {**config["pseudo_labels"], "standard_model": standard}
    certify = {k: v for k, v in config.get("certify", {}).items() if k != "images_per_job"}
    toy["certify"] = {**certify, **TOY_CERTIFY}
    if "empirical" in config:
        toy["empirical"] = _toy_empirical(config["empirical"])
    return toy


def _toy_pretraining(config: dict[str, Any], experiments: dict[str, Any]) -> dict[str, Any]:
    """Pre-training cut to the cells the toy's fine-tuned experiments need (their sigma and eps), else one."""
    section = config["pretraining"]
    grid = section["grid"]
    wanted: dict[str, list] = {}
    training = {**config["training"], **config.get("finetuning", {})}
    for experiment in experiments.values():
        if experiment.get("init"):
            for values in _experiment_values("", experiment):
                for key in ("sigma", "eps"):
                    value = values.get(key, training.get(key))
                    if key in grid and value not in wanted.setdefault(key, []):
                        wanted[key].append(value)
    cut = {key: wanted.get(key) or [values[0]] for key, values in grid.items()}
    return {**section, "training": _toy_values({**section.get("training", {}), **TOY_TRAINING}), "grid": cut}


def _toy_empirical(empirical: dict[str, Any]) -> dict[str, Any]:
    toy = {k: v for k, v in empirical.items() if k != "images_per_job"}
    toy.update(TOY_EMPIRICAL)
    # One eps, the first above 0 (eps 0 runs no attack), so that every attack job runs an attack.
    toy["eps"] = [next((e for e in empirical["eps"] if e > 0), empirical["eps"][0])]
    attacks = {}
    for name, entry in empirical["attacks"].items():
        entry = {**entry, "n": [TOY_N]}
        if "num_noise" in entry:  # the fewest noise draws the attack allows (pgd_stein needs two), at most 4
            least = 2 if entry.get("attack") == "pgd_stein" else 1
            entry["num_noise"] = [max(least, min(min(entry["num_noise"]), 4))]
        attacks[name] = entry
    toy["attacks"] = attacks
    return toy
