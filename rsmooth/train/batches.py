"""Per-epoch batch plans: which images form each minibatch, fixed by (seed, epoch) alone.

A plan is a list of ``(indices, pseudo)`` pairs. Without pseudo-labelled data it is a shuffled pass over the
training set. With it (SmoothAdv appendix E.2, as the reference's ``MultiDatasetsDataLoader``) each batch is
either entirely labelled or entirely pseudo-labelled: the epoch has as many pseudo-labelled batches as
labelled ones, drawn from a fresh random subset of the pseudo-labelled set, in random order.

Because the plan depends only on the seed and the epoch, a run resumed at an epoch boundary sees exactly the
data order of an uninterrupted run. Under DistributedDataParallel every rank builds the same plan and takes
its own contiguous slice of each batch.
"""

from __future__ import annotations

import numpy as np

Batch = tuple[list[int], bool]


def epoch_rng(seed: int, epoch: int, stream: int = 0) -> np.random.Generator:
    """A generator determined by (seed, epoch, stream) only."""
    return np.random.default_rng([seed, epoch, stream])


def plan_epoch(
    num_labelled: int,
    batch_size: int,
    seed: int,
    epoch: int,
    *,
    num_pseudo: int = 0,
    num_batches: int | None = None,
) -> list[Batch]:
    """The epoch's batches; pseudo-labelled indices are offset by ``num_labelled`` (one concatenated set).

    The last labelled batch may be smaller, as with ``DataLoader(drop_last=False)``. ``num_batches`` (no
    pseudo-labels) makes the epoch exactly that many full batches, cut from as many fresh permutations of the
    training set as they need: a training length in SGD steps that does not depend on the set's size.
    """
    rng = epoch_rng(seed, epoch)
    if num_batches is not None:
        if num_pseudo:
            raise ValueError("num_batches does not combine with pseudo-labelled batches")
        needed = num_batches * batch_size
        order = np.concatenate([rng.permutation(num_labelled) for _ in range(-(-needed // num_labelled))])
        return [(order[i : i + batch_size].tolist(), False) for i in range(0, needed, batch_size)]
    order = rng.permutation(num_labelled)
    batches: list[Batch] = [
        (order[i : i + batch_size].tolist(), False) for i in range(0, num_labelled, batch_size)
    ]
    if num_pseudo == 0:
        return batches
    # As many pseudo-labelled batches as labelled ones; a pseudo set smaller than that is cycled.
    needed = len(batches) * batch_size
    cycles = [rng.permutation(num_pseudo) for _ in range(-(-needed // num_pseudo))]
    pseudo_order = np.concatenate(cycles)[:needed] + num_labelled
    pseudo = [(pseudo_order[i : i + batch_size].tolist(), True) for i in range(0, needed, batch_size)]
    merged = batches + pseudo
    return [merged[i] for i in rng.permutation(len(merged))]


def rank_slice(indices: list[int], rank: int, world_size: int) -> list[int]:
    """This rank's contiguous share of a global batch (sizes differ by at most one)."""
    bounds = np.linspace(0, len(indices), world_size + 1).round().astype(int)
    return indices[bounds[rank] : bounds[rank + 1]]
