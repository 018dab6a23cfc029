"""rsmooth.analysis: reading logs, metrics, the papers' tables and numbers, scorecard, figures, provenance.

The fixture tests feed Cohen et al.'s released CERTIFY logs (``shared/fixtures/cohen2019``, checked out beside
this repository) to the library and compare with tables the authors and later papers computed from them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import rsmooth.analysis as A
import rsmooth.analysis.figures as figures
import rsmooth.analysis.provenance as prov_module
from rsmooth.analysis.tables import write_html_page
from rsmooth.html_page import STYLESHEET

FIXTURES = Path(__file__).resolve().parents[2] / "shared/fixtures/cohen2019"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(),
    reason=f"Cohen et al. fixtures not found at {FIXTURES} (shared/ is not checked out)",
)
ARCH = {"cifar10": "resnet110", "imagenet": "resnet50"}
SIGMAS = {"cifar10": ["0.12", "0.25", "0.50", "1.00"], "imagenet": ["0.25", "0.50", "1.00"]}


def cohen_log(dataset: str, sigma: str, certify_sigma: str | None = None) -> Path:
    return FIXTURES / f"certify/{dataset}/{ARCH[dataset]}/noise_{sigma}/test/sigma_{certify_sigma or sigma}"


def cohen_logs(dataset: str) -> dict[str, pd.DataFrame]:
    return {s: A.read_certify_log(cohen_log(dataset, s)) for s in SIGMAS[dataset]}


def write_log(path: Path, rows: list[tuple], time: str = "1.0") -> Path:
    """A log with rows (idx, label, predict, radius[, correct]); correct defaults to predict == label."""
    lines = ["idx\tlabel\tpredict\tradius\tcorrect\ttime"]
    for row in rows:
        idx, label, predict, radius = row[:4]
        correct = row[4] if len(row) > 4 else int(predict == label)
        lines.append(f"{idx}\t{label}\t{predict}\t{radius}\t{correct}\t{time}")
    path.write_text("\n".join(lines) + "\n")
    return path


def frame(rows: list[tuple]) -> pd.DataFrame:
    """An in-memory log from (predict == label, radius) pairs; predict -1 where not correct and radius 0."""
    return pd.DataFrame(
        {
            "idx": range(len(rows)),
            "label": 0,
            "predict": [0 if c else (-1 if r == 0 else 1) for c, r in rows],
            "radius": [float(r) for _, r in rows],
            "correct": [int(c) for c, _ in rows],
        }
    )


# ------------------------------------------------------------------------------------- the authors' tables


def parse_cohen_markdown(path: Path) -> tuple[list[float], dict[str, list[tuple[str, bool]]]]:
    """Radii and, per sigma row, (value text, starred) for each cell of an ``analysis/markdown`` table."""
    lines = path.read_text().splitlines()
    radii = [float(r) for r in re.findall(r"r = ([\d.]+)", lines[0])]
    rows = {}
    for line in lines[2:]:
        sigma = re.search(r"&sigma; = ([\d.]+)", line).group(1)
        cells = [c.strip() for c in line.split("</b>|", 1)[1].split("|") if c.strip()]
        rows[sigma] = [(c.replace("<b>*</b>", ""), c.endswith("<b>*</b>")) for c in cells]
        assert len(rows[sigma]) == len(radii)
    return radii, rows


@needs_fixtures
@pytest.mark.parametrize("dataset", ["cifar10", "imagenet"])
def test_cohen_expected_tables_reproduced_exactly(dataset):
    radii, expected = parse_cohen_markdown(FIXTURES / f"expected/vary_noise_{dataset}.md")
    np.testing.assert_array_equal(radii, A.COHEN_TABLE_RADII[dataset])
    table = A.model_table(cohen_logs(dataset), radii)
    assert list(table.values.index) == list(expected)
    text = table.text()
    for sigma, cells in expected.items():
        for j, (value, starred) in enumerate(cells):
            assert text.loc[sigma].iat[j] == value, (sigma, radii[j])
            assert bool(table.best.loc[sigma].iat[j]) == starred, (sigma, radii[j])
    # The rendering marks exactly the starred cells.
    rendered = A.to_markdown(table)
    bold = len(re.findall(r"\*\*\d\.\d\d\*\*", rendered))
    assert bold == sum(starred for cells in expected.values() for _, starred in cells)


@needs_fixtures
def test_read_both_time_formats_from_fixtures():
    seconds = A.read_certify_log(cohen_log("cifar10", "0.25"))  # time as float seconds
    timedelta = A.read_certify_log(cohen_log("cifar10", "0.12"))  # time as H:MM:SS.ffffff
    assert seconds["time"].dtype == np.float64 and timedelta["time"].dtype == np.float64
    assert seconds["time"].iloc[0] == pytest.approx(15.4)
    assert timedelta["time"].iloc[0] == pytest.approx(13.736080)
    assert len(seconds) == 500 and len(A.read_certify_log(cohen_log("imagenet", "0.25"))) == 427
    assert {"idx", "label", "predict", "radius", "correct"} <= set(seconds.columns)


# ------------------------------------------------------------------------------- the papers' numbers (data)


def paper(paper_name: str, table: str, **key) -> pd.DataFrame:
    numbers = A.load_paper_numbers()
    rows = numbers[(numbers["paper"] == paper_name) & (numbers["table"] == table)]
    for column, value in key.items():
        rows = rows[rows[column] == value]
    return rows


def values_by_radius(rows: pd.DataFrame, metric: str = "certified_accuracy") -> dict[float, float]:
    rows = rows[rows["metric"] == metric]
    return {float(r): v for r, v in zip(rows["radius"], rows["value"], strict=True)}


# smoothadv-and-cohen.md 6.2: certified accuracy (clean accuracy) of the camera-ready envelopes, verified
# there against the released logs.
CHECK_CIFAR = {
    ("smoothadv", "envelope"): [
        (0.73, 0.85),
        (0.58, 0.76),
        (0.48, 0.75),
        (0.38, 0.57),
        (0.33, 0.53),
        (0.29, 0.53),
        (0.24, 0.53),
        (0.18, 0.44),
        (0.16, 0.44),
    ],
    ("gaussian", "envelope"): [
        (0.61, 0.77),
        (0.43, 0.66),
        (0.32, 0.66),
        (0.22, 0.47),
        (0.17, None),
        (0.13, None),
        (0.10, None),
        (0.07, None),
        (0.04, None),
    ],
    ("smoothadv", "envelope+pretraining"): [
        (v, None) for v in (0.80, 0.62, 0.52, 0.38, 0.34, 0.30, 0.25, 0.19, 0.16)
    ],
    ("smoothadv", "envelope+self-training"): [
        (v, None) for v in (0.80, 0.63, 0.52, 0.40, 0.34, 0.29, 0.25, 0.19, 0.17)
    ],
    ("smoothadv", "envelope+pretraining+self-training"): [
        (v, None) for v in (0.81, 0.63, 0.52, 0.37, 0.33, 0.29, 0.25, 0.18, 0.16)
    ],
}
CHECK_IMAGENET_SMOOTHADV = [
    (0.56, 0.65),
    (0.45, 0.55),
    (0.38, 0.55),
    (0.28, 0.42),
    (0.26, None),
    (0.20, None),
    (0.17, 0.35),
]
CHECK_COHEN_VARY_NOISE = {
    ("cifar10", "0.12"): [0.59, 0, 0, 0, 0, 0],
    ("cifar10", "0.25"): [0.60, 0.43, 0.27, 0, 0, 0],
    ("cifar10", "0.5"): [0.55, 0.41, 0.32, 0.23, 0.15, 0.09],
    ("cifar10", "1"): [0.39, 0.34, 0.28, 0.22, 0.17, 0.14],
    ("imagenet", "0.25"): [0.49, 0, 0, 0, 0, 0],
    ("imagenet", "0.5"): [0.46, 0.37, 0.29, 0, 0, 0],
    ("imagenet", "1"): [0.38, 0.33, 0.26, 0.19, 0.15, 0.12],
}


def test_transcribed_cells_equal_verified_check_values():
    radii = A.TABLE_RADII["cifar10"]
    for (method, setting), expected in CHECK_CIFAR.items():
        cert = values_by_radius(paper("salman2019", "Table 2", method=method, setting=setting))
        assert [cert[r] for r in radii] == pytest.approx([c for c, _ in expected]), (method, setting)
        cells = paper("salman2019", "Table 17", method=method, setting=setting)
        if len(cells):  # Table 17's "+ Both" row is not in the extracted text
            assert values_by_radius(cells) == cert
            clean = values_by_radius(cells, "clean_accuracy")
            for r, (_, c) in zip(radii, expected, strict=True):
                if c is not None:
                    assert clean[r] == pytest.approx(c), (method, setting, r)
    radii = A.TABLE_RADII["imagenet"]
    cert = values_by_radius(paper("salman2019", "Table 1", method="smoothadv"))
    clean = values_by_radius(paper("salman2019", "Table 16", method="smoothadv"), "clean_accuracy")
    for r, (c, k) in zip(radii, CHECK_IMAGENET_SMOOTHADV, strict=True):
        assert cert[r] == pytest.approx(c)
        if k is not None:
            assert clean[r] == pytest.approx(k)
    for (dataset, sigma), expected in CHECK_COHEN_VARY_NOISE.items():
        cells = values_by_radius(paper("cohen2019", f"vary_noise_{dataset}", sigma=sigma))
        assert [cells[r] for r in A.COHEN_TABLE_RADII[dataset]] == pytest.approx(expected), (dataset, sigma)


def test_paper_data_is_well_formed():
    numbers, tables = A.load_paper_numbers(), A.load_paper_tables()
    assert set(numbers["metric"]) <= set(A.paper.METRICS)
    rates = numbers[numbers["metric"] != "acr"]["value"]
    assert ((rates >= 0) & (rates <= 1)).all()
    assert (numbers["precision"] > 0).all()
    # Within one table a key names one cell.
    assert not numbers.duplicated(["paper", "table", *A.KEY_COLUMNS]).any()
    assert set(zip(numbers["paper"], numbers["table"], strict=True)) == set(
        zip(tables["paper"], tables["table"], strict=True)
    )
    assert (tables["title"] != "").all() and (tables["source"] != "").all()
    # The transcribed tables the issue asks for are all there.
    for name in ["Table 1", "Table 2", "Table 3", "Table 4", "Table 5", "Table 6", "Table 16", "Table 17"]:
        assert len(paper("salman2019", name)), name
    assert len(paper("jeong2021", "Table 6 (appendix)", metric="acr")) == 7


@needs_fixtures
def test_paper_cohen_rows_reproduced_from_released_logs():
    """Salman et al. print Cohen et al.'s per-sigma rows (Tables 6 and 7, 500 images); the fixtures give them."""
    for table, dataset in [("Table 6", "imagenet"), ("Table 7", "cifar10")]:
        rows = paper("salman2019", table, method="gaussian")
        assert len(rows) == len(SIGMAS[dataset]) * (len(A.TABLE_RADII[dataset]) + 1)
        for sigma, cells in rows.groupby("sigma"):
            df = A.read_certify_log(cohen_log(dataset, f"{float(sigma):.2f}"))
            radii = cells["radius"].astype(float).to_numpy()
            got = [f"{v:.2f}" for v in A.certified_accuracy(df, radii)]
            assert got == [f"{v:.2f}" for v in cells["value"]], (table, sigma)


