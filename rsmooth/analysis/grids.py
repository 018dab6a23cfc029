"""The radius grids, input dimensions and l-inf radii that the papers' tables and figures use."""

from __future__ import annotations

import numpy as np


def radius_grid(start: float, stop: float, step: float) -> np.ndarray:
    """Radii ``start, start + step, ..., stop`` (inclusive), each the float nearest its decimal value.

    ``np.arange(0, 1, 0.01)`` gives 0.030000000000000002 for 0.03; a logged radius of exactly 0.03 would then
    fall below its own grid point under ``radius >= r``. Rounding to 12 decimals avoids that.
    """
    count = round((stop - start) / step) + 1
    return np.round(start + step * np.arange(count), 12)


# Input dimension d for the l2 -> l-inf conversion r / sqrt(d) (ImageNet at the 224x224 test crop).
INPUT_DIM = {
    "mnist": 1 * 28 * 28,
    "cifar10": 3 * 32 * 32,
    "imagenet32": 3 * 32 * 32,
    "imagenet": 3 * 224 * 224,
}

# Tables: Salman et al. (camera-ready) and Cohen et al. (released `analysis/markdown`).
TABLE_RADII = {
    "cifar10": radius_grid(0.25, 2.25, 0.25),
    "imagenet": radius_grid(0.5, 3.5, 0.5),
    "mnist": radius_grid(0.25, 2.5, 0.25),  # SmoothMix Tables 4 and 8-11
}
COHEN_TABLE_RADII = {"cifar10": radius_grid(0.25, 1.5, 0.25), "imagenet": radius_grid(0.5, 3.0, 0.5)}

# Figures: certified accuracy is drawn every 0.01 up to these radii (Salman et al.).
PLOT_STEP = 0.01
PLOT_MAX_RADIUS = {"mnist": 2.5, "cifar10": 2.25, "imagenet": 4.0}

# l-inf radii of Salman et al. Table 3 (CIFAR-10) and Table 5 (ImageNet).
LINF_RADIUS = {"cifar10": 2 / 255, "imagenet": 1 / 255}
# The l2 radius at which the paper evaluated them: 0.435 for CIFAR-10 (exact: 0.4347) and 1.5 for ImageNet
# (exact: 1.5215). 1.5 is below the exact radius, so it is not a sound l-inf certificate at 1/255; use it
# only to compare with the paper.
PAPER_LINF_L2_RADIUS = {"cifar10": 0.435, "imagenet": 1.5}
