"""Tests for rsmooth.models: architectures, normalization layers and checkpoints (CPU, fast)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from rsmooth.dataset_info import DATASET_SPECS
from rsmooth.errors import UntrustedCheckpointError
from rsmooth.models import (
    ARCHITECTURES,
    NORMALIZATIONS,
    InputCenterLayer,
    Normalization,
    NormalizeLayer,
    cifar_resnet,
    count_parameters,
    default_num_classes,
    get_architecture,
    load_checkpoint,
    replace_classifier_head,
    resolve_normalization,
    save_checkpoint,
)
from rsmooth.models.normalization import dataset_normalization

INPUT_SHAPES = {
    "cifar_resnet20": (3, 32, 32),
    "cifar_resnet56": (3, 32, 32),
    "cifar_resnet110": (3, 32, 32),
    "imagenet32_resnet110": (3, 32, 32),
    "resnet50": (3, 64, 64),
    "lenet": (1, 28, 28),
}
DEFAULT_CLASSES = {
    "cifar_resnet20": 10,
    "cifar_resnet56": 10,
    "cifar_resnet110": 10,
    "imagenet32_resnet110": 1000,
    "resnet50": 1000,
    "lenet": 10,
}


def _norm_for(arch: str) -> str:
    return "mnist" if arch == "lenet" else ("imagenet" if arch == "resnet50" else "cifar10")


def _trained_like(model: nn.Sequential, seed: int = 0) -> nn.Sequential:
    """Give BN running statistics non-default values, so eval-mode outputs depend on every saved tensor."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def resnet20() -> nn.Sequential:
    torch.manual_seed(0)
    return _trained_like(get_architecture("cifar_resnet20", "cifar10"))


@pytest.fixture(scope="module")
def cifar_batch() -> torch.Tensor:
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


# --------------------------------------------------------------------------------------------------- architectures


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("cifar_resnet110", 1_730_714),
        ("cifar_resnet20", 272_474),
        ("imagenet32_resnet110", 1_795_064),
        ("lenet", 431_080),
        ("resnet50", 25_557_032),
    ],
)
def test_parameter_counts(arch: str, expected: int) -> None:
    model = get_architecture(arch, _norm_for(arch))
    assert count_parameters(model) == expected
    # The normalization layer contributes nothing.
    assert count_parameters(model[1]) == expected
    assert count_parameters(model[0]) == 0


def test_count_parameters_ignores_frozen() -> None:
    model = get_architecture("lenet", "none")
    model[1].conv1.weight.requires_grad_(False)
    assert count_parameters(model) == 431_080 - 20 * 25


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_output_shapes_and_layout(arch: str) -> None:
    model = get_architecture(arch, _norm_for(arch)).eval()
    assert isinstance(model, nn.Sequential) and len(model) == 2
    x = torch.rand(2, *INPUT_SHAPES[arch])
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, DEFAULT_CLASSES[arch])
    assert torch.isfinite(out).all()
    assert not any(k.startswith("0.") for k in model.state_dict())


def test_num_classes_override_and_generic_depth() -> None:
    model = get_architecture("cifar_resnet32", "cifar10", num_classes=100)
    assert model[1].fc.out_features == 100
    assert len(model[1].layer2) == 5
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 100)


def test_reference_state_dict_keys() -> None:
    sd = get_architecture("cifar_resnet110", "cifar10").state_dict()
    for key in (
        "1.conv1.weight",
        "1.layer3.17.bn2.running_var",
        "1.fc.bias",
        "1.layer2.0.downsample.0.weight",
    ):
        assert key in sd
    assert "1.layer1.0.downsample.0.weight" not in sd  # stage 1 keeps width and stride: identity shortcut
    assert "1.layer3.18.conv1.weight" not in sd  # n = 18 blocks per stage
    assert sd["1.layer2.0.downsample.0.weight"].shape == (32, 16, 1, 1)
    assert sd["1.fc.weight"].shape == (10, 64)
    assert "1.conv1.bias" not in sd and "1.layer1.0.conv1.bias" not in sd