@needs_fixtures
def test_envelope_and_linf_reproduce_salman_cohen_rows():
    """Table 16's Cohen row (envelope over sigma, with clean accuracy) and Table 5's (l-inf at 1/255)."""
    logs = cohen_logs("imagenet")
    best = A.best_per_radius(logs, A.TABLE_RADII["imagenet"])
    assert list(best.columns) == ["radius", "model", "certified_accuracy", "clean_accuracy"]
    cells = paper("salman2019", "Table 16", method="gaussian")
    assert [f"{v:.2f}" for v in best["certified_accuracy"]] == [
        f"{v:.2f}" for v in values_by_radius(cells).values()
    ]
    assert [f"{v:.2f}" for v in best["clean_accuracy"]] == [
        f"{v:.2f}" for v in values_by_radius(cells, "clean_accuracy").values()
    ]
    run = A.linf_cells(logs, dataset="imagenet", method="gaussian")
    card = A.scorecard(paper("salman2019", "Table 5"), run)
    cohen = card[card["method"] == "gaussian"]
    assert list(cohen["status"]) == ["match", "match"]  # 28.6 and 57.2, at the paper's l2 radius 1.5
    assert (card[card["method"] == "smoothadv"]["status"] == "not run").all()
    # The sound conversion (1/255 * sqrt(3 * 224^2) = 1.52) certifies fewer images.
    exact = A.linf_table({"Cohen": logs}, "imagenet")
    assert exact.values.iat[0, 0] < 0.286


@needs_fixtures
def test_scorecard_on_released_logs_matches_smoothmix_gaussian_rows():
    """SmoothMix's Gaussian rows (CIFAR-10 sigma = 1; ImageNet sigma = 0.5, 1) come from Cohen et al.'s logs."""
    numbers = A.load_paper_numbers()
    cases = [("cifar10", "1.00", 1.0, "Table 6 (appendix)"), ("imagenet", "0.50", 0.5, "Table 7 (appendix)")]
    cases.append(("imagenet", "1.00", 1.0, "Table 7 (appendix)"))
    for dataset, folder, sigma, table in cases:
        cells = numbers[
            (numbers["table"] == table)
            & (numbers["method"] == "gaussian")
            & (numbers["sigma"] == f"{sigma:g}")
        ]
        radii = cells.loc[cells["metric"] == "certified_accuracy", "radius"].astype(float)
        run = A.model_cells(
            A.read_certify_log(cohen_log(dataset, folder)),
            radii,
            dataset=dataset,
            method="gaussian",
            sigma=sigma,
        )
        card = A.scorecard(cells, run)
        assert len(card) == len(cells) and (card["status"] == "match").all(), card[card["status"] != "match"]


# --------------------------------------------------------------------------------------------- reading logs


def test_parse_duration_formats():
    assert A.parse_duration("15.4") == 15.4
    assert A.parse_duration(3) == 3.0
    assert A.parse_duration("0:02:31.238689") == pytest.approx(151.238689)
    assert A.parse_duration("0:00:14") == 14.0
    assert A.parse_duration("1 day, 0:00:01.5") == pytest.approx(86401.5)
    with pytest.raises(ValueError, match="duration"):
        A.parse_duration("2 minutes")


