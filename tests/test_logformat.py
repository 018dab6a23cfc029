"""The log formats' one home (rsmooth.logformat): rows, the resumable write, merging shards, and the light
scripts that start without torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rsmooth.errors import LogFormatError
from rsmooth.logformat import (
    ATTACK_HEADER,
    CERTIFY_HEADER,
    SEQUENTIAL_HEADER,
    format_attack_row,
    format_row,
    format_sequential_row,
    merge_logs,
    parse_duration,
    read_attack_log,
    read_certify_log,
    write_log,
)

ROOT = Path(__file__).resolve().parents[1]


class Killed(Exception):
    pass


def killed(chunk):
    raise Killed


def shard(path: Path, header: tuple[str, ...], rows: list[str]) -> Path:
    path.write_text("\t".join(header) + "\n" + "".join(rows))
    return path


def test_rows_of_every_kind_read_back_as_written(tmp_path):
    assert format_sequential_row(3, 2, 2, 0.5, 1.25, 400) == "3\t2\t2\t0.5\t1\t1.2500\t400\n"
    assert format_attack_row(4, 1, -1, 1, 0.5) == "4\t1\t-1\t1\t0\t0.5000\n"
    log = read_certify_log(
        shard(tmp_path / "s.tsv", SEQUENTIAL_HEADER, [format_sequential_row(0, 1, 1, 0.25, 2, 9)])
    )
    assert log["samples"].tolist() == [9] and log["radius"].tolist() == [0.25]
    attack = read_attack_log(shard(tmp_path / "a.tsv", ATTACK_HEADER, [format_attack_row(0, 1, 1, 0, 0.5)]))
    assert attack["basePredict"].tolist() == [0] and attack["correct"].tolist() == [1]


def test_write_log_calls_only_for_missing_indices_and_resumes_after_a_failure(tmp_path, capsys):
    out, calls = tmp_path / "log.tsv", []

    def rows(chunk, fail_at=None):
        calls.append(list(chunk))
        if fail_at in chunk:
            raise Killed
        return [(i, format_row(i, 0, 0, 0.5, 0.1)) for i in chunk]

    with pytest.raises(Killed):
        write_log(
            out, range(6), lambda c: rows(c, fail_at=4), settings={"n": 1}, images_per_call=2, progress=False
        )
    assert not out.exists() and (tmp_path / "log.tsv.partial").exists()
    calls.clear()
    write_log(out, list(range(6)), rows, settings={"n": 1}, images_per_call=2, progress=False)
    assert calls == [[4, 5]]  # 0-3 were kept in the partial file
    assert "resuming from" in capsys.readouterr().err
    assert out.read_text() == "\t".join(CERTIFY_HEADER) + "\n" + "".join(
        format_row(i, 0, 0, 0.5, 0.1) for i in range(6)
    )
    assert not (tmp_path / "log.tsv.partial").exists()


def test_a_deleted_log_is_rewritten_from_the_finished_runs_record_only_for_the_same_settings(
    tmp_path, capsys
):
    out, done = tmp_path / "log.tsv", tmp_path / "log.tsv.done"

    def rows(chunk):
        return [(i, format_row(i, 0, 0, 0.5, 0.1)) for i in chunk]

    write_log(out, range(4), rows, settings={"n": 1}, progress=False)
    first = out.read_text()
    assert done.exists() and not (tmp_path / "log.tsv.partial").exists()
    out.unlink()  # what Snakemake does to the outputs of a job it counts as failed
    write_log(out, range(4), killed, settings={"n": 1}, progress=False)  # not one image redone
    assert out.read_text() == first and "rewritten from" in capsys.readouterr().err
    out.unlink()
    with pytest.raises(Killed):  # other settings: the record is dropped, the work redone
        write_log(out, range(4), killed, settings={"n": 2}, progress=False)
    assert not done.exists() and not out.exists()
    # A record that lacks an index of the selection is no finished run of it either.
    (tmp_path / "log.tsv.partial").unlink()
    write_log(out, range(4), rows, settings={"n": 1}, progress=False)
    out.unlink()
    calls = []
    write_log(out, range(5), lambda c: calls.append(c) or rows(c), settings={"n": 1}, progress=False)
    assert [i for c in calls for i in c] == [0, 1, 2, 3, 4] and len(out.read_text().splitlines()) == 6


def test_write_log_refuses_other_settings(tmp_path):
    partial = tmp_path / "log.tsv.partial"
    with pytest.raises(Killed):
        write_log(tmp_path / "log.tsv", [0], killed, settings={"n": 1})
    assert partial.exists()
    with pytest.raises(ValueError, match=r"n: 1 -> 2"):
        write_log(tmp_path / "log.tsv", [0], lambda c: [], settings={"n": 2})


def test_merge_orders_rows_keeps_their_bytes_and_refuses_overlaps_and_mixed_kinds(tmp_path):
    a = shard(
        tmp_path / "a.tsv",
        CERTIFY_HEADER,
        [format_row(2, 1, 1, 0.123456789, 0.5), format_row(0, 1, -1, 0, 1)],
    )
    b = shard(tmp_path / "b.tsv", CERTIFY_HEADER, ["1\t3\t3\t1e-05\t1\t0:00:01.5\n"])
    assert merge_logs([a, b]) == [
        "\t".join(CERTIFY_HEADER),
        format_row(0, 1, -1, 0, 1).rstrip("\n"),
        "1\t3\t3\t1e-05\t1\t0:00:01.5",
        format_row(2, 1, 1, 0.123456789, 0.5).rstrip("\n"),
    ]
    with pytest.raises(LogFormatError, match="overlap"):
        merge_logs([a, a])
    attack = shard(tmp_path / "c.tsv", ATTACK_HEADER, [format_attack_row(5, 1, 1, 1, 0.5)])
    with pytest.raises(LogFormatError, match=str(attack)):
        merge_logs([a, attack])


@pytest.mark.parametrize(
    "rows",
    [["0\t1\t1\t0.5\t1\t0.1"], ["0\t1\t1\t0.5\t2\t0.1\n"], ["0\t1\t1\tnan\t1\t0.1\n"], ["0\t1\t1\t0.5\t1\n"]],
    ids=["cut", "correct-not-0-1", "not-a-number", "missing-field"],
)
def test_merge_refuses_a_shard_that_is_not_a_whole_log(tmp_path, rows):
    bad = shard(tmp_path / "bad.tsv", CERTIFY_HEADER, rows)
    with pytest.raises(LogFormatError, match=str(bad)):
        merge_logs([bad])


def test_both_time_formats():
    assert parse_duration("0.1000") == 0.1 and parse_duration("0:02:31.5") == 151.5


@pytest.mark.parametrize(
    "script", ["merge_certify", "aggregate", "figures", "runtimes", "attack_targets", "empirical"]
)
def test_light_scripts_start_without_torch(script):
    # Every Snakemake job is a new process; these run often and need neither torch nor torchvision.
    result = subprocess.run(
        [sys.executable, "-X", "importtime", str(ROOT / "scripts" / f"{script}.py"), "--help"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "torchvision"}, script
    if script not in ("figures", "empirical"):  # only the figures need matplotlib
        assert "matplotlib" not in imported, script
