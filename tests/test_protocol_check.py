"""The paper-protocol check (certify.cohen_skip): CERTIFY on a subset beside a sequential run, from the config
through the DAG's arguments and the plan to the agreement table and the CERTIFY scorecard."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rsmooth.analysis.protocol_check import agreement, write_protocol_check
from rsmooth.pipeline import (
    cohen_check_arguments,
    cohen_check_log,
    cohen_check_skip,
    complete_config,
    grid_description,
    grid_models,
)
from rsmooth.plan import DEFAULT_THROUGHPUT, plan_config

ROOT = Path(__file__).resolve().parents[1]


def quickstart(**certify) -> dict:
    config = yaml.safe_load((ROOT / "config" / "quickstart.yaml").read_text())
    config["certify"].update(certify)
    config["certify"] = {k: v for k, v in config["certify"].items() if v is not None}  # None: unset
    return complete_config(config)


def log(rows, *, samples: bool) -> pd.DataFrame:
    """A certification log frame: rows of (idx, label, predict, radius[, samples])."""
    columns = ["idx", "label", "predict", "radius", *(["samples"] if samples else [])]
    df = pd.DataFrame(rows, columns=columns)
    df["correct"] = (df["predict"] == df["label"]).astype(int)
    return df


def test_the_check_needs_the_sequential_procedure_and_a_multiple_of_every_skip():
    config = quickstart()
    models = grid_models(config)
    assert cohen_check_skip(config, models) == 500
    assert cohen_check_skip(quickstart(cohen_skip=None), models) is None
    with pytest.raises(ValueError, match=r"cohen_skip \(500\).*procedure is 'cohen'"):
        cohen_check_skip(quickstart(procedure="cohen"), models)
    with pytest.raises(ValueError, match=r"cohen_skip \(250\) must be a multiple .*\[100\]"):
        cohen_check_skip(quickstart(cohen_skip=250, skip=100), models)
    assert cohen_check_skip(quickstart(cohen_skip=300, skip=100), models) == 300


def test_the_check_job_runs_certify_with_the_sections_settings_on_every_kth_image():
    config = quickstart()
    model = next(iter(grid_models(config).values()))
    arguments = cohen_check_arguments(config, model)
    assert arguments.startswith("--N0 100 --N 100000 --alpha 0.001 ")
    assert "--skip 500 " in arguments and "--start 0 --stop 10000" in arguments
    assert "--procedure" not in arguments and "--radii" not in arguments  # CERTIFY, the script's default
    assert model.certify_skip == 100  # the sequential jobs keep theirs


def test_the_grid_description_names_a_check_log_beside_each_certification_only_when_asked():
    models = grid_models(quickstart())
    plain, checked = grid_description(models), grid_description(models, cohen_check=True)
    assert all("cohen_log" not in entry for entry in plain["certifications"])
    assert [e["cohen_log"] for e in checked["certifications"]] == [
        cohen_check_log(e["model"], e["sigma"]) for e in plain["certifications"]
    ]
    assert checked["certifications"][0]["cohen_log"].endswith("/sigma-0.25.cohen.tsv")


def test_the_plan_counts_one_check_job_per_model_and_sigma():
    config = quickstart()
    stages = {row["stage"]: row for row in plan_config(config).stages}
    check = stages["certification: CERTIFY check (1 in 500 images)"]
    assert check["jobs"] == 3
    rate = DEFAULT_THROUGHPUT.certify_rate("lenet")
    assert check["gpu_hours"] == pytest.approx(3 * math.ceil(10000 / 500) * 100_100 / rate / 3600)
    unchecked = {row["stage"] for row in plan_config(quickstart(cohen_skip=None)).stages}
    assert not any("check" in stage for stage in unchecked)


def test_agreement_counts_each_procedures_certificates_and_the_discordant_images():
    # Images 0-4 certified sequentially on a grid (radius = the top grid radius reached), 0, 2, 4 by CERTIFY.
    sequential = log(
        [
            (0, 1, 1, 1.0, 900),
            (1, 2, 2, 0.5, 300),
            (2, 3, 3, 0.0, 5000),
            (3, 4, -1, 0.0, 100000),
            (4, 5, 5, 0.5, 700),
        ],
        samples=True,
    )
    cohen = log([(0, 1, 1, 1.31), (2, 3, 3, 0.62), (4, 5, 5, 0.41)], samples=False)
    table = agreement(sequential, cohen, [0.0, 0.5, 1.0], draws=100_100).set_index("radius")
    assert table["images"].tolist() == [3, 3, 3]
    assert table["certified CERTIFY"].tolist() == [3, 2, 1]
    assert table["certified sequential"].tolist() == [3, 2, 1]
    # At 0.5 image 2 is certified by CERTIFY only (0.62) and image 4 by the sequential test only.
    assert table.loc[0.5, "CERTIFY only"] == 1 and table.loc[0.5, "sequential only"] == 1
    assert table.loc[0.5, "McNemar p"] == pytest.approx(1.0)
    assert table.loc[0.0, "McNemar p"] == 1.0  # no discordant image
    assert table["mean draws sequential"].tolist() == [pytest.approx((900 + 5000 + 700) / 3)] * 3
    # Three images only CERTIFY certifies: the exact two-sided p is 2 * 0.5 ** 3.
    wrong = log([(0, 1, 0, 0.0, 10), (2, 3, 0, 0.0, 10), (4, 5, 0, 0.0, 10)], samples=True)
    assert agreement(wrong, cohen, [0.0], draws=10)["McNemar p"].iloc[0] == pytest.approx(0.25)


def test_agreement_refuses_images_or_labels_the_sequential_log_lacks():
    sequential = log([(0, 1, 1, 0.5, 100)], samples=True)
    with pytest.raises(ValueError, match=r"images \[7\].*not in the sequential log"):
        agreement(sequential, log([(0, 1, 1, 0.3), (7, 2, 2, 0.3)], samples=False), [0.0], draws=10)
    with pytest.raises(ValueError, match=r"labels of images \[0\] differ"):
        agreement(sequential, log([(0, 4, 4, 0.3)], samples=False), [0.0], draws=10)


def test_the_check_writes_its_agreement_and_a_certify_scorecard_with_the_acr(tmp_path):
    config = quickstart()
    description = grid_description(grid_models(config), cohen_check=True)
    for entry in description["certifications"]:
        for key, samples in (("log", True), ("cohen_log", False)):
            path = tmp_path / entry[key]
            path.parent.mkdir(parents=True, exist_ok=True)
            header = "idx\tlabel\tpredict\tradius\tcorrect\ttime" + ("\tsamples" if samples else "")
            rows = [f"{i}\t{i % 10}\t{i % 10}\t{0.5 if samples else 0.8}\t1\t0:00:01" + ("\t1000" if samples else "")
                    for i in range(0, 10000, 100 if samples else 500)]  # fmt: skip
            path.write_text("\n".join([header, *rows]) + "\n")
            entry[key] = str(path)
    out = tmp_path / "analysis"
    table, card = write_protocol_check(json.loads(json.dumps(description)), config, out)
    assert len(table) == 3 * len(config["analysis"]["radii"])
    assert set(table["images"]) == {20}
    at_half = table[table["radius"] == 0.5]
    assert (at_half["certified CERTIFY"] == 20).all() and (at_half["certified sequential"] == 20).all()
    assert (table[table["radius"] == 1.0]["certified sequential"] == 0).all()
    # The ACR of Table 5, which the sequential logs cannot give: every digit correct at radius 0.8.
    acr = card[(card["metric"] == "acr") & (card["status"] != "not run")]
    assert acr["run_value"].tolist() == pytest.approx([0.8] * 3)
    assert pd.read_csv(out / "protocol_check.csv").shape == table.shape
    assert len(pd.read_csv(out / "scorecard_cohen.csv")) == len(card)
    page = (out / "protocol_check.html").read_text()
    assert "Paper protocol: CERTIFY on a subset" in page and "on 1 in 500 test images" in page