def test_read_log_with_timedelta_comment_line_and_any_radius_precision(tmp_path):
    path = tmp_path / "log.tsv"
    path.write_text(
        '# rsmooth-certify {"n": 100000}\n'
        "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
        "0\t3\t3\t0.75\t1\t0:00:14.206886\n"
        "20\t7\t7\t0.74999999\t1\t1 day, 0:00:00\n"
        "40\t1\t1\t0.750000001234\t1\t12.5\n"
    )
    df = A.read_certify_log(path)
    assert list(df["idx"]) == [0, 20, 40]
    assert list(df["time"]) == pytest.approx([14.206886, 86400.0, 12.5])
    assert df.attrs["path"] == str(path)
    # "0.75" is exactly 0.75 (certified at r = 0.75); 0.74999999 is not.
    assert A.certified_accuracy(df, [0.75])[0] == pytest.approx(2 / 3)


def test_duplicate_indices_are_a_clear_error(tmp_path):
    path = write_log(tmp_path / "shards.tsv", [(0, 1, 1, 0.5), (20, 2, 2, 0.4), (0, 1, 1, 0.5)])
    with pytest.raises(ValueError, match=r"shards\.tsv.*duplicate idx 0\b"):
        A.read_certify_log(path)


def test_not_a_log_is_a_clear_error(tmp_path):
    path = tmp_path / "predictions.tsv"
    path.write_text("idx\tlabel\tpredict\tcorrect\ttime\n0\t1\t1\t1\t1.0\n")
    with pytest.raises(ValueError, match=r"predictions\.tsv.*missing columns \['radius'\]"):
        A.read_certify_log(path)


# ------------------------------------------------------------------------------------------------ edge cases


def test_empty_log_reads_but_has_no_accuracy(tmp_path):
    path = write_log(tmp_path / "empty.tsv", [])
    df = A.read_certify_log(path)
    assert len(df) == 0
    for metric in (
        lambda d: A.certified_accuracy(d, [0.5]),
        A.average_certified_radius,
        A.abstention_rate,
        lambda d: A.high_probability_accuracy(d, [0.5]),
    ):
        with pytest.raises(ValueError, match=r"empty\.tsv: the log has no rows"):
            metric(df)
    with pytest.raises(ValueError, match="model 'empty'"):
        A.best_per_radius({"empty": df}, [0.5])


def test_all_abstain_log_gives_zeros(tmp_path):
    df = A.read_certify_log(write_log(tmp_path / "abstain.tsv", [(i, i % 10, -1, 0.0) for i in range(5)]))
    np.testing.assert_array_equal(A.certified_accuracy(df, [0.0, 0.25, 1.0]), [0.0, 0.0, 0.0])
    assert A.clean_accuracy(df) == 0.0
    assert A.average_certified_radius(df) == 0.0
    assert A.abstention_rate(df) == 1.0


def test_radii_beyond_the_largest_certified_radius_give_zero():
    df = frame([(True, 0.5), (True, 1.2), (False, 0.0)])
    np.testing.assert_allclose(
        A.certified_accuracy(df, [0.0, 0.5, 1.2, 1.2000001, 5.0]), [2 / 3, 2 / 3, 1 / 3, 0, 0]
    )
    best = A.best_per_radius({"a": df, "b": frame([(True, 0.3)])}, [10.0])
    assert best["certified_accuracy"].iloc[0] == 0.0
    assert best["model"].iloc[0] == "b"  # all tied at 0: the higher clean accuracy (1.0 > 0.67) wins


# ------------------------------------------------------------------------------------------------- metrics


def test_certified_accuracy_counts_abstentions_and_wrong_predictions_as_wrong():
    df = pd.DataFrame(
        {
            "idx": range(4),
            "label": [0, 0, 0, 0],
            "predict": [0, 1, -1, 0],
            "radius": [0.5, 0.9, 0.0, 1.5],
            "correct": [1, 0, 0, 1],
        }
    )
    np.testing.assert_allclose(A.certified_accuracy(df, [0.0, 0.5, 0.6, 1.5]), [0.5, 0.5, 0.25, 0.25])
    # ACR by hand: (0.5 + 1.5) / 4, the wrong row's radius 0.9 does not count.
    assert A.average_certified_radius(df) == pytest.approx(0.5)
    assert A.acr(df) == A.average_certified_radius(df)
    assert A.abstention_rate(df) == pytest.approx(0.25)


def test_best_per_radius_breaks_ties_by_clean_accuracy():
    # At r = 0.5 both certify 2/4; "low" has clean accuracy 2/4, "high" 3/4.
    low = frame([(True, 0.6), (True, 0.7), (False, 0), (False, 0)])
    high = frame([(True, 0.6), (True, 0.7), (True, 0.1), (False, 0)])
    best = A.best_per_radius({"low": low, "high": high}, [0.5])
    assert best.iloc[0].to_dict() == {
        "radius": 0.5,
        "model": "high",
        "certified_accuracy": 0.5,
        "clean_accuracy": 0.75,
    }
    # Certified accuracy decides before clean accuracy does.
    sharp = frame([(True, 0.6), (True, 0.7), (True, 0.65), (False, 0)])
    clean = frame([(True, 0.2), (True, 0.3), (True, 0.1), (True, 0.1)])
    best = A.best_per_radius({"clean": clean, "sharp": sharp}, [0.0, 0.5])
    assert list(best["model"]) == ["clean", "sharp"]
    # A full tie goes to the model listed first.
    assert A.best_per_radius({"x": low, "y": low.copy()}, [0.5])["model"].iloc[0] == "x"


def test_linf_conversion():
    d_cifar, d_imagenet = A.INPUT_DIM["cifar10"], A.INPUT_DIM["imagenet"]
    assert d_cifar == 3072 and d_imagenet == 150528
    assert A.l2_to_linf(math.sqrt(3072) * 2 / 255, d_cifar) == pytest.approx(2 / 255)
    assert A.linf_to_l2(2 / 255, d_cifar) == pytest.approx(0.43471, abs=1e-5)  # the paper's "0.435"
    assert A.linf_to_l2(1 / 255, d_imagenet) == pytest.approx(1.52149, abs=1e-5)  # the paper's "1.5"
    np.testing.assert_allclose(A.l2_to_linf(np.array([0.5, 1.0]), 4), [0.25, 0.5])


def test_high_probability_bound_formula():
    df = frame([(True, 1.0)] * 300 + [(False, 0.0)] * 200)  # n = 500, certified accuracy 0.6 at r <= 1
    # 0.6 - 0.001 - sqrt(0.001 * 0.999 * ln(1000) / 500) - ln(1000) / 1500, computed by hand:
    assert A.high_probability_accuracy(df, [0.5])[0] == pytest.approx(0.5906797, abs=1e-6)
    got = A.high_probability_accuracy(df, [0.5, 2.0], alpha=0.01, rho=0.05)
    slack = 0.01 + math.sqrt(0.01 * 0.99 * math.log(20) / 500) + math.log(20) / 1500
    np.testing.assert_allclose(got, [0.6 - slack, -slack])


def test_radius_grid_is_exact_at_decimal_points():
    grid = A.radius_grid(0.0, 1.0, 0.01)
    assert len(grid) == 101 and grid[3] == 0.03 and grid[-1] == 1.0
    np.testing.assert_array_equal(
        A.TABLE_RADII["cifar10"], [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25]
    )


def test_representative_model_is_highest_acr():
    logs = {0.25: {"a": frame([(True, 0.2)]), "b": frame([(True, 0.4)])}, 0.5: {"c": frame([(True, 0.9)])}}
    assert A.representative_models(logs) == {0.25: "b", 0.5: "c"}