def test_resnet_structure_and_init() -> None:
    torch.manual_seed(0)
    net = cifar_resnet(110, 10)
    proj = net.layer3[0].downsample
    assert isinstance(proj[0], nn.Conv2d) and proj[0].stride == (2, 2) and proj[0].bias is None
    assert isinstance(proj[1], nn.BatchNorm2d)
    # Fan-out He init: std sqrt(2 / (3*3*64)) for a 64-channel 3x3 conv (73,728 draws per layer3 block x 18).
    w = torch.cat([b.conv2.weight.flatten() for b in net.layer3])
    assert w.std().item() == pytest.approx(math.sqrt(2 / (9 * 64)), rel=0.02)
    assert abs(w.mean().item()) < 0.002
    w1 = torch.cat([b.conv1.weight.flatten() for b in net.layer1])
    assert w1.std().item() == pytest.approx(math.sqrt(2 / (9 * 16)), rel=0.03)
    assert proj[0].weight.std().item() == pytest.approx(math.sqrt(2 / 64), rel=0.1)
    # A widening conv (16 -> 32) tells fan-out (9*32) from fan-in (9*16) init.
    assert net.layer2[0].conv1.weight.std().item() == pytest.approx(math.sqrt(2 / (9 * 32)), rel=0.05)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    # Spatial sizes 32 -> 32 -> 16 -> 8.
    x = torch.rand(1, 3, 32, 32)
    h = net.relu(net.bn1(net.conv1(x)))
    assert net.layer1(h).shape[-1] == 32
    assert net.layer2(net.layer1(h)).shape[-1] == 16
    assert net.layer3(net.layer2(net.layer1(h))).shape[1:] == (64, 8, 8)


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    shape = (1, -1, 1, 1)
    scale = bn.weight.view(shape) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
    return (x - bn.running_mean.view(shape)) * scale + bn.bias.view(shape)


def test_resnet_forward_matches_the_written_definition() -> None:
    """Eval-mode forward equals conv3x3-BN-ReLU-conv3x3-BN + shortcut, ReLU; AvgPool(8); fc."""
    torch.manual_seed(0)
    net = _trained_like(nn.Sequential(nn.Identity(), cifar_resnet(20, 10)))[1]
    assert isinstance(net.avgpool, nn.AvgPool2d) and net.avgpool.kernel_size == 8

    def block(b: nn.Module, x: torch.Tensor) -> torch.Tensor:
        stride = b.conv1.stride[0]
        out = torch.relu(_bn(torch.conv2d(x, b.conv1.weight, stride=stride, padding=1), b.bn1))
        out = _bn(torch.conv2d(out, b.conv2.weight, padding=1), b.bn2)
        if b.downsample is None:
            shortcut = x
        else:
            shortcut = _bn(torch.conv2d(x, b.downsample[0].weight, stride=stride), b.downsample[1])
        return torch.relu(out + shortcut)

    x = torch.rand(3, 3, 32, 32)
    h = torch.relu(_bn(torch.conv2d(x, net.conv1.weight, padding=1), net.bn1))
    for stage in (net.layer1, net.layer2, net.layer3):
        for b in stage:
            h = block(b, h)
    expected = h.mean(dim=(2, 3)) @ net.fc.weight.T + net.fc.bias
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected, rtol=1e-4, atol=1e-5)


def test_lenet_forward_matches_the_written_definition() -> None:
    """SmoothMix LeNet: conv5-ReLU-maxpool2, conv5-ReLU-maxpool2, fc 800->500, ReLU, fc 500->10."""
    torch.manual_seed(0)
    net = get_architecture("lenet", "mnist")[1]
    x = torch.rand(3, 1, 28, 28)
    h = torch.max_pool2d(torch.relu(torch.conv2d(x, net.conv1.weight, net.conv1.bias)), 2)
    h = torch.max_pool2d(torch.relu(torch.conv2d(h, net.conv2.weight, net.conv2.bias)), 2)
    assert h.shape == (3, 50, 4, 4)
    h = torch.relu(h.flatten(1) @ net.fc1.weight.T + net.fc1.bias)
    expected = h @ net.fc2.weight.T + net.fc2.bias
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("depth", [21, 2, 0, -4, 110.0])
def test_bad_depth(depth) -> None:
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar_resnet(depth, 10)


@pytest.mark.parametrize("arch", ["cifar_resnet21", "cifar_resnet2"])
def test_bad_depth_arch_name(arch: str) -> None:
    with pytest.raises(ValueError, match=arch) as info:
        get_architecture(arch, "cifar10")
    assert "6n+2" in str(info.value)


def test_unknown_arch() -> None:
    with pytest.raises(ValueError, match="'vgg16'") as info:
        get_architecture("vgg16", "cifar10")
    for name in ARCHITECTURES:
        assert name in str(info.value)


