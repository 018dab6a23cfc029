"""The radius grids, input dimensions and l-inf radii that the papers' tables and figures use."""

from __future__ import annotations

import numpy as np

from rsmooth.dataset_info import DATASET_SPECS, dataset_spec


def radius_grid(start: float, stop: float, step: float) -> np.ndarray:
    """Radii ``start, start + step, ..., stop`` (inclusive), each the float nearest its decimal value.

    ``np.arange(0, 1, 0.01)`` gives 0.030000000000000002 for 0.03; a logged radius of exactly 0.03 would then
    fall below its own grid point under ``radius >= r``. Rounding to 12 decimals avoids that.
    """
    count = round((stop - start) / step) + 1
    return np.round(start + step * np.arange(count), 12)


# Views of the data sets' specs (rsmooth.dataset_info, the one home of these facts), and one lookup per fact
# that names the data set and the fact when the papers give none.
INPUT_DIM = {n: s.input_dim for n, s in DATASET_SPECS.items()}
TABLE_RADII = {n: radius_grid(*s.table_radii) for n, s in DATASET_SPECS.items() if s.table_radii}
COHEN_TABLE_RADII = {
    n: radius_grid(*s.cohen_table_radii) for n, s in DATASET_SPECS.items() if s.cohen_table_radii
}
# Figures: certified accuracy is drawn every 0.01 up to the data set's plot_max_radius (Salman et al.).
PLOT_STEP = 0.01
PLOT_MAX_RADIUS = {n: s.plot_max_radius for n, s in DATASET_SPECS.items() if s.plot_max_radius}
# l-inf radii of Salman et al. Table 3 (CIFAR-10) and Table 5 (ImageNet), and the l2 radius at which the paper
# evaluated them (0.435 for CIFAR-10, exact 0.4347; 1.5 for ImageNet, exact 1.5215, so 1.5 is not a sound
# l-inf certificate at 1/255: use it only to compare with the paper).
LINF_RADIUS = {n: s.linf_radius for n, s in DATASET_SPECS.items() if s.linf_radius}
PAPER_LINF_L2_RADIUS = {n: s.paper_linf_l2_radius for n, s in DATASET_SPECS.items() if s.paper_linf_l2_radius}


def table_radii(dataset: str) -> np.ndarray:
    """The radii of the papers' certified-accuracy tables on ``dataset``."""
    return radius_grid(*dataset_spec(dataset).fact("table_radii"))


def plot_max_radius(dataset: str) -> float:
    return float(dataset_spec(dataset).fact("plot_max_radius"))


def input_dim(dataset: str) -> int:
    return dataset_spec(dataset).input_dim


def has_linf_table(dataset: str) -> bool:
    """Whether the papers publish an l-inf table for ``dataset`` (CIFAR-10 and ImageNet; not MNIST)."""
    return dataset_spec(dataset).linf_radius is not None


def linf_radius(dataset: str) -> float:
    return float(dataset_spec(dataset).fact("linf_radius"))


def paper_linf_l2_radius(dataset: str) -> float:
    return float(dataset_spec(dataset).fact("paper_linf_l2_radius"))