# -------------------------------------------------------------------------------------------------- tables


@pytest.fixture
def small_logs():
    return {
        # certified accuracy 0.75, 0.5, 0.25 at r = 0, 0.25, 0.5
        "σ = 0.25": frame([(True, 0.6), (True, 0.3), (True, 0.1), (False, 0)]),
        # 0.5, 0.5, 0.5, then 0.25 at r = 1
        "σ = 0.50": frame([(True, 1.2), (True, 0.6), (False, 0), (False, 0)]),
    }


def test_model_table_marks_best_per_column_in_every_format(small_logs):
    table = A.model_table(small_logs, [0.0, 0.25, 0.5, 1.0, 2.0])
    best = table.best.to_numpy()
    # r=0: first; r=0.25: tie (both marked); r=0.5 and 1: second; r=2: all zero, nothing marked.
    np.testing.assert_array_equal(best, [[True, True, False, False, False], [False, True, True, True, False]])
    md = A.to_markdown(table)
    assert "| σ = 0.25 | **0.75** | **0.50** | 0.25 | 0.00 | 0.00 |" in md
    assert "| σ = 0.50 | 0.50 | **0.50** | **0.50** | **0.25** | 0.00 |" in md
    tex = A.to_latex(table)
    assert r"$\sigma$ = 0.25 & \textbf{0.75} & \textbf{0.50} & 0.25 & 0.00 & 0.00 \\" in tex
    html = A.to_html(table)
    assert html.count('class="best"') == int(best.sum())
    csv = pd.read_csv(pd.io.common.StringIO(A.to_csv(table)), comment="#")
    assert list(csv.columns) == ["model", "radius", "certified_accuracy", "best"]
    assert csv["best"].sum() == best.sum() and csv["certified_accuracy"].iloc[0] == 0.75


def test_envelope_abstention_linf_and_acr_tables(small_logs):
    groups = {"ours": small_logs, "single": {"σ = 0.25": small_logs["σ = 0.25"]}}
    env = A.envelope_table(groups, [0.25, 0.5])
    assert env.values.loc["ours"].tolist() == [0.5, 0.5]
    md = A.to_markdown(env)
    # Tie at r = 0.25 between the two sigmas inside "ours": the higher clean accuracy (0.75) is shown.
    assert "| ours | (0.75) **0.50** | (0.50) **0.50** |" in md
    assert "| single | (0.75) **0.50** | (0.75) 0.25 |" in md
    assert r"$^{(0.75)}$\textbf{0.50}" in A.to_latex(env)
    abst = A.abstention_table(groups, [0.25, 0.5])
    # The sigma 0.25 model abstains on 1/4 of its rows, the sigma 0.50 model on 2/4.
    assert abst.values.loc["ours"].tolist() == [0.25, 0.5]
    assert "| ours | 25.0 | 50.0 |" in A.to_markdown(abst)
    per_sigma = A.per_sigma_envelope_table({0.25: small_logs, 0.5: {"x": small_logs["σ = 0.50"]}}, [0.5])
    assert list(per_sigma.values.index) == ["σ = 0.25", "σ = 0.5"]
    # Exact labels: sigma 0.12 and 0.125 are two rows (with "{:.2f}" both were "0.12" and one vanished).
    close = A.per_sigma_envelope_table({0.12: small_logs, 0.125: small_logs}, [0.5])
    assert list(close.values.index) == ["σ = 0.12", "σ = 0.125"]
    linf = A.linf_table(groups, "cifar10")  # l2 radius 0.4347
    assert linf.values.iloc[:, 0].tolist() == [0.5, 0.25] and linf.values.iloc[:, 1].tolist() == [0.5, 0.75]
    assert "ℓ∞ acc. at 2/255" in linf.values.columns
    acr = A.acr_table(small_logs, [0.0, 0.5])
    assert acr.values.loc["σ = 0.50"].tolist() == ["0.450", "50.0", "50.0"]
    assert acr.best.loc["σ = 0.50", "ACR"] and not acr.best.loc["σ = 0.25", "ACR"]


def test_table_pages_and_report_pages_share_the_one_skeleton_and_stylesheet(tmp_path, small_logs):
    table_page = A.to_html(A.model_table(small_logs, [0.25]))
    report_page = write_html_page(tmp_path / "p.html", "Scorecard", "<p>body</p>", {"seed": 0}).read_text()
    for text in (table_page, report_page):
        assert text.startswith('<!DOCTYPE html>\n<html lang="en">') and f"<style>{STYLESHEET}</style>" in text
        assert text.endswith("</body>\n</html>\n")
    assert table_page.count("<table") == 1 and "<h1>" not in table_page
    body = (
        "<h1>Scorecard</h1>\n<p>body</p>\n<footer><small>provenance: {&quot;seed&quot;: 0}</small></footer>"
    )
    assert f"<body>\n{body}\n</body>" in report_page


def test_write_table_embeds_provenance_in_every_format(tmp_path, small_logs):
    record = A.collect_provenance({"dataset": "cifar10"}, seeds={"certify": 0})
    paths = A.write_table(
        A.model_table(small_logs, [0.25]), tmp_path / "tables" / "sigma_0.25", provenance=record
    )
    assert [p.name for p in paths] == ["sigma_0.25.csv", "sigma_0.25.md", "sigma_0.25.tex", "sigma_0.25.html"]
    csv, md, tex, html = (p.read_text() for p in paths)
    assert csv.startswith("# rsmooth provenance: {")
    assert json.loads(csv.splitlines()[0].split(": ", 1)[1])["config_hash"] == record["config_hash"]
    assert "<!-- rsmooth provenance:" in md and tex.startswith("% rsmooth provenance:")
    assert '<footer class="provenance">' in html and record["config_hash"] in html
    assert not list((tmp_path / "tables").glob(".*.tmp"))  # atomic writes leave no temporaries
    with pytest.raises(ValueError, match="unknown table formats"):
        A.write_table(A.model_table(small_logs, [0.25]), tmp_path / "x", formats=["xlsx"])


# ------------------------------------------------------------------------------------------------- figures


def test_figures_are_written(tmp_path, small_logs):
    record = A.collect_provenance()
    paths = [
        figures.plot_certified_accuracy(
            small_logs, tmp_path / "curves.png", max_radius=2.25, provenance=record
        ),
        figures.plot_envelopes(
            {"ours": small_logs, "cohen": {"a": small_logs["σ = 0.25"]}},
            tmp_path / "envelopes.svg",
            max_radius=2.25,
            styles={"cohen": {"linestyle": "--"}},
            provenance=record,
        ),
        figures.plot_ablation(
            {"σ = 0.25": {"1": small_logs["σ = 0.25"], "2": small_logs["σ = 0.50"]}, "σ = 0.50": small_logs},
            tmp_path / "ablation_m.png",
            parameter="m_train",
            max_radius=2.0,
        ),
    ]
    for path in paths:
        assert path.exists() and path.stat().st_size > 1000
    png = paths[0].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and b"rsmooth provenance" in png
    assert "rsmooth provenance" in paths[1].read_text()
    with pytest.raises(ValueError, match="figures are written as"):
        figures.plot_certified_accuracy(small_logs, tmp_path / "curves.pdf", max_radius=1.0)


# ----------------------------------------------------------------------------------------------- scorecard