# --------------------------------------------------------------------------------------------------- normalization


def test_normalize_layer_math() -> None:
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.25, 0.5)
    layer = NormalizeLayer(mean, std)
    x = torch.rand(5, 3, 7, 9)
    out = layer(x)
    for c in range(3):
        torch.testing.assert_close(out[:, c], (x[:, c] - mean[c]) / std[c])
    # Different batch and spatial size with the same layer.
    assert layer(torch.rand(1, 3, 224, 224)).shape == (1, 3, 224, 224)


def test_input_center_layer_math() -> None:
    layer = InputCenterLayer((0.4914, 0.4822, 0.4465))
    x = torch.rand(2, 3, 4, 4)
    out = layer(x)
    for c, m in enumerate((0.4914, 0.4822, 0.4465)):
        torch.testing.assert_close(out[:, c], x[:, c] - m)


def test_registry_layers() -> None:
    x = torch.rand(2, 3, 8, 8)
    cifar = NORMALIZATIONS["cifar10"].layer()
    assert isinstance(cifar, NormalizeLayer)
    torch.testing.assert_close(
        cifar(x)[:, 1], (x[:, 1] - 0.4822) / 0.1994
    )  # the reference's per-pixel std, not 0.2435
    center = NORMALIZATIONS["cifar10_center"].layer()
    assert isinstance(center, InputCenterLayer)
    torch.testing.assert_close(center(x)[:, 2], x[:, 2] - 0.4465)
    torch.testing.assert_close(NORMALIZATIONS["imagenet"].layer()(x)[:, 0], (x[:, 0] - 0.485) / 0.229)
    assert NORMALIZATIONS["imagenet32"] == NORMALIZATIONS["cifar10"]  # Salman et al. reuse CIFAR-10 stats
    assert NORMALIZATIONS["imagenet_center"].std is None
    # SmoothMix feeds MNIST to LeNet un-normalized; `none` is the identity for any channel count.
    for name in ("mnist", "none"):
        layer = NORMALIZATIONS[name].layer()
        assert torch.equal(layer(x), x)
        assert torch.equal(layer(x[:, :1]), x[:, :1])
    for name in NORMALIZATIONS:
        if name.endswith("_center"):
            base = NORMALIZATIONS[name.removesuffix("_center")]
            assert NORMALIZATIONS[name].std is None
            if not base.is_identity:
                assert NORMALIZATIONS[name].mean == base.mean


def test_every_data_sets_normalization_layer_applies_its_spec_constants() -> None:
    expected_names = {"none"}
    for name, spec in DATASET_SPECS.items():
        channels = spec.input_shape[0]
        x = torch.rand(2, channels, 5, 5)
        if spec.normalization is None:
            assert name not in NORMALIZATIONS
            with pytest.raises(ValueError, match=f"dataset '{name}' has no normalization"):
                dataset_normalization(name)
        else:
            expected_names.add(name)
            assert dataset_normalization(name) is NORMALIZATIONS[name]
            mean = torch.tensor(spec.normalization.mean or [0.0] * channels).view(1, -1, 1, 1)
            std = torch.tensor(spec.normalization.std or [1.0] * channels).view(1, -1, 1, 1)
            torch.testing.assert_close(NORMALIZATIONS[name].layer()(x), (x - mean) / std)
            # the layer a fresh model of this data set starts with
            model = get_architecture("lenet" if channels == 1 else "cifar_resnet20", name)
            torch.testing.assert_close(model[0](x), (x - mean) / std)
        if spec.center_mean is not None:
            expected_names.add(f"{name}_center")
            mean = torch.tensor(spec.center_mean).view(1, -1, 1, 1)
            torch.testing.assert_close(NORMALIZATIONS[f"{name}_center"].layer()(x), x - mean)
    assert set(NORMALIZATIONS) == expected_names  # every name comes from a spec


def test_each_architectures_default_head_is_the_classes_of_its_data_set() -> None:
    made_for = {"lenet": "mnist", "resnet50": "imagenet", "imagenet32_resnet110": "imagenet32"}
    for arch in ARCHITECTURES:
        assert default_num_classes(arch) == DATASET_SPECS[made_for.get(arch, "cifar10")].num_classes


