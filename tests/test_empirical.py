"""Attacks on smoothed classifiers at test time: the attack on a half-space, the attack script (log, SIGKILL
and resume, shards), the released attack logs of Salman et al., their figures, and the certificate audit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import norm

from rsmooth.analysis.empirical import (
    audit_summary,
    certificate_audit,
    certified_empirical_gap,
    empirical_accuracy,
    empirical_curve,
    empirical_envelope,
)
from rsmooth.analysis.figures import plot_certified_and_empirical
from rsmooth.analysis.metrics import certified_accuracy
from rsmooth.empirical import attack_seed, attack_smoothed, ddn_gamma
from rsmooth.logformat import ATTACK_HEADER, PartialLog, read_attack_log, read_certify_log
from rsmooth.models import get_architecture
from rsmooth.smoothing import ABSTAIN, Smooth, image_seed

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "attack.py"
FIXTURES = Path(__file__).resolve().parents[2] / "shared/fixtures/salman2019"
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"Salman et al. fixtures not at {FIXTURES}")

# -- a half-space: the smoothed classifier of a linear model is the same half-space ------------------------------

SHAPE = (1, 4, 4)
SIGMA = 0.25


class HalfSpace(torch.nn.Module):
    """Class 1 where w.x + b > 0, else class 0; logits (-z, z) with z = 10 (w.x + b)."""

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w.flatten().clone())
        self.b = b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = 10 * (x.flatten(1) @ self.w + self.b)
        return torch.stack([-z, z], dim=1)


def half_space(seed: int = 0) -> tuple[HalfSpace, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(SHAPE, generator=generator)
    w /= w.norm()
    return HalfSpace(w, -float((0.5 * w).sum())), w  # the plane passes through the centre of the box


def points_at(model: HalfSpace, w: torch.Tensor, distances: list[float], label: int) -> torch.Tensor:
    """Points at the given distances from the plane, on the side of ``label``, around the centre of [0, 1]^D."""
    sign = 1 if label == 1 else -1
    return torch.stack([0.5 + sign * d * w for d in distances])


def test_pgd_on_the_smoothed_half_space_moves_along_the_normal():
    model, w = half_space()
    x = points_at(model, w, [0.3, 0.3], label=1)
    y = torch.tensor([1, 1])
    x_adv = attack_smoothed(
        model, x, y, sigma=SIGMA, eps=0.2, steps=10, num_noise=8, generator=torch.Generator().manual_seed(0)
    )
    delta = (x_adv - x).flatten(1)
    assert torch.allclose(delta.norm(dim=1), torch.tensor([0.2, 0.2]), atol=1e-5)
    cosine = (delta @ w.flatten()) / delta.norm(dim=1)
    assert torch.allclose(cosine, torch.tensor([-1.0, -1.0]), atol=1e-5)  # straight towards the plane


@pytest.mark.parametrize("label", [0, 1])
def test_beyond_the_distance_predict_is_fooled_within_it_never(label):
    model, w = half_space(1)
    distances = [0.15, 0.3, 0.45]
    x = points_at(model, w, distances, label)
    y = torch.full((3,), label)
    smooth = Smooth(model, 2, SIGMA)
    margin = 0.1
    seeds = [image_seed(5, i) for i in range(3)]
    for offset, fooled in ((margin, True), (-margin, False)):
        outcomes = []
        for i, d in enumerate(distances):
            x_adv = attack_smoothed(
                model, x[i : i + 1], y[i : i + 1], sigma=SIGMA, eps=d + offset, steps=20, num_noise=16,
                generator=torch.Generator().manual_seed(i),
            )  # fmt: skip
            outcomes.append(smooth.predict(x_adv[0], 10_000, 0.001, 5000, seed=seeds[i]))
        if fooled:
            assert all(p != label for p in outcomes), outcomes  # wrong, or abstains
        else:
            # Within the certified region g keeps the class; with n = 10,000 and a margin of 0.4 sigma
            # (pA = Phi(0.4) = 0.66) PREDICT does not abstain either.
            assert outcomes == [label] * 3, outcomes
            assert norm.cdf(margin / SIGMA) > 0.65


def test_result_does_not_depend_on_chunking_with_per_image_generators():
    model, w = half_space(2)
    x = points_at(model, w, [0.1, 0.2, 0.3, 0.4], label=0)
    y = torch.zeros(4, dtype=torch.long)

    def run(max_batch: int) -> torch.Tensor:
        generators = [torch.Generator().manual_seed(attack_seed(3, i)) for i in range(4)]
        return attack_smoothed(
            model, x, y, sigma=SIGMA, eps=0.25, steps=5, num_noise=4, attack="pgd_stein",
            generator=generators, max_batch=max_batch,
        )  # fmt: skip

    assert torch.equal(run(4), run(64))  # one image per pass vs all four in one


@pytest.mark.parametrize("attack", ["pgd", "ddn", "pgd_stein"])
def test_attacks_stay_in_the_ball_and_the_box_and_leave_the_model_alone(attack):
    torch.manual_seed(0)
    model = get_architecture("cifar_resnet20", "cifar10", 10)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(3, 3, 32, 32)
    y = torch.tensor([1, 2, 3])
    eps = 0.5
    x_adv = attack_smoothed(model, x, y, sigma=SIGMA, eps=eps, steps=3, num_noise=2, attack=attack)
    slack = 0.5 / 255 * np.sqrt(3 * 32 * 32) if attack == "ddn" else 1e-5  # DDN's final quantisation
    assert ((x_adv - x).flatten(1).norm(dim=1) <= eps + slack).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert model.training  # mode restored
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_ddn_gamma_is_predict_pys():
    assert (1 - ddn_gamma(0.5, 20)) ** 20 == pytest.approx(3 / 510 / 0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attack": "fgsm"}, "unknown attack 'fgsm'"),
        ({"attack": "pgd_stein", "base_attack": True}, "cannot be a base attack"),
        ({"attack": "pgd_stein", "num_noise": 1}, "needs num_noise"),
        ({"eps": -1.0}, "eps must be a finite number >= 0"),
        ({"steps": 0}, "steps must be a positive integer"),
    ],
)
def test_bad_attack_settings_are_refused(kwargs, message):
    model, _ = half_space()
    settings = {"sigma": SIGMA, "eps": 0.5, "steps": 2, "num_noise": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        attack_smoothed(model, torch.rand(1, *SHAPE), torch.tensor([0]), **settings)


# -- the released logs of Salman et al. ----------------------------------------------------------------------


@needs_fixtures
def test_released_attack_logs_give_the_check_values():
    folder = FIXTURES / "predict/predict_cifar_cohen/N10000/PGD_0.500"
    accuracy = {a: empirical_accuracy(read_attack_log(folder / a / "predictions")) for a in ("base", "num_1", "num_4", "num_128")}  # fmt: skip
    assert accuracy == {"base": 0.622, "num_1": 0.642, "num_4": 0.582, "num_128": 0.524}


def _released_curves(study: str, attacks: list[str]) -> dict[str, pd.DataFrame]:
    curves = {}
    for attack in attacks:
        logs = {
            float(folder.name.split("_")[1]): read_attack_log(folder / attack / "predictions")
            for folder in sorted((FIXTURES / "predict" / study).glob("PGD_*"))
            if (folder / attack / "predictions").exists()
        }
        curves[attack] = empirical_curve(logs)
    return curves


def _released_envelope(study: str) -> tuple[np.ndarray, np.ndarray]:
    table = pd.read_csv(FIXTURES / "radii_to_best_models" / study, sep=r"\s+")
    return table["radius"].to_numpy(), table["best_cert_accuracy"].to_numpy()


@needs_fixtures
def test_figures_build_from_the_released_logs(tmp_path):
    plugin = _released_curves("predict_cifar_cohen/N10000", ["num_1", "num_4", "num_16", "num_128", "base"])
    assert all(len(c) == 19 for c in plugin.values())  # eps 0 to 2.25 in steps of 0.125
    # m_test matters: more noise draws, a stronger attack (the paper's Figure 3), at every eps above 0.25.
    strong, weak = plugin["num_128"], plugin["num_1"]
    assert (strong["empirical_accuracy"][2:] <= weak["empirical_accuracy"][2:] + 0.02).all()
    assert (
        plugin["num_1"]["empirical_accuracy"][0] == plugin["base"]["empirical_accuracy"][0]
    )  # eps 0: no attack
    radii, certified = _released_envelope("cifar10_original")  # Cohen et al.'s models
    path = plot_certified_and_empirical(
        {"certified (Cohen et al.)": (radii, certified)},
        {f"empirical, {k}": (c["eps"], c["empirical_accuracy"]) for k, c in plugin.items()},
        tmp_path / "figure3.png",
        max_radius=2.25,
        title="Cohen et al.'s models attacked (N = 10,000)",
    )
    assert path.stat().st_size > 10_000
    # Certified accuracy is a lower bound of empirical accuracy, up to PREDICT's abstentions and the alphas.
    envelope = empirical_envelope(plugin)
    assert (envelope["empirical_accuracy"].to_numpy() >= certified[: len(envelope)] - 0.02).all()


# -- the certificate audit -----------------------------------------------------------------------------------


def _certify_frame(rows: list[tuple[int, int, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["idx", "label", "predict", "radius"]).assign(
        correct=lambda d: (d["predict"] == d["label"]).astype(int)
    )


def _attack_frame(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["idx", "label", "predict"]).assign(
        basePredict=0, correct=lambda d: (d["predict"] == d["label"]).astype(int)
    )


def test_audit_counts_exactly_the_contradictions():
    certify = _certify_frame(
        [(0, 1, 1, 0.8), (1, 2, 2, 0.3), (2, 3, -1, 0.0), (3, 4, 5, 1.0), (4, 0, 0, 0.5)]
    )
    attacks = {
        0.25: _attack_frame([(0, 1, 7), (1, 2, 2), (2, 3, 9), (3, 4, 4), (4, 0, -1)]),
        0.5: _attack_frame([(0, 1, 1), (1, 2, 8), (2, 3, 3), (3, 4, 5), (4, 0, 6)]),
    }
    audit = certificate_audit(certify, attacks)
    # eps 0.25: images 0 (0.8), 1 (0.3), 3 (1.0), 4 (0.5) are certified beyond it; image 2 abstained in CERTIFY.
    # eps 0.5: images 0 and 3 only (radius 0.5 is not strictly above 0.5, image 1's 0.3 is below).
    assert list(zip(audit["eps"], audit["idx"], strict=True)) == [(0.25, 0), (0.25, 1), (0.25, 3), (0.25, 4), (0.5, 0), (0.5, 3)]  # fmt: skip
    # Contradictions: image 0 at 0.25 (7, not the certified 1) and image 3 at 0.25 (4: the label, yet not the
    # certified class 5). Image 4 at 0.25 abstained: allowed, counted apart.
    assert audit.loc[audit["contradiction"], ["eps", "idx"]].values.tolist() == [[0.25, 0], [0.25, 3]]
    assert audit["abstained"].sum() == 1
    summary = audit_summary({"m": audit}, alpha_certify=0.001, alpha_predict=0.001)
    assert summary.iloc[0][["pairs", "contradictions", "abstentions_within_radius"]].tolist() == [6, 2, 1]
    assert summary.iloc[0]["above_bound"]


def test_gap_between_certified_and_empirical():
    certify = _certify_frame([(0, 1, 1, 0.8), (1, 2, 2, 0.3), (2, 3, -1, 0.0), (3, 4, 4, 1.0)])
    curve = empirical_curve({0.0: _attack_frame([(i, 1, 1) for i in range(4)]), 0.5: _attack_frame([(0, 1, 1), (1, 1, 1), (2, 1, 0), (3, 1, 0)])})  # fmt: skip
    gap = certified_empirical_gap(certify, curve)
    assert gap["certified_accuracy"].tolist() == list(certified_accuracy(certify, [0.0, 0.5]))
    assert gap["gap"].tolist() == pytest.approx([1.0 - 0.75, 0.5 - 0.5])


# -- scripts/attack.py ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(cifar10_checkpoint, tmp_path_factory):
    """(output folder of this module, data root, checkpoint)."""
    return tmp_path_factory.mktemp("attack"), cifar10_checkpoint.data_root, cifar10_checkpoint.checkpoint


def attack(setup, out: Path, *extra: str, **popen) -> subprocess.Popen:
    _, data_root, checkpoint = setup
    command = [
        sys.executable, str(SCRIPT), str(out), "--checkpoint", str(checkpoint), "--dataset", "cifar10",
        "--data-root", str(data_root), "--sigma", "0.25", "--eps", "0.5", "--steps", "2", "--num-noise-vec", "2",
        "--seed", "7", "--device", "cpu", *extra,
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finish(process: subprocess.Popen) -> str:
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return err


def table(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def test_attack_log_resumes_after_sigkill_and_equals_one_run_and_its_shards(setup):
    base = setup[0]
    args = ("--N", "192", "--batch", "96", "--stop", "10")
    whole = base / "whole.tsv"
    finish(attack(setup, whole, *args))
    rows = table(whole)
    assert rows[0] == ["idx", "label", "predict", "basePredict", "correct", "time"]
    assert [int(r[0]) for r in rows[1:]] == list(range(10))
    df = read_attack_log(whole)
    assert (df["correct"] == ((df["predict"] == df["label"]) & (df["predict"] != ABSTAIN))).all()

    killed, partial = base / "killed.tsv", base / "killed.tsv.partial"
    process = attack(setup, killed, *args, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
        partial.exists() and len(partial.read_text().splitlines()) >= 5
    ):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not killed.exists()
    done = len(partial.read_text().splitlines()) - 2
    assert 3 <= done < 10, "the kill should land mid-way"
    finish(attack(setup, killed, *args))
    no_time = lambda t: [r[:5] for r in t]  # noqa: E731
    assert no_time(table(killed)) == no_time(rows)

    shards = [base / "shard-0.tsv", base / "shard-1.tsv"]
    finish(attack(setup, shards[0], "--N", "192", "--batch", "96", "--stop", "5"))
    finish(attack(setup, shards[1], "--N", "192", "--batch", "96", "--start", "5", "--stop", "10", "--images-per-call", "3"))  # fmt: skip
    assert no_time(table(shards[0]) + table(shards[1])[1:]) == no_time(rows)


def test_a_partial_log_of_other_settings_is_refused(setup):
    base = setup[0]
    PartialLog(base / "mixed.tsv.partial", {"eps": 1.0}, header=ATTACK_HEADER)
    _, err = attack(setup, base / "mixed.tsv", "--N", "64", "--stop", "2").communicate(timeout=300)
    assert "was written with other settings" in err
    assert not (base / "mixed.tsv").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--attack", "fgsm"), "invalid choice: 'fgsm'"),
        (("--attack", "pgd_stein", "--num-noise-vec", "1"), "needs num_noise (m_test) >= 2"),
        (("--attack", "pgd_stein", "--base-attack"), "cannot be a base attack"),
        (("--eps", "-0.1"), "eps must be a finite number >= 0"),
        (("--N", "0"), "--N must be a positive integer, got 0"),
        (("--alpha", "0.5"), "--alpha must lie in (0, 0.5), got 0.5"),
    ],
)
def test_bad_arguments_fail_before_any_work(setup, extra, message):
    process = attack(setup, setup[0] / "bad.tsv", *extra)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert message in err
    assert not (setup[0] / "bad.tsv").exists()


def test_logs_in_the_reference_formats_audit_clean_when_the_class_is_kept(tmp_path):
    """Logs of one model in the reference formats (time as H:MM:SS): an attack within the radius that keeps
    the certified class passes the audit."""
    cert, atk = tmp_path / "certify.tsv", tmp_path / "predictions"
    cert.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t3\t3\t0.812\t1\t0:00:14.1\n")
    atk.write_text("idx\tlabel\tpredict\tbasePredict\tcorrect\ttime\n0\t3\t3\t5\t1\t0:00:02.5\n")
    audit = certificate_audit(read_certify_log(cert), {0.5: read_attack_log(atk)})
    summary = audit_summary({"m": audit}, 0.001, 0.001)
    assert summary.iloc[0][["pairs", "contradictions", "above_bound"]].tolist() == [1, 0, False]