def test_scorecard_differences_and_not_run_cells():
    numbers = paper("salman2019", "Table 2", method="smoothadv", setting="envelope")  # 73, 58, 48, ...
    run = pd.DataFrame(
        {
            "dataset": "cifar10",
            "method": "smoothadv",
            "setting": "envelope",
            "sigma": None,
            "metric": "certified_accuracy",
            "radius": ["0.25", 0.50, 0.75],  # text and numbers both match the paper's key
            "value": [0.7349, 0.60, 0.40],
        }
    )
    card = A.scorecard(numbers, run)
    assert len(card) == 9
    by_radius = card.set_index("radius")
    assert by_radius.loc["0.25", "status"] == "match"  # 73.49% prints as 73
    assert by_radius.loc["0.5", "status"] == "differs"
    assert by_radius.loc["0.5", "difference"] == pytest.approx(0.02)
    assert by_radius.loc["0.75", "difference"] == pytest.approx(-0.08)
    not_run = card[card["run_value"].isna()]
    assert len(not_run) == 6 and (not_run["status"] == "not run").all()
    assert A.scorecard(numbers, run, tolerance=0.05).set_index("radius").loc["0.5", "status"] == "match"
    summary = A.scorecard_summary(card)
    assert summary[["run", "match", "differs", "beyond reach", "not run"]].iloc[0].tolist() == [3, 1, 2, 0, 6]
    md = A.to_markdown(A.scorecard_table(card))
    # Without images or reach a value is its own interval (equal after rounding) and never beyond reach.
    assert "| salman2019 | Table 2 | Ours | r = 0.5 | 58.0 | 60.0 | – | – | – | +2.0 | differs |" in md
    assert "| salman2019 | Table 2 | Ours | r = 2.25 | 16.0 | – | – | – | – | – | not run |" in md


def test_scorecard_rejects_ambiguous_run_values():
    numbers = paper("salman2019", "Table 2", method="smoothadv", setting="envelope")
    run = pd.DataFrame(
        {
            "dataset": "cifar10",
            "method": "smoothadv",
            "setting": "envelope",
            "sigma": "",
            "metric": "certified_accuracy",
            "radius": [0.25, 0.250],
            "value": [0.7, 0.8],
        }
    )
    with pytest.raises(ValueError, match="repeated key"):
        A.scorecard(numbers, run)


def test_max_certifiable_radius_is_sigma_times_the_inverse_normal_of_alpha_to_the_one_over_n():
    from scipy.stats import norm

    from rsmooth.smoothing import certified_radius, lower_confidence_bound

    for sigma, n, alpha in [(0.25, 256, 0.001), (0.5, 100_000, 0.001), (1.0, 10, 0.05)]:
        formula = sigma * norm.ppf(alpha ** (1 / n))
        assert A.max_certifiable_radius(sigma, n, alpha) == pytest.approx(formula, rel=1e-9)
        # What CERTIFY itself returns when all n draws vote for the class.
        assert A.max_certifiable_radius(sigma, n, alpha) == pytest.approx(
            certified_radius(lower_confidence_bound(n, n, alpha), sigma), rel=1e-9
        )
    assert A.max_certifiable_radius(0.25, 256, 0.001) == pytest.approx(0.4832, abs=1e-4)  # the demo's
    # Sequential: the top grid radius certified with every one of n_max draws for the class.
    grid = [0.0, 0.25, 0.5, 0.75, 1.0]
    small = A.max_certifiable_radius(0.25, 256, 0.001, procedure="sequential", radii=grid)
    assert small in grid and small < A.max_certifiable_radius(0.25, 256, 0.001)
    assert A.max_certifiable_radius(0.25, 100_000, 0.001, procedure="sequential", radii=grid) == 0.75
    with pytest.raises(ValueError, match="procedure"):
        A.max_certifiable_radius(0.25, 256, 0.001, procedure="monte-carlo")


def _hand_made_log(path: Path, radii: list[float]) -> pd.DataFrame:
    """A CERTIFY log, one image per radius: a positive radius is a correct certificate, -1 an abstention."""
    from rsmooth.logformat import CERTIFY_HEADER, format_row

    rows = [format_row(i, 3, 3 if r >= 0 else -1, max(r, 0.0), 0.1) for i, r in enumerate(radii)]
    path.write_text("\t".join(CERTIFY_HEADER) + "\n" + "".join(rows))
    return A.read_certify_log(path)


def test_scorecard_verdicts_use_the_interval_over_the_images_and_the_runs_reach(tmp_path):
    from statsmodels.stats.proportion import proportion_confint

    # 40 images: 24 certified at radius 0.3, 16 abstained; certified at sigma 0.25 with N = 256, alpha = 0.001.
    log = _hand_made_log(tmp_path / "sigma-0.25.tsv", [0.3] * 24 + [-1] * 16)
    reach = A.max_certifiable_radius(0.25, 256, 0.001)  # 0.483
    run = A.model_cells(log, [0.0, 0.25, 0.75], dataset="cifar10", method="gaussian", sigma=0.25, reach=reach)
    key = {"paper": "p", "table": "T1", "dataset": "cifar10", "setting": "", "sigma": "0.25", "std": np.nan}
    numbers = pd.DataFrame(
        [
            {**key, "method": "gaussian", "metric": "certified_accuracy", "radius": "0.25", "value": 0.61, "precision": 0.01, "row": "a", "column": "r = 0.25"},
            {**key, "method": "gaussian", "metric": "certified_accuracy", "radius": "0", "value": 0.90, "precision": 0.01, "row": "a", "column": "clean"},
            {**key, "method": "gaussian", "metric": "certified_accuracy", "radius": "0.75", "value": 0.30, "precision": 0.01, "row": "a", "column": "r = 0.75"},
            {**key, "method": "gaussian", "metric": "acr", "radius": "", "value": 0.52, "precision": 0.001, "row": "a", "column": "ACR"},
            {**key, "method": "macer", "metric": "certified_accuracy", "radius": "0.25", "value": 0.70, "precision": 0.01, "row": "b", "column": "macer r = 0.25"},
        ]
    )  # fmt: skip
    card = A.scorecard(numbers, run).set_index("column")
    low, high = proportion_confint(24, 40, alpha=0.05, method="beta")
    assert card.loc["r = 0.25", ["run_low", "run_high"]].tolist() == pytest.approx([low, high])
    assert card.loc["r = 0.25", "images"] == 40
    # 61 vs 60 of 40 images: inside [43.3, 75.1], a match (equality after rounding would say "differs").
    assert card.loc["r = 0.25", "status"] == "match"
    assert card.loc["clean", "status"] == "differs"  # 90 lies above the interval of 24 of 40
    # r = 0.75 > 0.483: no model of this run can be certified there; neither match nor differs.
    assert card.loc["r = 0.75", "status"] == "beyond reach"
    assert card.loc["ACR", "status"] == "beyond reach"  # an ACR of 0.52 needs radii beyond 0.483
    assert card.loc["r = 0.25", "reach"] == pytest.approx(reach)
    assert card.loc["r = 0.25", "status"] == "match" and (card["status"] == "not run").sum() == 1
    # Without the interval, 0.60 against 0.61 printed to 0.01 differs: the interval is what makes it a match.
    bare = A.scorecard(numbers, run.drop(columns=["low", "high", "images"])).set_index("column")
    assert bare.loc["r = 0.25", "status"] == "differs"

    headline = A.scorecard_headline(A.scorecard(numbers, run)).iloc[0]
    assert headline[["run", "match", "differs", "beyond reach", "not run"]].tolist() == [4, 1, 1, 2, 1]
    assert headline["best certified accuracy"] == pytest.approx(0.6)
    assert headline["paper (same cell)"] == pytest.approx(0.61)
    assert headline["at"] == "a, r = 0.25"
    assert headline["best ACR"] == "–"  # the only ACR cell is beyond reach
    # A table with nothing run says so instead of NaN.
    other = numbers.assign(table="T2", method="macer")
    empty = A.scorecard_headline(A.scorecard(other, run)).iloc[0]
    assert empty["run"] == 0 and empty["best certified accuracy"] == "not run"

    summary = A.not_run_summary(A.scorecard(numbers, run))
    assert summary[["table", "method", "cells"]].values.tolist() == [["T1", "macer", 1]]
    full = A.not_run_list(A.scorecard(numbers, run))
    assert list(full.columns) == ["paper", "table", "method", "setting", "sigma", "metric", "radius", "paper row", "paper column", "paper value"]  # fmt: skip
    assert full["paper value"].tolist() == [pytest.approx(70.0)]