def test_channel_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="expects a \\[B, 3, H, W\\]"):
        NORMALIZATIONS["cifar10"].layer()(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="expects a \\[B, 1, H, W\\]"):
        NORMALIZATIONS["mnist_center"].layer()(torch.rand(2, 3, 28, 28))


def test_buffers_not_in_state_dict_but_follow_to() -> None:
    model = get_architecture("cifar_resnet20", "cifar10")
    layer = model[0]
    assert set(dict(layer.named_buffers())) == {"mean", "std"}
    assert layer.state_dict() == {}
    assert not any(k.startswith("0.") for k in model.state_dict())
    model.to(torch.float64)
    assert layer.mean.dtype == torch.float64 and layer.std.dtype == torch.float64
    model.to("meta")  # a real device move, without needing a GPU
    assert layer.mean.device.type == "meta" and layer.std.device.type == "meta"
    center = get_architecture("cifar_resnet20", "cifar10_center")[0].to("meta")
    assert center.mean.device.type == "meta" and center.state_dict() == {}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_buffers_follow_cuda() -> None:
    model = get_architecture("cifar_resnet20", "cifar10").cuda().eval()
    assert model[0].mean.is_cuda
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32, device="cuda")).is_cuda


def test_resolve_normalization() -> None:
    assert resolve_normalization("cifar10") is NORMALIZATIONS["cifar10"]
    assert resolve_normalization(" CIFAR10_center ") == NORMALIZATIONS["cifar10_center"]
    norm = Normalization(mean=[0.5], std=[0.25])
    assert norm.mean == (0.5,) and norm.std == (0.25,)
    assert resolve_normalization(norm) is norm
    assert resolve_normalization(norm.to_dict()) == norm
    for n in NORMALIZATIONS.values():
        assert Normalization.from_dict(n.to_dict()) == n
    assert NORMALIZATIONS["cifar10_center"].to_dict() == {"mean": [0.4914, 0.4822, 0.4465], "std": None}
    with pytest.raises(ValueError, match="'cifar100'") as info:
        resolve_normalization("cifar100")
    for name in ("cifar10", "cifar10_center", "imagenet", "imagenet32_center", "mnist", "none"):
        assert name in str(info.value)
    with pytest.raises(ValueError, match="allowed names"):
        resolve_normalization(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        resolve_normalization({"means": [0.5]})
    with pytest.raises(ValueError, match="channels"):
        Normalization(mean=(0.1, 0.2), std=(0.3,))
    with pytest.raises(ValueError, match="positive"):
        Normalization(mean=(0.1,), std=(0.0,))


# --------------------------------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(tmp_path, resnet20, cifar_batch) -> None:
    path = tmp_path / "sub" / "checkpoint.pth.tar"
    optimizer = torch.optim.SGD(resnet20.parameters(), lr=0.1, momentum=0.9)
    save_checkpoint(
        path,
        resnet20,
        arch="cifar_resnet20",
        epoch=150,
        normalization="cifar10",
        dataset="cifar10",
        num_classes=10,
        sigma=0.25,
        optimizer_state=optimizer.state_dict(),
        config={"lr": 0.1, "attack": "PGD"},
        best_acc=0.5,
    )
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pth.tar"]  # no temp file left over
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loads with weights_only=True: no fallback warning
        model, ckpt = load_checkpoint(path)
    assert not model.training
    with torch.no_grad():
        assert torch.equal(model(cifar_batch), resnet20(cifar_batch))
    assert ckpt["epoch"] == 150 and ckpt["arch"] == "cifar_resnet20" and ckpt["dataset"] == "cifar10"
    assert ckpt["num_classes"] == 10 and ckpt["sigma"] == 0.25 and ckpt["best_acc"] == 0.5
    assert ckpt["config"] == {"lr": 0.1, "attack": "PGD"}
    assert ckpt["normalization"] == NORMALIZATIONS["cifar10"].to_dict()
    assert ckpt["optimizer"]["param_groups"][0]["momentum"] == 0.9
    assert ckpt["rsmooth_version"]
    assert all(k.startswith("1.") for k in ckpt["state_dict"])
    assert "1.layer3.2.bn2.num_batches_tracked" in ckpt["state_dict"]


def test_checkpoint_restores_stored_normalization(tmp_path) -> None:
    torch.manual_seed(3)
    lenet = get_architecture("lenet", "mnist_center").eval()
    path = tmp_path / "lenet.pth"
    save_checkpoint(
        path, lenet, arch="lenet", epoch=1, normalization="mnist_center", dataset="mnist", num_classes=10
    )
    model, _ = load_checkpoint(path)
    assert isinstance(model[0], InputCenterLayer)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), lenet(x))
    # An explicit normalization overrides the stored one, with a warning.
    with pytest.warns(UserWarning, match="overridden"):
        model, _ = load_checkpoint(path, normalization="mnist")
    assert isinstance(model[0], nn.Identity)


