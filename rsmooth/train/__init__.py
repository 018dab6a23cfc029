"""Training: Gaussian augmentation, SmoothAdv (PGD, DDN), the vanilla-PGD baselines, SmoothMix,
ImageNet32 pre-training with fine-tuning, and self-training on pseudo-labelled data."""

from rsmooth.train.loop import LOG_COLUMNS, evaluate, train
from rsmooth.train_config import ATTACKS, METHODS, TrainConfig

__all__ = ["ATTACKS", "LOG_COLUMNS", "METHODS", "TrainConfig", "evaluate", "train"]