def test_envelope_and_seed_cells_carry_intervals_over_their_images(tmp_path):
    logs = {
        "a": _hand_made_log(tmp_path / "a.tsv", [0.3] * 30 + [-1] * 10),
        "b": _hand_made_log(tmp_path / "b.tsv", [0.1] * 36 + [-1] * 4),
    }
    env = A.envelope_cells(logs, [0.25], dataset="cifar10", method="gaussian", reach=0.9).set_index("metric")
    assert env.loc["certified_accuracy", "value"] == 0.75 and env.loc["certified_accuracy", "images"] == 40
    assert env.loc["abstention_rate", "value"] == 0.25
    assert (env["reach"] == 0.9).all()
    seeds = [
        A.model_cells(log, [0.25], dataset="mnist", method="gaussian", sigma=0.25, reach=0.48)
        for log in logs.values()
    ]
    pooled = A.seed_summary(seeds).set_index("metric")
    assert pooled.loc["certified_accuracy", "images"] == 80
    low, high = A.clopper_pearson(30, 80)
    assert pooled.loc["certified_accuracy", ["low", "high"]].tolist() == pytest.approx([low, high])


def test_run_cells_use_the_paper_key(small_logs):
    cells = A.model_cells(
        small_logs["σ = 0.25"],
        [0.0, 0.25],
        dataset="cifar10",
        method="smoothadv_pgd",
        setting=A.model_setting(2, 1, 0.25),
        sigma=0.25,
    )
    assert list(cells.columns) == [*A.KEY_COLUMNS, "value", "images", "low", "high", "reach"]
    assert cells["setting"].unique().tolist() == ["T=2 m=1 eps=0.25"]
    assert cells[cells["metric"] == "acr"]["value"].item() == pytest.approx(0.25)
    env = A.envelope_cells(small_logs, [0.5], dataset="cifar10", method="smoothadv")
    assert dict(zip(env["metric"], env["value"], strict=True)) == {
        "certified_accuracy": 0.5,
        "clean_accuracy": 0.5,
        "abstention_rate": 0.5,
    }
    # Every per-model cell the paper has for this setting finds its run value.
    numbers = paper("salman2019", "Table 7", method="smoothadv_pgd", setting="T=2 m=1 eps=0.25", sigma="0.25")
    card = A.scorecard(numbers, cells)
    # 2 of 4 images: the interval (7% to 93%) holds the paper's values, so four images cannot tell them apart.
    assert card.set_index("radius").loc[["0", "0.25"], "status"].tolist() == ["match", "match"]


# ---------------------------------------------------------------------------------------------- provenance


def test_provenance_fields_and_stable_config_hash(monkeypatch):
    config = {"sigma": 0.25, "attack": {"steps": 2, "eps": 0.5}, "seeds": (0, 1)}
    reordered = {"seeds": [0, 1], "attack": {"eps": 0.5, "steps": 2}, "sigma": 0.25}
    assert A.config_hash(config) == A.config_hash(reordered)
    assert A.config_hash(config) != A.config_hash({**config, "sigma": 0.5})
    canonical = '{"attack":{"eps":0.5,"steps":2},"seeds":[0,1],"sigma":0.25}'
    assert A.config_hash(config) == hashlib.sha256(canonical.encode()).hexdigest()

    record = A.collect_provenance(config, seeds={"train": 1, "certify": 0}, extra={"stage": "tables"})
    for key in ("config_hash", "rsmooth_version", "git_commit", "git_dirty", "python", "packages", "seeds"):
        assert key in record
    assert record["config_hash"] == A.config_hash(config) and record["stage"] == "tables"
    assert set(record["packages"]) >= {
        "torch",
        "torchvision",
        "numpy",
        "scipy",
        "statsmodels",
        "pandas",
        "snakemake",
    }
    assert record["packages"]["numpy"] == np.__version__
    assert record["seeds"] == {"train": 1, "certify": 0}
    json.dumps(record)  # JSON-ready
    assert "created_utc" not in record and "created_utc" in A.collect_provenance(timestamp=True)

    # Outside git (no git binary, or not a checkout) the record still comes, without a commit.
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.delenv(prov_module.GIT_COMMIT_ENV, raising=False)
    monkeypatch.setattr(subprocess, "run", no_git)
    assert prov_module.git_commit() == (None, None)
    assert A.collect_provenance()["git_commit"] is None
    monkeypatch.setenv(prov_module.GIT_COMMIT_ENV, "abc123")
    assert A.collect_provenance()["git_commit"] == "abc123"


def test_provenance_sidecar(tmp_path):
    path = A.write_provenance_sidecar(tmp_path / "fig.png", A.collect_provenance({"a": 1}))
    assert path.name == "fig.png.provenance.json"
    assert json.loads(path.read_text())["config_hash"] == A.config_hash({"a": 1})


# -- logs of the sequential procedure ------------------------------------------------------------------


def test_sequential_log_samples_are_read_and_its_acr_is_not_shown(tmp_path):
    path = tmp_path / "sequential.tsv"
    path.write_text(
        "idx\tlabel\tpredict\tradius\tcorrect\ttime\tsamples\n"
        "0\t3\t3\t0.5\t1\t0.1\t1200\n"
        "1\t4\t-1\t0\t0\t0.2\t100000\n"
        "2\t5\t5\t0\t1\t0.1\t300\n"
    )
    df = A.read_certify_log(path)
    assert df["samples"].tolist() == [1200, 100000, 300] and df["samples"].dtype == np.int64
    assert A.certified_accuracy(df, [0.0, 0.25, 0.5]).tolist() == pytest.approx([2 / 3, 1 / 3, 1 / 3])
    table = A.acr_table({"m": df}, [0.25], caption="ACR", acr=False)
    assert table.values.loc["m", "ACR"] == A.tables.MISSING
    assert A.NO_ACR in table.caption and "grid radii" in table.caption
    assert not table.best["ACR"].any()
    assert "0.500" not in A.to_markdown(table)
    # With acr (CERTIFY logs) the number is there.
    assert A.acr_table({"m": df}, [0.25]).values.loc["m", "ACR"] == f"{0.5 / 3:.3f}"
    bad = tmp_path / "bad.tsv"
    bad.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\tsamples\n0\t3\t3\t0.5\t1\t0.1\tmany\n")
    with pytest.raises(ValueError, match="column 'samples' is not integer"):
        A.read_certify_log(bad)