def test_save_unwraps_data_parallel(tmp_path, resnet20, cifar_batch) -> None:
    path = tmp_path / "dp.pth"
    save_checkpoint(
        path,
        nn.DataParallel(resnet20),
        arch="cifar_resnet20",
        epoch=1,
        normalization="cifar10",
        dataset="cifar10",
        num_classes=10,
    )
    ckpt = torch.load(path, weights_only=True)
    assert "1.conv1.weight" in ckpt["state_dict"]
    assert not any("module." in k for k in ckpt["state_dict"])
    model, _ = load_checkpoint(path)
    with torch.no_grad():
        assert torch.equal(model(cifar_batch), resnet20(cifar_batch))


def test_save_rejects_reserved_extras(tmp_path, resnet20) -> None:
    with pytest.raises(ValueError, match="state_dict"):
        save_checkpoint(
            tmp_path / "x.pth",
            resnet20,
            arch="cifar_resnet20",
            epoch=1,
            normalization="cifar10",
            dataset="cifar10",
            num_classes=10,
            state_dict={},
        )


def _reference_checkpoint(model: nn.Sequential, layout: str) -> dict:
    """A checkpoint as Cohen et al. / Salman et al. write it: {epoch, arch, state_dict, optimizer}."""
    if layout == "1.":
        state = model.state_dict()
    elif layout == "1.module.":  # DataParallel around the network (their ImageNet models)
        state = nn.Sequential(model[0], nn.DataParallel(model[1])).state_dict()
    elif layout == "module.1.":  # DataParallel around the whole Sequential
        state = nn.DataParallel(model).state_dict()
    elif layout == "bare":
        state = model[1].state_dict()
    else:
        raise AssertionError(layout)
    assert all(k.startswith(layout) for k in state) or layout == "bare"
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    return {"epoch": 150, "arch": "cifar_resnet20", "state_dict": state, "optimizer": optimizer.state_dict()}


@pytest.mark.parametrize("layout", ["1.", "1.module.", "module.1.", "bare"])
def test_reference_checkpoint_needs_normalization(tmp_path, resnet20, cifar_batch, layout: str) -> None:
    path = tmp_path / "checkpoint.pth.tar"
    # The 2019 files predate PyTorch 1.6's zip format: write the "1." case in the legacy format.
    torch.save(_reference_checkpoint(resnet20, layout), path, _use_new_zipfile_serialization=layout != "1.")
    with pytest.raises(ValueError, match="no normalization constants") as info:
        load_checkpoint(path)
    message = str(info.value)
    for name in ("cifar10", "cifar10_center", "imagenet", "imagenet_center", "none"):
        assert f"'{name}'" in message or f"{name}," in message or f"{name} " in message
    assert "<dataset>_center" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model, ckpt = load_checkpoint(path, normalization="cifar10")
    assert ckpt["epoch"] == 150 and "normalization" not in ckpt
    assert model[1].fc.out_features == 10
    with torch.no_grad():
        assert torch.equal(model(cifar_batch), resnet20(cifar_batch))
        # A different normalization loads the same weights but gives different outputs: it really is used.
        centered, _ = load_checkpoint(path, normalization="cifar10_center")
        assert not torch.allclose(centered(cifar_batch), resnet20(cifar_batch))


def test_reference_checkpoint_infers_num_classes(tmp_path, cifar_batch) -> None:
    torch.manual_seed(5)
    model = _trained_like(get_architecture("cifar_resnet20", "cifar10", num_classes=100))
    path = tmp_path / "c100.pth"
    torch.save(
        {"epoch": 1, "arch": "cifar_resnet20", "state_dict": model.state_dict(), "optimizer": None}, path
    )
    loaded, _ = load_checkpoint(path, normalization="cifar10")
    assert loaded[1].fc.out_features == 100
    with torch.no_grad():
        assert torch.equal(loaded(cifar_batch), model(cifar_batch))


