"""Per-data-set image transforms, exactly as in the reference code (Cohen et al.; Salman et al.; SmoothMix).

There is deliberately no normalisation here: the Gaussian noise of randomized smoothing is added in [0, 1] pixel
space, so mean/std normalisation is the model's first layer (reference facts §2.3, §10 item 1).
"""

from __future__ import annotations

from collections.abc import Callable

from torchvision import transforms as T

TransformFn = Callable[..., object]


def build_transform(name: str, augment: bool) -> TransformFn:
    """The PIL-image -> tensor transform the references use for data set ``name`` (with or without augmentation).

    - cifar10, imagenet32: train ``RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor``; test ``ToTensor``.
    - tinyimages: as cifar10 with ``Resize((32, 32))`` first (SA ``TiTop50KDataset``); without augmentation
      ``Resize((32, 32)) + ToTensor``.
    - imagenet: train ``RandomResizedCrop(224) + RandomHorizontalFlip + ToTensor``;
      test ``Resize(256) + CenterCrop(224) + ToTensor``.
    - mnist: ``ToTensor`` for both splits (SmoothMix ``_mnist`` does no augmentation), so ``augment`` is ignored.
    """
    if name in ("cifar10", "imagenet32"):
        if augment:
            return T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()])
        return T.Compose([T.ToTensor()])
    if name == "tinyimages":
        if augment:
            return T.Compose(
                [T.Resize((32, 32)), T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor()]
            )
        return T.Compose([T.Resize((32, 32)), T.ToTensor()])
    if name == "imagenet":
        if augment:
            # RandomSizedCrop in the references is the deprecated alias of RandomResizedCrop (scale (0.08, 1)).
            return T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor()])
        return T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])
    if name == "mnist":
        return T.Compose([T.ToTensor()])
    raise ValueError(
        f"unknown dataset {name!r}; expected one of: cifar10, mnist, imagenet, imagenet32, tinyimages"
    )