def test_procedure_caption_names_procedure_and_alpha():
    from rsmooth.pipeline import PAPER_CONFIG, load_config

    certify = load_config(PAPER_CONFIG)["certify"]  # n0 100, n 100000, alpha 0.001
    assert A.procedure_caption(certify) == "CERTIFY (N0 = 100, N = 100000, alpha = 0.001)"
    caption = A.procedure_caption({**certify, "procedure": "sequential", "alpha": 0.01})
    assert caption == "sequential certification at grid radii (union test, n_max = 100000, alpha = 0.01)"


def test_model_cells_leave_out_acr_for_grid_radii():
    df = frame([(True, 0.5), (True, 0.25)])
    with_acr = A.model_cells(df, [0.0, 0.25], dataset="cifar10", method="gaussian", sigma=0.25)
    without = A.model_cells(df, [0.0, 0.25], dataset="cifar10", method="gaussian", sigma=0.25, acr=False)
    assert len(with_acr) == len(without) + 1
    assert "acr" not in set(without["metric"])


# ------------------------------------------------------------------------ SmoothMix's tables: seeds, coverage


def test_seed_summary_is_the_mean_and_spread_over_seeds_and_the_scorecard_compares_both():
    numbers = A.load_paper_numbers()
    cells = numbers[
        (numbers["table"] == "Table 5 (appendix)")
        & (numbers["method"] == "gaussian")
        & (numbers["sigma"] == "1")
    ]  # ACR 1.6184 +- 0.0021 over 5 seeds
    seeds = [1.6160, 1.6170, 1.6180, 1.6200, 1.6210]
    frames = [
        pd.DataFrame([{"dataset": "mnist", "method": "gaussian", "setting": "", "sigma": 1.0, "metric": "acr", "radius": None, "value": v}])
        for v in seeds
    ]  # fmt: skip
    summary = A.seed_summary(frames)
    assert len(summary) == 1
    assert summary["value"].iloc[0] == pytest.approx(np.mean(seeds))
    assert summary["std"].iloc[0] == pytest.approx(np.std(seeds))  # 0.00185: prints as 0.0019
    card = A.scorecard(cells, summary)
    assert card["status"].tolist() == ["match"]  # 1.6184 against a mean of 1.6184
    assert card["std_status"].tolist() == ["differs"]  # 0.0019 against the paper's 0.0021
    assert card["paper_std"].iloc[0] == pytest.approx(0.0021)
    shown = A.to_markdown(A.scorecard_table(card))
    assert "1.618 ± 0.002" in shown and "differs" in shown


@pytest.mark.parametrize(
    ("preset", "dataset"),
    [("mnist.yaml", "mnist"), ("config.yaml", "cifar10"), ("imagenet_smoothmix.yaml", "imagenet")],
)
def test_every_smoothmix_table_cell_of_a_dataset_has_exactly_one_model_per_seed_in_its_preset(
    preset, dataset
):
    from collections import Counter

    from rsmooth.pipeline import grid_models, load_config

    root = Path(__file__).resolve().parents[1]
    cells = grid_models(load_config(root / "config" / preset))
    models = Counter()
    for cell in cells.values():
        if cell.pretrain or cell.self_training:
            continue
        for method, setting, over_seeds in A.smoothmix_keys(dataset, cell.train):
            if over_seeds or cell.train["seed"] == 0:
                models[(method, setting, cell.train["sigma"], cell.train["seed"])] += 1
    assert set(models.values()) == {1}
    numbers = A.load_paper_numbers()
    table = numbers[numbers["paper"].str.startswith("jeong2021") & (numbers["dataset"] == dataset)]
    wanted = {(r.method, r.setting, float(r.sigma)) for r in table.itertuples()}
    assert wanted <= {(m, s, sigma) for m, s, sigma, _ in models}
    if dataset == "mnist":  # Tables 4-5: five seeds of every model
        seeds = Counter((m, s, sigma) for m, s, sigma, _ in models)
        assert all(seeds[key] == 5 for key in wanted if not key[1].startswith("ablation"))


# ------------------------------------------------------------------- a run's results (rsmooth.analysis.results)


def _train(method: str, sigma: float, **values) -> dict:
    base = {"method": method, "attack": "pgd", "sigma": sigma, "eps": 0.25, "steps": 2, "num_noise_vec": 1}
    return {**base, "seed": 0, "multi_noise": False, **values}


@pytest.fixture
def run_grid(tmp_path):
    """Three models: Gaussian at 0.12 (certified at 0.12 and 0.125), SmoothAdv from scratch, SmoothAdv
    fine-tuned; every log with four images."""
    rows = [(0, 0, 0, 0.6), (1, 1, 1, 0.3), (2, 2, -1, 0.0), (3, 3, 1, 0.2)]
    models = {
        "gaussian_sigma-0.12": {"experiments": ["cohen"], "train": _train("gaussian", 0.12)},
        "smoothadv-pgd": {"experiments": ["pgd"], "train": _train("smoothadv", 0.25)},
        "init-imagenet32_smoothadv-pgd": {
            "experiments": ["pretrained"], "train": _train("smoothadv", 0.25), "pretrain": "p", "self_training": False,
        },
    }  # fmt: skip
    certifications = []
    for model, sigma in [("gaussian_sigma-0.12", 0.12), ("gaussian_sigma-0.12", 0.125), ("smoothadv-pgd", 0.25),
                         ("init-imagenet32_smoothadv-pgd", 0.25)]:  # fmt: skip
        log = write_log(tmp_path / f"{model}_{sigma}.tsv", rows)
        certifications.append({"model": model, "sigma": sigma, "log": str(log)})
    return {"models": models, "certifications": certifications}


def test_grid_sigmas_stay_numbers_and_names_are_exact(run_grid):
    certifications = A.read_grid(run_grid)
    assert [c.sigma for c in certifications] == [0.12, 0.125, 0.25, 0.25]
    assert [c.name for c in certifications][:2] == [
        "gaussian_sigma-0.12 @ sigma=0.12",
        "gaussian_sigma-0.12 @ sigma=0.125",
    ]
    assert certifications[3].model.pretrain == "p" and not certifications[3].model.from_scratch
    assert list(A.by_sigma(certifications)) == [0.12, 0.125, 0.25]


def test_models_are_grouped_as_the_papers_envelope_tables():
    model = A.GridModel("x", _train("smoothadv", 0.25))
    assert A.method_group(model) == "smoothadv"
    assert A.method_group(A.GridModel("x", _train("smoothadv", 0.25), pretrain="p", self_training=True)) == (
        "smoothadv+pretraining+self-training"
    )
    assert A.method_group(A.GridModel("x", _train("gaussian", 0.25))) == "gaussian"


def test_paper_values_take_per_model_rows_only_from_models_trained_from_scratch_at_their_own_sigma(run_grid):
    values = A.paper_values(A.read_grid(run_grid), "cifar10")
    per_model = values[values["method"] == "smoothadv_pgd"]
    # One SmoothAdv model from scratch at its own sigma: the fine-tuned one gives envelope rows only.
    assert set(per_model["sigma"]) == {0.25} and per_model["setting"].unique().tolist() == [
        "T=2 m=1 eps=0.25"
    ]
    assert len(per_model) == len(per_model.drop_duplicates(["metric", "radius"]))
    settings = set(values.loc[values["method"] == "smoothadv", "setting"])
    assert {"envelope", "envelope+pretraining"} <= settings
    gaussian = values[
        values["method"].eq("gaussian")
        & values["setting"].eq("envelope")
        & values["metric"].eq("certified_accuracy")
    ]
    envelope = gaussian.set_index("radius")["value"]
    assert envelope.loc[0.25] == 0.5 and envelope.loc[0.5] == 0.25  # radii 0.6 and 0.3 of four images


