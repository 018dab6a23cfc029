"""Training steps: SmoothMix's mixing and masked loss, and SmoothAdv's reuse of the attack's noise."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from rsmooth import attacks as rsmooth_attacks
from rsmooth.train.methods import REGISTRY, MethodStep, smoothmix_mix_loss, smoothmix_mixup, warmup_factor
from rsmooth.train_config import TrainConfig


def test_warmup_is_linear_from_the_first_epoch():
    assert [warmup_factor(e, 4) for e in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 1) == 1.0


def test_smoothmix_coefficients_lie_in_zero_to_half_and_labels_mix_with_uniform():
    torch.manual_seed(0)
    x_init, x_adv = torch.rand(2000, 1, 2, 2), torch.rand(2000, 1, 2, 2)
    soft = torch.softmax(torch.randn(2000, 5), dim=1)
    x_mix, y_mix, lam = smoothmix_mixup(x_init, x_adv, soft)
    assert lam.min() >= 0 and lam.max() <= 0.5
    assert lam.max() > 0.49 and lam.min() < 0.01  # uniform over [0, 1/2], not a constant
    assert lam.mean().item() == pytest.approx(0.25, abs=0.01)
    lam_x = lam.view(-1, 1, 1, 1)
    torch.testing.assert_close(x_mix, (1 - lam_x) * x_init + lam_x * x_adv)
    torch.testing.assert_close(y_mix, (1 - lam[:, None]) * soft + lam[:, None] * torch.full((5,), 0.2))
    torch.testing.assert_close(y_mix.sum(1), torch.ones(2000))


def test_smoothmix_labels_keep_the_gradient_of_the_soft_prediction():
    soft = torch.softmax(torch.randn(3, 4, requires_grad=True), dim=1)
    _, y_mix, _ = smoothmix_mixup(
        torch.rand(3, 1, 2, 2), torch.rand(3, 1, 2, 2), soft, lam=torch.full((3,), 0.25)
    )
    assert y_mix.requires_grad  # not detached, as in the official code


def test_smoothmix_mix_loss_is_masked_per_copy_kl():
    torch.manual_seed(1)
    m, batch, classes = 3, 4, 5
    mix_logits = torch.randn(batch * m, classes)
    y_mix = torch.softmax(torch.randn(batch, classes), dim=1)
    mask = torch.tensor([True, False, True, False])
    loss = smoothmix_mix_loss(mix_logits, y_mix, mask, m)
    expected = 0.0
    for i in range(batch):
        for j in range(m):
            if mask[i]:
                log_q = F.log_softmax(mix_logits[i * m + j], dim=0)
                expected += float((y_mix[i] * (y_mix[i].log() - log_q)).sum())
    assert float(loss) == pytest.approx(expected / (batch * m), rel=1e-5)  # masked rows count as zeros
    assert float(smoothmix_mix_loss(mix_logits, y_mix, torch.zeros(batch, dtype=torch.bool), m)) == 0.0


class Recorder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
        self.training_inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.training_inputs.append(x.detach().clone())
        return self.net(x)


@pytest.mark.parametrize("multi_noise", [False, True])
def test_smoothadv_trains_on_the_noise_its_attack_used(monkeypatch, multi_noise):
    seen = []
    real_attack = rsmooth_attacks.smoothadv_pgd

    def spy(model, x, y, *, eps, steps, noise):
        x_adv = real_attack(model, x, y, eps=eps, steps=steps, noise=noise)
        seen.append((x_adv, noise.clone()))
        return x_adv

    monkeypatch.setattr(rsmooth_attacks, "smoothadv_pgd", spy)
    torch.manual_seed(0)
    model = Recorder()
    config = TrainConfig(
        method="smoothadv",
        sigma=0.5,
        eps=0.5,
        steps=2,
        num_noise_vec=2,
        multi_noise=multi_noise,
        batch_size=8,
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = MethodStep(
        config, model, optimizer, torch.amp.GradScaler("cuda", enabled=False), autocast=contextlib.nullcontext
    )
    x, y = torch.rand(8, 3, 2, 2), torch.randint(0, 3, (8,))
    step(x, y)
    assert len(seen) == 2  # m chunks of B/m images
    if multi_noise:
        assert len(model.training_inputs) == 2  # one SGD step per chunk, on all m noisy copies
        for (x_adv, noise), inputs in zip(seen, model.training_inputs, strict=True):
            torch.testing.assert_close(inputs, (x_adv[:, None] + noise).flatten(0, 1))
    else:
        assert len(model.training_inputs) == 1  # one step on the first noisy copy of every image
        expected = torch.cat([x_adv + noise[:, 0] for x_adv, noise in seen])
        torch.testing.assert_close(model.training_inputs[0], expected)
    for (x_adv, _), chunk in zip(seen, x.tensor_split(2), strict=True):
        moved = (x_adv - chunk).flatten(1).norm(dim=1)
        assert (moved > 0.1).all() and (moved <= 0.5 + 1e-5).all()  # attacked within eps


# -- every registered method: learns, resumes bit for bit, evaluates with its own attacker ------------------


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    from rsmooth.data.synthetic import write_synthetic_mnist

    root = tmp_path_factory.mktemp("mnist")
    write_synthetic_mnist(root, n_train=32, n_test=8, seed=0)
    return root


def lenet(method: str, **overrides) -> TrainConfig:
    """LeNet on a 32-image MNIST stand-in: 4 batches of 8 per epoch, the method's own defaults otherwise."""
    cls = REGISTRY[method]
    values = dict(
        dataset="mnist", arch="lenet", method=method, sigma=0.0 if cls.noise_free else 0.25, epochs=3,
        batch_size=8, lr=0.05, lr_step_size=0, workers=0, test_subset=8, warmup=1, steps=2, eps=0.25,
    )  # fmt: skip
    if cls.chunked or (cls.noise_draws and REGISTRY[method].defaults.get("num_noise_vec", 1) == 1):
        values["num_noise_vec"] = 2
    values.update(overrides)
    return TrainConfig(**values).validate()


