"""The one loaded config (rsmooth.pipeline.load_config): the merge rule, the schema with every default, errors
that name the file and the key; the job arguments and attack runs the workflow renders from it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rsmooth.pipeline import (
    DEFAULT_ANALYSIS_RADII,
    PAPER_CONFIG,
    SCHEMA,
    AttackSetting,
    ConfigError,
    GridModel,
    attack_arguments,
    attack_runs,
    certify_arguments,
    complete_config,
    grid_models,
    load_config,
    merge_config,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DATA = yaml.safe_load(SCHEMA.read_text())


def schema_default(*path: str):
    node = SCHEMA_DATA
    for key in path:
        node = node["properties"][key]
    return node["default"]


def test_a_complete_preset_is_loaded_alone_with_every_default_filled_in():
    config = load_config(ROOT / "config/demo.yaml")
    demo = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    assert config["experiments"].keys() == demo["experiments"].keys()  # not merged over the paper config
    assert config["certify"]["procedure"] == "cohen" == schema_default("certify", "procedure")
    assert config["certify"]["precision"] == "fp32" and config["certify"]["test"] == "union"
    assert config["runtime_minutes"]["certify"] == schema_default("runtime_minutes", "certify")
    assert config["analysis"]["radii"] != DEFAULT_ANALYSIS_RADII  # the preset's own
    assert config["empirical"]["attacks"]["plugin"]["attack"] == "pgd"
    assert config["trust_checkpoints"] is False


def test_a_partial_override_is_merged_over_the_paper_config(tmp_path):
    override = tmp_path / "jobs.yaml"
    override.write_text("certify: {images_per_job: 250}\nempirical: {eps: [0.5]}\n")
    config = load_config(override)
    paper = load_config(PAPER_CONFIG)
    assert config["certify"] == {**paper["certify"], "images_per_job": 250}  # mappings merge key by key
    assert config["empirical"]["eps"] == [0.5]  # lists replace
    assert config["empirical"]["skip"] == paper["empirical"]["skip"] == 20
    assert config["experiments"] == paper["experiments"]


def test_several_files_merge_in_order_and_a_given_mapping_is_not_modified(tmp_path):
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("certify: {n: 1000, seed: 3}\n")
    second.write_text("certify: {n: 2000}\n")
    config = load_config(first, second)
    assert (config["certify"]["n"], config["certify"]["seed"]) == (2000, 3)
    given = {"certify": {"n": 10}}
    complete_config(given)
    assert given == {"certify": {"n": 10}}
    assert merge_config({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}) == {"a": {"b": 1, "c": [2]}}


def test_loading_twice_gives_the_same_config():
    config = load_config(PAPER_CONFIG)
    assert complete_config(config) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("certify: {batch: many}\n", r"certify\.batch: 'many' is not valid"),
        ("certify: {n: 0}\n", r"certify\.n: 0 is less than the minimum of 1"),
        ("certfy: {n: 10}\n", r"certfy.*is not one of"),
        ("empirical: {skip: 1.5}\n", r"empirical\.skip: 1\.5 is not of type 'integer'"),
        ("- a list\n", r"a config file is a mapping of sections, got list"),
        ("certify: {n: [\n", r"cannot read a config file"),
    ],
)
def test_a_bad_file_is_rejected_naming_the_file_and_the_key(tmp_path, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(bad)
    assert str(bad) in str(err.value)


def test_a_missing_file_is_named():
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read"):
        load_config("missing.yaml")


def test_the_library_defaults_agree_with_the_schema():
    """The defaults kept in code for users outside the pipeline are the schema's."""
    import argparse

    from rsmooth.cli import AUTO, add_certify_arguments, add_model_and_data_arguments
    from rsmooth.fastpath import DEFAULT_PRECISION
    from rsmooth.sequential import DEFAULT_TEST

    assert schema_default("analysis", "radii") == DEFAULT_ANALYSIS_RADII
    assert (
        schema_default("certify", "precision")
        == DEFAULT_PRECISION
        == schema_default("empirical", "precision")
    )
    assert schema_default("certify", "test") == DEFAULT_TEST
    parser = argparse.ArgumentParser()
    add_model_and_data_arguments(parser)
    add_certify_arguments(parser)
    certify = parser.parse_args(
        ["out.tsv", "--checkpoint", "m.pt", "--dataset", "cifar10", "--sigma", "0.25"]
    )
    assert certify.batch == AUTO == schema_default("certify", "batch")
    attack = argparse.ArgumentParser()
    add_model_and_data_arguments(attack)
    args = attack.parse_args(["out.tsv", "--checkpoint", "m.pt", "--dataset", "cifar10", "--sigma", "0.25"])
    assert (args.batch, args.alpha, args.seed) == tuple(
        schema_default("empirical", key) for key in ("batch", "alpha", "seed")
    )
    assert (certify.N0, certify.N, certify.alpha, certify.seed, certify.procedure) == tuple(
        schema_default("certify", key) for key in ("n0", "n", "alpha", "seed", "procedure")
    )