def test_certification_frame_has_one_row_per_model_and_sigma(run_grid):
    frame = A.certification_frame(A.read_grid(run_grid), [0.0, 0.5])
    assert frame[["model", "certify sigma"]].values.tolist()[:2] == [
        ["gaussian_sigma-0.12", 0.12],
        ["gaussian_sigma-0.12", 0.125],
    ]
    assert frame["r = 0"].tolist() == [0.5] * 4 and frame["r = 0.5"].tolist() == [0.25] * 4
    assert frame["abstention"].tolist() == [0.25] * 4 and frame["images"].tolist() == [4] * 4


def test_write_results_and_figures_write_every_report_file(tmp_path, run_grid):
    from rsmooth.pipeline import PAPER_CONFIG, complete_config, read_config_files

    # The loaded config, as the workflow's config.json holds it (every default filled in).
    config = complete_config({**read_config_files(PAPER_CONFIG), "analysis": {"radii": [0.0, 0.25]}})
    card, certifications = A.write_results(run_grid, config, tmp_path / "out")
    names = {p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert {f"tables/{t}.{f}" for t in A.RESULT_TABLES for f in ("csv", "md", "tex", "html")} <= names
    assert {"scorecard.csv", "scorecard.html", "cells.csv", "cells.html", "configuration.html"} <= names
    assert {"scorecard_not_run.csv", "scorecard_not_run.html"} <= names
    scorecard_page = (tmp_path / "out/scorecard.html").read_text()
    assert (
        "NaN" not in scorecard_page and "beyond reach" in scorecard_page and "95% interval" in scorecard_page
    )
    assert (card["status"] != "not run").any() and len(certifications) == 4
    assert "σ = 0.125" in (tmp_path / "out/tables/envelope_per_sigma.md").read_text()
    written = figures.write_figures(
        certifications,
        tmp_path / "figures",
        max_radius=2.25,
        provenance={"x": 1},
        dataset="cifar10",
        certify=config["certify"],
    )
    # One value of m_train and of eps: those ablations have nothing to show and are not written.
    stems = [p.stem for p in written]
    assert stems[:5] == ["certified_accuracy", "envelopes", "per_sigma", "representative", "ablation_method"]
    assert not {"ablation_m_train", "ablation_eps"} & set(stems)
    assert all(p.stat().st_size > 1000 for p in written)
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(p.name for p in written)


def test_provenance_per_result_shows_checksums_command_and_date_and_no_absolute_path(
    tmp_path, run_grid, monkeypatch
):
    """A hand-made run in a working directory: one log with the run record certify.py writes beside it, one
    merged from two shards that kept only their settings (a log written before the records existed)."""
    from rsmooth.analysis import provenance as P
    from rsmooth.logformat import CERTIFY_HEADER, format_row
    from rsmooth.pipeline import PAPER_CONFIG, complete_config, read_config_files

    monkeypatch.chdir(tmp_path)
    stamp = tmp_path / "resources/data/.ready/cifar10.json"
    stamp.parent.mkdir(parents=True)
    batch = "resources/data/cifar-10-batches-py/test_batch"
    stamp.write_text(json.dumps({"dataset": "cifar10", "files": {batch: 10}, "sha256": {batch: "ab" * 32}}))
    checkpoint = tmp_path / "results/models/m/model.pt"
    log = tmp_path / "results/certify/m/sigma-0.25.tsv"
    for path in (checkpoint, log):
        path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(b"weights")
    log.write_text("\t".join(CERTIFY_HEADER) + "\n" + format_row(0, 1, 1, 0.3, 0.5))
    argv = [str(prov_module._CHECKOUT / "scripts/certify.py"), str(log), "--checkpoint", str(checkpoint), f"--data-root={tmp_path / 'resources/data'}"]  # fmt: skip
    record = P.run_record(
        argv, checkpoint=checkpoint, checkpoint_sha256="cd" * 32, data_stamp=stamp, device="cpu"
    )
    P.write_provenance_sidecar(log, record)
    assert record["command"] == (
        "python scripts/certify.py results/certify/m/sigma-0.25.tsv --checkpoint results/models/m/model.pt "
        "--data-root=resources/data"
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", record["date_utc"])
    assert record["data"]["files"] == {batch: "ab" * 32}
    assert {"gpu", "driver", "cuda", "torch", "device"} <= set(record["host"])
    assert A.read_certify_log(log)["radius"].tolist() == [0.3]  # the log itself is untouched

    merged = tmp_path / "results/certify/m/sigma-0.5.tsv"
    merged.write_text("\t".join(CERTIFY_HEADER) + "\n" + format_row(0, 1, 1, 0.3, 0.5) + format_row(1, 1, 1, 0.3, 0.5))  # fmt: skip
    for shard in (0, 1):
        done = merged.with_suffix("") / f"shard-{shard}.tsv.done"
        done.parent.mkdir(exist_ok=True)
        done.write_text('# rsmooth-certify {"checkpoint_sha256": "' + "ef" * 32 + '", "device": "cuda"}\n')
        (merged.with_suffix("") / f"shard-{shard}.tsv").write_text("\t".join(CERTIFY_HEADER) + "\n")
    trained = {"date_utc": "2026-01-02T03:04:05+00:00", "host": {"gpu": "NVIDIA H200", "device": "cuda"},
               "checkpoint": {"path": "results/models/m/model.pt", "sha256": "cd" * 32}}  # fmt: skip
    P.write_provenance_sidecar(checkpoint, trained)  # what scripts/train.py writes beside the checkpoint
    rows, data = P.provenance_table([(str(log), "m", 0.25), (str(merged), "m", 0.5)])
    assert rows[0]["trained (UTC)"] == "2026-01-02T03:04:05+00:00" and rows[0]["trained on"] == "NVIDIA H200"
    # The shards certified a checkpoint of another sha256: the training record is not theirs.
    assert rows[1]["trained (UTC)"] == "another checkpoint (retrained since)"
    assert [r["checkpoint sha256"] for r in rows] == ["cd" * 32, "ef" * 32, "ef" * 32]  # one row per shard
    assert rows[0]["command"].startswith("python scripts/certify.py") and rows[1]["command"] == "not recorded"
    assert rows[1]["recorded"] == "settings" and rows[1]["GPU"] == "not recorded"
    assert data == {batch: "ab" * 32}

    # The configuration page shows them, and no absolute path of this machine.
    grid = {"models": run_grid["models"], "certifications": [
        {**run_grid["certifications"][0], "log": "results/certify/m/sigma-0.25.tsv"},
        *run_grid["certifications"][1:],
    ]}  # fmt: skip
    config = complete_config({**read_config_files(PAPER_CONFIG), "analysis": {"radii": [0.0, 0.25]}})
    A.write_results(grid, config, tmp_path / "out")
    page = (tmp_path / "out/configuration.html").read_text()
    assert "cd" * 32 in page and "ab" * 32 in page and record["date_utc"] in page
    assert "python scripts/certify.py results/certify/m/sigma-0.25.tsv" in page
    for shown in (page, (tmp_path / "out/provenance.csv").read_text(), (tmp_path / "out/scorecard.html").read_text()):  # fmt: skip
        assert str(tmp_path) not in shown and str(prov_module._CHECKOUT) not in shown