def test_old_checkpoint_without_num_batches_tracked(tmp_path, resnet20, cifar_batch) -> None:
    state = {k: v for k, v in resnet20.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old.pth"
    torch.save({"epoch": 90, "arch": "cifar_resnet20", "state_dict": state, "optimizer": None}, path)
    model, _ = load_checkpoint(path, normalization="cifar10")
    with torch.no_grad():
        assert torch.equal(model(cifar_batch), resnet20(cifar_batch))


def test_arch_mismatch_is_a_clear_error(tmp_path, resnet20) -> None:
    path = tmp_path / "r20.pth"
    save_checkpoint(
        path,
        resnet20,
        arch="cifar_resnet20",
        epoch=1,
        normalization="cifar10",
        dataset="cifar10",
        num_classes=10,
    )
    with pytest.warns(UserWarning, match="cifar_resnet56"), pytest.raises(ValueError) as info:
        load_checkpoint(path, arch="cifar_resnet56")
    message = str(info.value)
    assert "'cifar_resnet20'" in message and "'cifar_resnet56'" in message
    assert "missing" in message and "layer1.3." in message
    # Shape mismatch: the head size differs.
    with pytest.raises(ValueError, match="shape mismatch") as info:
        load_checkpoint(path, num_classes=100)
    assert "fc.weight" in str(info.value)
    # A LeNet file into a ResNet: unexpected keys are named.
    lenet_path = tmp_path / "lenet.pth"
    save_checkpoint(
        lenet_path,
        get_architecture("lenet", "mnist"),
        arch="lenet",
        epoch=1,
        normalization="mnist",
        dataset="mnist",
        num_classes=10,
    )
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="unexpected") as info:
        load_checkpoint(lenet_path, arch="cifar_resnet20")
    assert "fc1.weight" in str(info.value) and "'lenet'" in str(info.value)


def test_not_a_checkpoint(tmp_path) -> None:
    path = tmp_path / "junk.pth"
    torch.save({"epoch": 3, "weights": [1, 2]}, path)
    with pytest.raises(ValueError, match="not a model checkpoint"):
        load_checkpoint(path, arch="lenet", normalization="mnist")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pth", normalization="mnist")


class _Opaque:
    """Not on torch's weights_only allow-list: forces the full unpickler."""

    def __init__(self) -> None:
        self.value = 7


def test_objects_beyond_weights_only_need_the_explicit_trust_opt_in(tmp_path, resnet20, cifar_batch) -> None:
    # Issue 9: no silent fallback to the full unpickler any more; the file loads only with trust=True.
    path = tmp_path / "args.pth"
    ckpt = _reference_checkpoint(resnet20, "1.")
    ckpt["args"] = _Opaque()
    torch.save(ckpt, path)
    with pytest.raises(UntrustedCheckpointError, match=r"_Opaque.*--trust-checkpoint"):
        load_checkpoint(path, normalization="cifar10")
    model, raw = load_checkpoint(path, normalization="cifar10", trust=True)
    assert raw["args"].value == 7
    with torch.no_grad():
        assert torch.equal(model(cifar_batch), resnet20(cifar_batch))


# --------------------------------------------------------------------------------------------------- fine-tuning


def test_replace_classifier_head() -> None:
    torch.manual_seed(0)
    model = get_architecture("imagenet32_resnet110", "imagenet32")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    old_fc = model[1].fc
    assert replace_classifier_head(model, 10) is model
    fc = model[1].fc
    assert isinstance(fc, nn.Linear) and fc is not old_fc
    assert (fc.in_features, fc.out_features) == (64, 10)
    after = model.state_dict()
    assert set(after) == set(before)
    for k, v in after.items():
        if k.startswith("1.fc."):
            assert v.shape[0] == 10
        else:
            assert torch.equal(v, before[k]), k
    # Fresh default init (U(-1/sqrt(64), 1/sqrt(64))), not a slice of the old 1000-way head.
    assert not torch.equal(fc.weight, before["1.fc.weight"][:10])
    assert fc.weight.abs().max() <= 1 / 8 and fc.weight.std() > 0.03
    assert count_parameters(model) == 1_730_714
    with torch.no_grad():
        assert model.eval()(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_replace_classifier_head_lenet() -> None:
    model = get_architecture("lenet", "mnist")
    conv = model[1].conv1.weight.clone()
    replace_classifier_head(model, 3)
    assert model[1].fc2.out_features == 3 and model[1].fc1.out_features == 500
    assert torch.equal(model[1].conv1.weight, conv)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 3)
