"""The config schema (workflow/schemas/config.schema.yaml) accepts every preset, fills its defaults, matches
TrainConfig, and rejects broken configs with a first line that names the bad key or value; rsmooth.pipeline
rejects what a schema cannot express."""

from __future__ import annotations

import copy
import re
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from rsmooth.dataset_info import DATASETS
from rsmooth.fastpath import PRECISIONS, fast_path_arguments
from rsmooth.pipeline import (
    TRAIN_FIELDS,
    ConfigError,
    certification_set_size,
    grid_models,
    job_ranges,
    pretrain_models,
    validate_config,
    work_ranges,
)
from rsmooth.train.methods import REGISTRY
from rsmooth.train_config import (
    ATTACKS,
    METHODS,
    OWNER,
    PIPELINE_SET,
    TrainConfig,
    rewrite_schema,
    training_schema,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())
FIELDS = SCHEMA["$defs"]["training"]["properties"]


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


# Complete presets (a partial file, merged over config/config.yaml by the Snakefile, has no experiments).
PRESETS = sorted(p for p in (ROOT / "config").glob("*.yaml") if "experiments" in load(p))


def validated(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as the Snakefile sees it (rsmooth.pipeline.validate_config): schema defaults filled in."""
    return validate_config(config)


def rejection(config: dict[str, Any]) -> tuple[str, str]:
    """The schema's complaint and where it is, as ``['section']['key']`` (``instance``: the top level)."""
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    where = "".join(f"[{part!r}]" for part in info.value.path) or "instance"
    return str(info.value), where


# A small config with every section of the paper config, to be broken one key at a time.
BASE = {
    "data": {"root": "resources/data", "source": "download"},
    "training": {"dataset": "cifar10", "arch": "cifar_resnet110", "epochs": 150, "batch_size": 256},
    "pretraining": {
        "training": {"dataset": "imagenet32", "arch": "imagenet32_resnet110", "method": "smoothadv"},
        "grid": {"sigma": [0.25, 0.5], "eps": [0.5]},
    },
    "finetuning": {"epochs": 30, "lr": 0.001, "lr_step_size": 0, "warmup": 1},
    "pseudo_labels": {"labels": "shipped"},
    "experiments": {
        "cohen": {"grid": {"method": ["gaussian"], "sigma": [0.25, 0.5]}},
        "pretraining": {
            "init": "imagenet32",
            "grid": {"method": ["smoothadv"], "sigma": [0.25, 0.5], "eps": [0.5], "steps": [2]},
        },
        "smoothmix": {
            "set": {"method": "smoothmix", "num_noise_vec": 2, "steps": 4},
            "cells": [{"sigma": 0.25, "smoothmix_alpha": 0.5}, {"sigma": 0.5, "smoothmix_alpha": 1.0}],
        },
        "vanilla_pgd": {
            "certify_sigmas": [0.25, 0.5],
            "grid": {"method": ["pgd_vanilla"], "sigma": [0.0], "eps": [0.5], "steps": [2]},
        },
    },
    "certify": {"shards": 4},
    "analysis": {"radii": [0.0, 0.5, 1.0]},
}


def broken(edit) -> dict[str, Any]:
    config = copy.deepcopy(BASE)
    edit(config)
    return config


# --- presets ------------------------------------------------------------------------------------------


def test_the_presets_are_found():
    names = {p.name for p in PRESETS}
    assert {"config.yaml", "imagenet.yaml"} <= names


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_preset_validates_and_expands(path):
    config = validated(load(path))
    cells = grid_models(config)
    assert cells
    # Every experiment contributes at least one cell, and every cell is certified at least once.
    assert {name for cell in cells.values() for name in cell.experiments} == set(config["experiments"])
    assert all(cell.certify_sigmas for cell in cells.values())
    if any(cell.pretrain for cell in cells.values()):
        assert {cell.pretrain for cell in cells.values() if cell.pretrain} <= set(pretrain_models(config))
    for model in cells.values():  # the jobs of every model cover its images, each at most images_per_job
        jobs = work_ranges(config, "certify", model.certify_skip)
        assert jobs[0][0] == 0 and jobs[-1][1] == certification_set_size(config)
        if "images_per_job" in config["certify"]:
            sizes = [
                len(range(start + (-start) % model.certify_skip, stop, model.certify_skip))
                for start, stop in jobs
            ]
            assert max(sizes) <= config["certify"]["images_per_job"] and sum(sizes) == len(
                range(0, jobs[-1][1], model.certify_skip)
            )


def test_the_base_config_of_these_tests_is_valid():
    cells = grid_models(validated(copy.deepcopy(BASE)))
    assert len(cells) == 2 + 2 + 2 + 1


def test_certification_and_the_attacks_take_the_tf32_precision():
    config = validated(broken(_set("certify.precision", "tf32")))
    assert config["certify"]["precision"] == "tf32"
    assert "--precision tf32" in fast_path_arguments(config["certify"])
    # The schema's lists are fastpath's: a precision added there is offered here, and training's stay apart.
    for section in ("certify", "empirical"):
        assert SCHEMA["properties"][section]["properties"]["precision"]["enum"] == list(PRECISIONS), section


def test_jobs_hold_at_most_images_per_job_selected_images_cut_between_them():
    assert job_ranges(10_000, 20, 1000) == [(0, 10_000)]  # the 500 images of skip 20 in one job
    assert job_ranges(10_000, 1, 1000) == [(i, i + 1000) for i in range(0, 10_000, 1000)]
    assert job_ranges(50_000, 100, 100) == [(i, i + 10_000) for i in range(0, 50_000, 10_000)]
    # 4 selected images (0, 3, 6, 9), at most 2 a job: two jobs, cut at a selected index.
    assert job_ranges(10, 3, 2) == [(0, 6), (6, 10)]
    # 7 images at most 3 a job: three near-equal jobs (2, 3, 2), not 3, 3, 1.
    assert [stop - start for start, stop in job_ranges(7, 1, 3)] == [2, 3, 2]
    with pytest.raises(ValueError, match="images_per_job must be >= 1"):
        job_ranges(10, 1, 0)


def test_shards_and_images_per_job_are_alternatives():
    config = validated(copy.deepcopy(BASE))
    assert len(work_ranges(config, "certify", 1)) == 4  # certify.shards: 4
    del config["certify"]["shards"]
    assert len(work_ranges(config, "certify", 1)) == 10  # CIFAR-10's default: 1,000 images a job
    config["certify"]["images_per_job"] = 2500
    assert len(work_ranges(config, "certify", 1)) == 4
    assert len(work_ranges(config, "certify", 20)) == 1
    config["certify"]["shards"] = 4
    with pytest.raises(
        ValueError, match=r"certify: give shards .* not both; got shards=4, images_per_job=2500"
    ):
        work_ranges(config, "certify", 1)


def test_certify_skip_per_experiment_and_the_union_of_a_shared_models_images():
    config = copy.deepcopy(BASE)
    config["certify"]["skip"] = 5
    config["experiments"]["cohen"]["certify_skip"] = 20
    config["experiments"]["cohen_again"] = {
        "certify_skip": 30,
        "grid": {"method": ["gaussian"], "sigma": [0.25]},
    }
    cells = grid_models(validated(config))
    skips = {cell.id: cell.certify_skip for cell in cells.values()}
    assert skips["gaussian_sigma-0.25"] == 10  # in cohen (20) and cohen_again (30): gcd, a superset of both
    assert skips["gaussian_sigma-0.5"] == 20
    assert {cell.certify_skip for cell in cells.values() if "cohen" not in cell.id.split("_")[0]} <= {
        5,
        10,
        20,
    }
    assert all(cell.certify_skip == 5 for cell in cells.values() if cell.experiments == ["smoothmix"])


def test_imagenet_preset_is_the_table_6_grid():
    config = validated(load(ROOT / "config" / "imagenet.yaml"))
    cells = grid_models(config)
    methods = [(c.train["method"], c.train["attack"], c.train["steps"]) for c in cells.values()]
    assert methods.count(("gaussian", "pgd", 10)) == 3  # attack and steps are unused by gaussian
    assert methods.count(("smoothadv", "pgd", 1)) == 12
    assert methods.count(("smoothadv", "ddn", 2)) == 12
    table_6_eps = {0.5, 1.0, 2.0, 4.0}
    assert {c.train["eps"] for c in cells.values() if c.train["method"] == "smoothadv"} == table_6_eps
    assert {
        (c.train["dataset"], c.train["arch"], c.train["epochs"], c.train["batch_size"])
        for c in cells.values()
    } == {("imagenet", "resnet50", 90, 400)}
    # 500 certified images: every 100th of the 50,000 val images.
    assert len(range(0, certification_set_size(config), config["certify"]["skip"])) == 500


# --- defaults -----------------------------------------------------------------------------------------


def test_defaults_are_filled_where_the_parent_exists():
    config = validated(
        {"data": {}, "training": {}, "experiments": {"e": {"grid": {"sigma": [0.25]}}}, "certify": {}}
    )
    assert config["data"] == {"root": "resources/data", "source": "download"}
    assert config["certify"] == {
        "n0": 100,
        "n": 100000,
        "alpha": 0.001,
        "batch": "auto",
        "skip": 1,
        "seed": 0,
        "amp": False,
        "precision": "fp32",
        "channels_last": False,
        "compile": False,
        "procedure": "cohen",
        "test": "union",
    }
    assert config["analysis"]["radii"][0] == 0.0
    assert config["pseudo_labels"] == {
        "labels": "shipped",
        "standard_model": {"method": "standard", "sigma": 0.0},
    }
    # Training values get no schema defaults (TrainConfig's apply), so none leak into overrides.
    assert config["training"] == {}
    assert config["experiments"] == {"e": {"grid": {"sigma": [0.25]}, "pseudo_labels": False}}
    assert "pretraining" not in config and "finetuning" not in config


def test_synthetic_sizes_default_to_those_of_prepare_data():
    # The Snakefile passes only the sizes a config gives, so the two sets of defaults must agree.
    script = (ROOT / "scripts" / "prepare_data.py").read_text()
    script_defaults = {
        name.replace("-", "_"): int(value)
        for name, value in re.findall(r'"--([a-z0-9-]+)", type=int, default=(\d+)', script)
    }
    config = validated({**copy.deepcopy(BASE), "data": {"source": "synthetic", "synthetic": {}}})
    assert config["data"]["synthetic"] == script_defaults
    assert certification_set_size(config) == script_defaults["n_test"]


# --- the schema's training section is generated from the method registry ------------------------------


def test_the_schema_file_holds_the_training_fields_generated_from_the_registry():
    # `python -m rsmooth.train_config` rewrites the block; a registry change without it fails here.
    text = SCHEMA_PATH.read_text()
    assert rewrite_schema(text) == text
    expected = [name for name in TRAIN_FIELDS if name not in PIPELINE_SET]
    assert list(FIELDS) == expected == list(training_schema())
    grid = SCHEMA["$defs"]["training_grid"]["properties"]
    assert list(grid) == expected
    for name, entry in grid.items():
        assert entry["items"] == {"$ref": f"#/$defs/training/properties/{name}"}, name


def test_training_field_types_and_choices_match_train_config():
    hints = typing.get_type_hints(TrainConfig)
    json_types = {int: "integer", float: "number", bool: "boolean", str: "string"}
    for field in fields(TrainConfig):
        if field.name in PIPELINE_SET:
            continue
        schema = FIELDS[field.name]
        if "enum" in schema:
            continue
        kinds = [k for k in typing.get_args(hints[field.name]) or (hints[field.name],) if k is not type(None)]
        expected = [json_types[k] for k in kinds] + (
            ["null"] if type(None) in typing.get_args(hints[field.name]) else []
        )
        assert schema["type"] == (expected[0] if len(expected) == 1 else expected), field.name
    assert FIELDS["method"]["enum"] == list(METHODS) == list(REGISTRY)
    assert FIELDS["attack"]["enum"] == list(ATTACKS)
    # tinyimages only supplies pseudo-labels: TrainConfig.validate refuses to train on it.
    assert FIELDS["dataset"]["enum"] == [d for d in DATASETS if d != "tinyimages"]
    with pytest.raises(ValueError, match="pseudo-labels only"):
        TrainConfig(dataset="tinyimages").validate()


def _inside_for(name: str) -> dict[str, Any]:
    """A config in which option ``name`` is checked: its own method for an exclusive option."""
    return {"method": OWNER.get(name, "standard")}


def _bounds(schema: dict[str, Any]):
    """(value at the bound, value past it) for each bound of a numeric field."""
    kind = schema["type"] if isinstance(schema["type"], str) else schema["type"][0]
    step = 1 if kind == "integer" else 0.01
    if "minimum" in schema:
        yield schema["minimum"], schema["minimum"] - step
    if "exclusiveMinimum" in schema:
        yield None, schema["exclusiveMinimum"]
    if "exclusiveMaximum" in schema:
        yield None, schema["exclusiveMaximum"]


_NUMERIC = [n for n, s in FIELDS.items() if {"integer", "number"} & set(np.atleast_1d(s.get("type", [])))]


@pytest.mark.parametrize("name", _NUMERIC)
def test_numeric_bounds_are_those_of_train_config_validate(name):
    schema = FIELDS[name]
    bounds = list(_bounds(schema))
    assert bounds, f"{name} has no bound in the schema"
    for inside, outside in bounds:
        # method "standard": no noise, so sigma 0 is allowed and no other rule gets in the way.
        if inside is not None:
            TrainConfig(**_inside_for(name), **{name: inside}).validate()
        with pytest.raises(ValueError, match=name):
            TrainConfig(**_inside_for(name), **{name: outside}).validate()


def test_arch_pattern_accepts_every_registered_architecture():
    pytest.importorskip("torch")
    from rsmooth.models.architectures import ARCHITECTURES

    pattern = re.compile(FIELDS["arch"]["pattern"])
    assert all(pattern.fullmatch(arch) for arch in ARCHITECTURES)
    assert not pattern.fullmatch("resnet18")


def test_top_level_section_names_are_the_properties():
    assert SCHEMA["propertyNames"]["enum"] == list(SCHEMA["properties"])


# --- broken configs: what the schema rejects, and the message users get ------------------------------


def _set(path: str, value: Any):
    """An edit setting ``config[a][b]... = value`` for the dotted ``path``."""

    def edit(config):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value

    return edit


def _rename(path: str, new: str):
    def edit(config):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[new] = node.pop(last)

    return edit


def _drop(path: str):
    def edit(config):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        del node[last]

    return edit


BROKEN = {
    "unknown method in a grid": (
        _set("experiments.cohen.grid.method", ["cutmix"]),
        ["'cutmix' is not one of", *(repr(m) for m in METHODS)],
        "['experiments']['cohen']['grid']['method'][0]",
    ),
    "negative sigma": (
        _set("training.sigma", -0.25),
        ["-0.25 is less than the minimum of 0"],
        "['training']['sigma']",
    ),
    "experiment key typo": (
        _rename("experiments.cohen.grid", "grdi"),
        ["Additional properties are not allowed ('grdi' was unexpected)"],
        "['experiments']['cohen']",
    ),
    "top-level key typo": (
        _rename("certify", "certfy"),
        ["'certfy' is not one of", "'certify'", "'experiments'"],
        "instance",
    ),
    "alpha of 0.5 or more": (
        _set("certify.alpha", 0.7),
        ["0.7 is greater than or equal to the maximum of 0.5"],
        "['certify']['alpha']",
    ),
    "unknown certification procedure": (
        _set("certify.procedure", "adaptive"),
        ["'adaptive' is not one of ['cohen', 'sequential']"],
        "['certify']['procedure']",
    ),
    "negative sequential radius": (
        _set("certify.radii", [-0.25, 0.5]),
        ["-0.25 is less than the minimum of 0"],
        "['certify']['radii'][0]",
    ),
    "zero shards": (
        _set("certify.shards", 0),
        ["0 is less than the minimum of 1"],
        "['certify']['shards']",
    ),
    "init other than imagenet32": (
        _set("experiments.pretraining.init", "imagenet"),
        ["'imagenet' is not one of ['imagenet32']"],
        "['experiments']['pretraining']['init']",
    ),
    "training field typo": (
        _set("training.learning_rate", 0.1),
        ["Additional properties are not allowed ('learning_rate' was unexpected)"],
        "['training']",
    ),
    "synthetic source without sizes": (
        _set("data.source", "synthetic"),
        ["'synthetic' is a required property"],
        "['data']",
    ),
    "grid value not a list": (
        _set("experiments.cohen.grid.sigma", 0.25),
        ["0.25 is not of type 'array'"],
        "['experiments']['cohen']['grid']['sigma']",
    ),
    "empty grid list": (
        _set("experiments.cohen.grid.sigma", []),
        ["[] should be non-empty"],
        "['experiments']['cohen']['grid']['sigma']",
    ),
    "unknown attack in set": (
        _set("experiments.smoothmix.set.attack", "fgsm"),
        ["'fgsm' is not one of", *(repr(a) for a in ATTACKS)],
        "['experiments']['smoothmix']['set']['attack']",
    ),
    "training field typo in a cell": (
        _set("experiments.smoothmix.cells", [{"sigma": 0.25, "alpha": 0.5}]),
        ["('alpha' was unexpected)"],
        "['experiments']['smoothmix']['cells'][0]",
    ),
    "pretrained set by hand": (
        _set("finetuning.pretrained", "model.pt"),
        ["('pretrained' was unexpected)"],
        "['finetuning']",
    ),
    "both grid and cells": (
        _set("experiments.cohen.cells", [{"sigma": 0.25}]),
        ["should not be valid under {'required': ['grid']}"],
        "['experiments']['cohen']",
    ),
    "neither grid nor cells": (
        _drop("experiments.cohen.grid"),
        ["'grid' is a required property"],
        "['experiments']['cohen']",
    ),
    "init without a pretraining section": (
        _drop("pretraining"),
        ["'pretraining' is a required property"],
        "instance",
    ),
    "missing experiments": (
        _drop("experiments"),
        ["'experiments' is a required property"],
        "instance",
    ),
    "experiment name with a dash": (
        _rename("experiments.cohen", "cohen-2019"),
        ["'cohen-2019' does not match"],
        "['experiments']",
    ),
    "certification sigma of zero": (
        _set("experiments.vanilla_pgd.certify_sigmas", [0.0, 0.25]),
        ["0.0 is less than or equal to the minimum of 0"],
        "['experiments']['vanilla_pgd']['certify_sigmas'][0]",
    ),
    "unknown pseudo-label source": (
        _set("pseudo_labels.labels", "carmon"),
        ["'carmon' is not one of ['shipped', 'model']"],
        "['pseudo_labels']['labels']",
    ),
    # tf32 names the TF32 arithmetic of certification and the attacks; training's fp32 is PyTorch's default.
    "tf32 training": (
        _set("training.precision", "tf32"),
        ["'tf32' is not one of ['fp32', 'bf16', 'fp16']"],
        "['training']['precision']",
    ),
    # What a nested `--config certify={shards: 4}` gives: every nested value arrives as a string.
    "nested --config value as a string": (
        _set("certify.shards", "4"),
        ["'4' is not of type 'integer'"],
        "['certify']['shards']",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_schema_rejects_broken_config_naming_the_problem(case):
    edit, messages, where = BROKEN[case]
    headline, location = rejection(broken(edit))
    for message in messages:
        assert message in headline, headline
    assert location == where, location
    assert headline.startswith(".".join(re.findall(r"\['?([^'\]]+)'?\]", where)) or "(top level)"), headline


# --- what only rsmooth.pipeline can reject -----------------------------------------------------------

PIPELINE_REJECTS = {
    "fine-tuning without the matching pre-training": (
        _set("experiments.pretraining.grid.eps", [1.0]),
        "experiments.pretraining: no pre-training cell with sigma=0.25, eps=1.0; "
        "pretraining.grid has sigma [0.25, 0.5] and eps [0.5]",
    ),
    "num_noise_vec not dividing batch_size": (
        _set("experiments.smoothmix.set.num_noise_vec", 3),
        "num_noise_vec (m) must divide batch_size: got m=3, batch_size=256",
    ),
    "noise-trained method with sigma 0": (
        _set("experiments.cohen.grid.sigma", [0.0]),
        "method 'gaussian' trains under Gaussian noise: sigma must be > 0, got 0",
    ),
    "several noise draws for a single-draw method": (
        _set("experiments.cohen.grid.num_noise_vec", [2]),
        f"num_noise_vec (m) > 1 applies to methods "
        f"{', '.join(n for n, c in REGISTRY.items() if c.noise_draws)} only, not 'gaussian'",
    ),
}


@pytest.mark.parametrize("case", list(PIPELINE_REJECTS))
def test_pipeline_rejects_what_the_schema_cannot(case):
    edit, message = PIPELINE_REJECTS[case]
    config = validated(broken(edit))  # the schema has nothing against it
    with pytest.raises(ValueError) as info:
        grid_models(config)
    assert message in str(info.value)


def test_sequential_procedure_passes_its_grid_and_cohen_keeps_its_command():
    from rsmooth.pipeline import sequential_arguments

    base = {"data": {}, "training": {}, "experiments": {"e": {"grid": {"sigma": [0.25]}}}}
    assert sequential_arguments(validated({**base, "certify": {}})) == ""
    config = validated({**base, "certify": {"procedure": "sequential"}})
    assert sequential_arguments(config) == (
        "--procedure sequential --test union --radii 0.0 0.25 0.5 0.75 1.0 1.25 1.5 1.75 2.0 2.25"
    )
    config = validated({**base, "certify": {"procedure": "sequential", "radii": [0.5, 1], "test": "mixture"}})
    assert sequential_arguments(config) == "--procedure sequential --test mixture --radii 0.5 1.0"
    with pytest.raises(ValueError, match=r"strictly increasing, got \[0.5, 0.25\]"):
        sequential_arguments(
            validated({**base, "certify": {"procedure": "sequential", "radii": [0.5, 0.25]}})
        )
