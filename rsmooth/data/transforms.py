"""Per-data-set image transforms, built from the steps each data set's spec lists (``rsmooth.dataset_info``).

The steps are those of the reference code (Cohen et al.; Salman et al.; SmoothMix):

- cifar10, imagenet32: train ``RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor``; test ``ToTensor``.
- tinyimages: as cifar10 with ``Resize((32, 32))`` first (SA ``TiTop50KDataset``); without augmentation
  ``Resize((32, 32)) + ToTensor``.
- imagenet: train ``RandomResizedCrop(224) + RandomHorizontalFlip + ToTensor``;
  test ``Resize(256) + CenterCrop(224) + ToTensor``.
- mnist: ``ToTensor`` for both splits (SmoothMix ``_mnist`` does no augmentation).

There is deliberately no normalisation here: the Gaussian noise of randomized smoothing is added in [0, 1] pixel
space, so mean/std normalisation is the model's first layer (reference facts §2.3, §10 item 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from rsmooth.dataset_info import TransformStep, dataset_spec

TransformFn = Callable[..., object]

_BUILDERS: dict[str, Callable[[TransformStep], TransformFn]] = {
    "resize": lambda T, s: T.Resize(s.size),
    "center_crop": lambda T, s: T.CenterCrop(s.size),
    "random_crop": lambda T, s: T.RandomCrop(s.size, padding=s.padding),
    "random_resized_crop": lambda T, s: T.RandomResizedCrop(s.size),
    "horizontal_flip": lambda T, s: T.RandomHorizontalFlip(),
}


class ToTensor:
    """torchvision's ``ToTensor`` for 8-bit PIL images (modes ``L`` and ``RGB``: every loader's), the same
    values bit for bit, without importing torchvision: that import takes about 2 s, and every certification
    and attack job, whose test images need nothing else, starts a process."""

    def __call__(self, pic) -> torch.Tensor:
        if pic.mode not in ("L", "RGB"):
            from torchvision.transforms import functional

            return functional.to_tensor(pic)
        array = np.array(pic, dtype=np.uint8, copy=True)
        image = torch.from_numpy(array).view(pic.size[1], pic.size[0], len(pic.getbands()))
        return image.permute((2, 0, 1)).contiguous().to(dtype=torch.get_default_dtype()).div(255)

    def __repr__(self) -> str:
        return "ToTensor()"


def compose(steps: Sequence[TransformStep]) -> TransformFn:
    """``Compose([*steps, ToTensor()])`` with each step's torchvision transform; ``ToTensor()`` alone when
    there are no steps."""
    if not steps:
        return ToTensor()
    from torchvision import transforms as T

    return T.Compose([*(_BUILDERS[s.op](T, s) for s in steps), T.ToTensor()])


def build_transform(name: str, augment: bool) -> TransformFn:
    """The PIL-image -> tensor transform the references use for data set ``name`` (with or without augmentation)."""
    spec = dataset_spec(name)
    return compose(spec.augmentation if augment else spec.preprocessing)