class Killed(Exception):
    pass


@pytest.mark.parametrize("method", list(REGISTRY))
def test_every_method_lowers_the_loss_and_resumes_bit_for_bit(tmp_path, mnist_root, monkeypatch, method):
    import pandas as pd

    from rsmooth.models import load_checkpoint
    from rsmooth.train import loop
    from rsmooth.train.loop import train

    config = lenet(method)
    reference = train(config, tmp_path / "full.pt", data_root=mnist_root, progress=False)
    log = pd.read_csv(tmp_path / "full.pt.log.tsv", sep="\t")
    assert log.train_loss.iloc[-1] < log.train_loss.iloc[0], log.train_loss.tolist()
    assert log.test_acc_adv.isna().all() == (not REGISTRY[method].attacking)

    real_call = loop.MethodStep.__call__
    calls = {"n": 0}

    def dying(self, x, y, weight=1.0):
        calls["n"] += 1
        if calls["n"] == 6:  # mid-way through epoch 2
            raise Killed
        return real_call(self, x, y, weight)

    monkeypatch.setattr(loop.MethodStep, "__call__", dying)
    with pytest.raises(Killed):
        train(config, tmp_path / "resumed.pt", data_root=mnist_root, progress=False)
    monkeypatch.setattr(loop.MethodStep, "__call__", real_call)
    resumed = train(config, tmp_path / "resumed.pt", data_root=mnist_root, progress=False)
    expected, got = load_checkpoint(reference)[0].state_dict(), load_checkpoint(resumed)[0].state_dict()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


def test_adversarial_evaluation_uses_the_training_attacker(monkeypatch):
    """test_acc_adv of a DDN run attacks with DDN, as the reference's test() with its training attacker."""
    from rsmooth.train.loop import evaluate

    used = []
    real_ddn = rsmooth_attacks.smoothadv_ddn

    def spy(*args, **kwargs):
        used.append(kwargs["eps"])
        return real_ddn(*args, **kwargs)

    monkeypatch.setattr(rsmooth_attacks, "smoothadv_ddn", spy)
    torch.manual_seed(0)
    model = Recorder().eval()
    data = torch.utils.data.TensorDataset(torch.rand(6, 3, 2, 2), torch.randint(0, 3, (6,)))
    config = TrainConfig(
        method="smoothadv", attack="ddn", sigma=0.25, eps=0.5, steps=2, batch_size=6, workers=0
    )
    evaluate(model, data, config, 0.25, torch.device("cpu"))
    assert used == [0.25]  # the epoch's (warmed-up) eps, given by the loop


@pytest.mark.parametrize(("maxnorm_s", "expected"), [(None, 0.5 * 1 * 0.5), (0.3, 0.3 * 0.5)])
def test_smoothmix_one_step_bound_is_alpha_times_mix_step_or_the_explicit_maxnorm_s(
    monkeypatch, maxnorm_s, expected
):
    bounds = []
    real = rsmooth_attacks.smoothmix_pgd

    def spy(*args, **kwargs):
        bounds.append(kwargs["maxnorm_s"])
        return real(*args, **kwargs)

    monkeypatch.setattr(rsmooth_attacks, "smoothmix_pgd", spy)
    config = TrainConfig(
        method="smoothmix", sigma=0.25, num_noise_vec=2, batch_size=4, steps=2, mix_step=1,
        smoothmix_alpha=0.5, smoothmix_maxnorm_s=maxnorm_s, warmup=2,
    ).validate()  # fmt: skip
    model = Recorder()
    step = MethodStep(
        config, model, torch.optim.SGD(model.parameters(), lr=0.1), torch.amp.GradScaler("cuda", enabled=False),
        autocast=contextlib.nullcontext,
    )  # fmt: skip
    step.set_epoch(0)  # warm-up factor 1/2
    step(torch.rand(4, 3, 2, 2), torch.randint(0, 3, (4,)))
    assert bounds == [pytest.approx(expected)] * 2
    assert config.decay_offset == 1  # the official train.py decays one epoch late
