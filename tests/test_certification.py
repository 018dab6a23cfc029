"""The resumable certification log: index selection, resume after a kill, shards, settings checks."""

from __future__ import annotations

import pytest
import torch

from rsmooth.certification import certify_dataset, select_indices
from rsmooth.logformat import CERTIFY_HEADER, format_row
from rsmooth.smoothing import Smooth


def test_select_indices_follows_reference_skip_and_max():
    assert select_indices(100, skip=20) == [0, 20, 40, 60, 80]
    assert select_indices(100, skip=20, max_index=60) == [0, 20, 40]
    assert select_indices(100, skip=20, max_index=50) == [0, 20, 40]  # the reference would never stop here
    assert select_indices(10) == list(range(10))


def test_shards_partition_the_selection():
    full = select_indices(10_000, skip=20)
    shards = [select_indices(10_000, skip=20, start=s, stop=s + 2500) for s in range(0, 10_000, 2500)]
    assert [i for shard in shards for i in shard] == full
    assert select_indices(100, skip=20, start=30, stop=90) == [40, 60, 80]
    assert select_indices(100, start=95, stop=200) == [95, 96, 97, 98, 99]


def test_select_indices_rejects_bad_values():
    with pytest.raises(ValueError, match="skip"):
        select_indices(10, skip=0)
    with pytest.raises(ValueError, match="start"):
        select_indices(10, start=-1)
    with pytest.raises(ValueError, match=r"\[16, 32\) holds no image of a data set of 16 images"):
        select_indices(16, start=16, stop=32)
    with pytest.raises(ValueError, match=r"\[5, 5\)"):
        select_indices(16, start=5, stop=5)


def test_row_format_has_enough_precision_and_counts_abstentions_wrong():
    assert format_row(3, 2, 2, 0.45736312, 1.5) == "3\t2\t2\t0.45736312\t1\t1.5000\n"
    assert format_row(4, 2, -1, 0.0, 0.25).split("\t")[4] == "0"
    assert format_row(5, 1, 2, 0.3, 0.25).split("\t")[4] == "0"


class Interrupt(Exception):
    pass


class ToyData(torch.utils.data.Dataset):
    """Images whose mean encodes the label; optionally raises after a number of reads (a simulated kill)."""

    def __init__(self, size: int = 12, fail_after: int | None = None) -> None:
        self.labels = [i % 3 for i in range(size)]
        self.fail_after = fail_after
        self.reads = 0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise Interrupt
        return torch.full((1, 4, 4), self.labels[i] / 2.0), self.labels[i]


def make_smooth() -> Smooth:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[-1.0] * 16, [0.0] * 16, [1.0] * 16]))
        net[1].bias.copy_(torch.tensor([4.0, 0.0, -12.0]))
    return Smooth(net, num_classes=3, sigma=0.25)


def run(path, dataset, indices, **kwargs):
    return certify_dataset(
        make_smooth(), dataset, indices, path, n0=20, n=200, alpha=0.001, batch_size=64, seed=5, **kwargs
    )


def table(path):
    lines = path.read_text().splitlines()
    return lines[0], [line.rsplit("\t", 1)[0] for line in lines[1:]]  # without the time column


def test_log_has_reference_header_and_one_row_per_index(tmp_path):
    out = run(tmp_path / "log.tsv", ToyData(), select_indices(12, skip=2))
    header, rows = table(out)
    assert header.split("\t") == list(CERTIFY_HEADER)
    assert [int(r.split("\t")[0]) for r in rows] == [0, 2, 4, 6, 8, 10]
    assert not (tmp_path / "log.tsv.partial").exists()
    assert sum(int(r.split("\t")[4]) for r in rows) >= 4  # the toy classifier is mostly right


def test_resume_after_interruption_reproduces_an_uninterrupted_run(tmp_path):
    indices = list(range(12))
    reference = run(tmp_path / "full.tsv", ToyData(), indices)
    interrupted = tmp_path / "resumed.tsv"
    with pytest.raises(Interrupt):
        run(interrupted, ToyData(fail_after=5), indices, images_per_call=2)
    assert not interrupted.exists()  # never a half-written file under the final name
    partial = tmp_path / "resumed.tsv.partial"
    assert len(partial.read_text().splitlines()) == 2 + 4  # meta, header, the two finished calls
    with open(partial, "a") as handle:
        handle.write("7\t1\t1\t0.1")  # a row torn by a kill mid-write
    dataset = ToyData()
    run(interrupted, dataset, indices, images_per_call=3)
    assert dataset.reads == 8  # only the unfinished images were certified again
    assert table(interrupted) == table(reference)
    assert not partial.exists()


def test_shards_merged_equal_one_run(tmp_path):
    full = table(run(tmp_path / "full.tsv", ToyData(), list(range(12))))
    shard_rows = []
    for start in (0, 5, 9):
        indices = select_indices(12, start=start, stop={0: 5, 5: 9, 9: 12}[start])
        shard_rows += table(run(tmp_path / f"shard{start}.tsv", ToyData(), indices))[1]
    assert shard_rows == full[1]


def test_resume_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "log.tsv"
    with pytest.raises(Interrupt):
        run(out, ToyData(fail_after=3), list(range(12)))
    with pytest.raises(ValueError, match="n: 200 -> 300"):
        certify_dataset(
            make_smooth(), ToyData(), list(range(12)), out, n0=20, n=300, alpha=0.001, batch_size=64, seed=5
        )