def test_job_arguments_are_rendered_from_the_used_keys_only():
    config = load_config(ROOT / "config/demo.yaml")
    model = GridModel("gaussian_sigma-0.25", {"dataset": "cifar10"}, certify_skip=2)
    certify = certify_arguments(config, model, (0, 10))
    c = config["certify"]
    assert certify == (
        f"--N0 {c['n0']} --N {c['n']} --alpha {c['alpha']} --batch {c['batch']} --skip 2 --seed {c['seed']} "
        "--start 0 --stop 10 "
    )
    # A key no command uses (here the attacks' runtime) changes no job's arguments.
    other = {**config, "runtime_minutes": {**config["runtime_minutes"], "attack": 1}}
    assert certify_arguments(other, model, (0, 10)) == certify
    sequential = {**config, "certify": {**c, "procedure": "sequential", "precision": "bf16"}}
    assert certify_arguments(sequential, model, (0, 10)).endswith(
        "--stop 10 --precision bf16 --procedure sequential --test union --radii 0.0 0.1 0.2 0.3 0.4 0.5 0.75"
    )
    e = config["empirical"]
    setting = AttackSetting("pgd", False, 4, 64)
    assert attack_arguments({**config, "trust_checkpoints": True}, setting, (2, 4)) == (
        f"--attack pgd --num-noise-vec 4 --N 64 --steps {e['steps']} --alpha {e['alpha']} --batch {e['batch']} "
        f"--skip {e['skip']} --seed {e['seed']} --start 2 --stop 4 --trust-checkpoint"
    )


def small_study() -> dict:
    return complete_config(
        {
            "data": {"source": "synthetic", "synthetic": {}},
            "training": {"dataset": "cifar10", "arch": "cifar_resnet20", "epochs": 1},
            "experiments": {
                "cohen": {"grid": {"method": ["gaussian"], "sigma": [0.25, 0.5]}},
                "adv": {"grid": {"method": ["smoothadv"], "sigma": [0.25], "eps": [0.5], "steps": [2]}},
            },
            "certify": {},
            "empirical": {
                "cells": ["gaussian_sigma-0.5"],
                "envelope": {"robust": ["adv"]},
                "eps": [0.25, 0.5],
                "attacks": {"plugin": {"num_noise": [1, 4], "n": [10]}},
            },
        }
    )


def test_attack_runs_are_the_explicit_targets_then_the_chosen_envelope_targets():
    from rsmooth.pipeline import grid_models

    config = small_study()
    models = grid_models(config)
    with pytest.raises(ValueError, match=r"envelope groups \['robust'\] need the envelope choice"):
        attack_runs(config, models)
    adv = "smoothadv-pgd_sigma-0.25_eps-0.5_T-2_m-1"
    runs = attack_runs(config, models, {"robust": {"0.5": {"cell": adv, "sigma": 0.25}}})
    # gaussian_sigma-0.5 at both eps, the group's choice at its one eps; two settings each.
    assert [(r["group"], r["cell"], r["eps"], r["setting"]) for r in runs] == [
        (None, "gaussian_sigma-0.5", 0.25, "pgd_m-1_n-10"),
        (None, "gaussian_sigma-0.5", 0.25, "pgd_m-4_n-10"),
        (None, "gaussian_sigma-0.5", 0.5, "pgd_m-1_n-10"),
        (None, "gaussian_sigma-0.5", 0.5, "pgd_m-4_n-10"),
        ("robust", adv, 0.5, "pgd_m-1_n-10"),
        ("robust", adv, 0.5, "pgd_m-4_n-10"),
    ]
    assert runs[-1]["log"] == f"results/attack/{adv}/sigma-0.25/pgd_m-4_n-10/eps-0.5.tsv"
    assert runs[-1]["certify_log"] == f"results/certify/{adv}/sigma-0.25.tsv"
    assert (runs[-1]["attack"], runs[-1]["base_attack"], runs[-1]["num_noise"], runs[-1]["n"]) == (
        "pgd",
        False,
        4,
        10,
    )


def test_a_noise_free_model_without_certification_sigmas_is_refused_naming_the_key():
    # pgd_vanilla trains at sigma 0, so the training sigma cannot be its certification default.
    config = load_config(PAPER_CONFIG)
    del config["experiments"]["vanilla_pgd"]["certify_sigmas"]
    with pytest.raises(
        ValueError, match=r"experiments\.vanilla_pgd\.certify_sigmas must be a positive number, got 0\.0"
    ):
        grid_models(config)
