"""A small hand-made run for the figure tests: CIFAR-10 models whose keys the papers' tables hold, CERTIFY logs of
40 images at N = 256, alpha = 0.001 (so no radius exceeds sigma * Phi^-1(0.001 ** (1 / 256)))."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import norm

# The loaded config's certify section (every key filled in), at N0 = 32, N = 256.
CERTIFY = {"procedure": "cohen", "test": "union", "precision": "fp32", "n0": 32, "n": 256, "alpha": 0.001}
IMAGES = 40


def _train(method: str, sigma: float, **values) -> dict:
    base = {"method": method, "attack": "pgd", "sigma": sigma, "eps": 0.25, "steps": 2, "num_noise_vec": 1}
    return {**base, "seed": 0, "multi_noise": False, **values}


def write_log(path: Path, sigma: float, accuracy: float, seed: int) -> str:
    """A CERTIFY log: ``accuracy`` of the images certified, their p_A lower bounds spread up to the largest
    CERTIFY can give at N = 256."""
    rng = np.random.default_rng(seed)
    top = CERTIFY["alpha"] ** (1 / CERTIFY["n"])
    lines = ["idx\tlabel\tpredict\tradius\tcorrect\ttime"]
    for i in range(IMAGES):
        label = i % 10
        if rng.random() < accuracy:
            p_lower = rng.uniform(0.5, top) if rng.random() < 0.6 else top
            lines.append(f"{i}\t{label}\t{label}\t{sigma * norm.ppf(p_lower):.3f}\t1\t0.1")
        else:
            lines.append(f"{i}\t{label}\t-1\t0.0\t0\t0.1")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def figure_run(directory: Path) -> dict:
    """The grid description of the run (``results.read_grid`` reads it)."""
    models = {
        "gaussian_sigma-0.25": {"experiments": ["cohen"], "train": _train("gaussian", 0.25)},
        "gaussian_sigma-0.5": {"experiments": ["cohen"], "train": _train("gaussian", 0.5)},
        "smoothadv_eps-0.25": {"experiments": ["pgd"], "train": _train("smoothadv", 0.25)},
        "smoothadv_eps-0.5": {"experiments": ["pgd"], "train": _train("smoothadv", 0.25, eps=0.5)},
        "smoothadv_eps-0.5_m-2": {"experiments": ["pgd"], "train": _train("smoothadv", 0.25, eps=0.5, num_noise_vec=2)},
        "smoothadv_sigma-0.5": {"experiments": ["pgd"], "train": _train("smoothadv", 0.5, eps=1.0)},
    }  # fmt: skip
    accuracy = {"gaussian": 0.75, "smoothadv": 0.65}
    certifications = []
    for k, (model, entry) in enumerate(models.items()):
        sigma = entry["train"]["sigma"]
        log = write_log(directory / f"{model}.tsv", sigma, accuracy[entry["train"]["method"]], seed=k)
        certifications.append({"model": model, "sigma": sigma, "log": log})
    return {"models": models, "certifications": certifications}


ATTACK_EPS = (0.0, 0.25, 0.5)
ATTACK_SETTINGS = ({"attack": "pgd", "base_attack": False, "num_noise": 1}, {"attack": "pgd", "base_attack": False, "num_noise": 4},
                   {"attack": "pgd", "base_attack": True, "num_noise": 1})  # fmt: skip


def write_attack_log(path: Path, accuracy: float, seed: int) -> str:
    rng = np.random.default_rng(seed)
    lines = ["idx\tlabel\tpredict\tbasePredict\tcorrect\ttime"]
    for i in range(IMAGES):
        label = i % 10
        correct = rng.random() < accuracy
        lines.append(f"{i}\t{label}\t{label if correct else (label + 1) % 10}\t{label}\t{int(correct)}\t0.1")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def attack_plan(directory: Path, grid: dict) -> dict:
    """An attack plan (``empirical_report.write_empirical_analysis`` reads it): the Gaussian and a SmoothAdv
    model at sigma 0.25, each its own group, attacked at three eps with SmoothAdv-PGD (m_test 1 and 4) and
    vanilla PGD, PREDICT with n = 64; empirical accuracy falls with eps and with m_test."""
    logs = {c["model"]: c["log"] for c in grid["certifications"]}
    runs = []
    for group, model in (("cohen", "gaussian_sigma-0.25"), ("smoothadv", "smoothadv_eps-0.25")):
        for k, setting in enumerate(ATTACK_SETTINGS):
            for j, eps in enumerate(ATTACK_EPS):
                accuracy = 0.75 - eps * (0.4 + 0.2 * k) - (0.1 if group == "cohen" else 0.0) * (eps > 0)
                log = write_attack_log(directory / f"{model}_{k}_{eps}.tsv", accuracy, seed=10 * k + j)
                runs.append({"cell": model, "sigma": 0.25, "certify_log": logs[model], "group": group, "n": 64,
                             "eps": eps, "log": log, **setting})  # fmt: skip
    return {"alpha_certify": 0.001, "alpha_predict": 0.001, "runs": runs}
