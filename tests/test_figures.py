"""The report's figures beside the papers (rsmooth.analysis.figures, the empirical figures): the overlaid points
are the published numbers, every curve has its own colour and line style, a figure with nothing to show is not
written, the empirical figures draw the full certified step curve; and the interval and reach they draw."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from figure_run import CERTIFY, attack_plan, figure_run

from rsmooth.analysis import empirical_report, figures
from rsmooth.analysis.metrics import certified_accuracy, clopper_pearson, max_certifiable_radius
from rsmooth.analysis.paper import load_paper_numbers
from rsmooth.analysis.results import read_grid


@pytest.fixture
def drawn(monkeypatch):
    """Every matplotlib Figure saved, by file name, to inspect its artists."""
    saved = {}
    save = figures._save

    def keep(fig, path, *args, **kwargs):
        saved[path.name] = fig
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(figures, "_save", keep)
    return saved


@pytest.fixture
def run(tmp_path):
    return read_grid(figure_run(tmp_path))


def write(run, out, **kwargs):
    return figures.write_figures(
        run, out, max_radius=2.25, provenance={"x": 1}, dataset="cifar10", certify=CERTIFY, **kwargs
    )


def curves(fig) -> list[list[tuple[str, object]]]:
    """Per axes, the (colour, line style) of each labelled curve (not the paper points or the reach line)."""
    out = []
    for ax in fig.axes:
        lines = [
            line
            for line in ax.get_lines()
            if not line.get_label().startswith(("_", "paper", "largest", "run = paper"))
        ]
        out.append([(line.get_color(), line.get_linestyle()) for line in lines])
    return out


def published(table: str, method: str, setting: str, sigma: str) -> pd.DataFrame:
    paper = load_paper_numbers()
    rows = paper[
        paper["table"].eq(table)
        & paper["dataset"].eq("cifar10")
        & paper["method"].eq(method)
        & paper["setting"].eq(setting)
        & paper["sigma"].eq(sigma)
        & paper["metric"].eq("certified_accuracy")
    ]
    assert len(rows) >= 5, (table, method, setting, sigma)
    return rows


def test_overlaid_points_are_the_published_numbers(run, tmp_path, drawn):
    write(run, tmp_path)
    # The SmoothAdv model T=2 m=1 eps=0.25 at sigma 0.25: its row of Salman et al. Table 7, in its curve's colour.
    panel = next(ax for ax in drawn["per_sigma.png"].axes if ax.get_title() == "smoothadv, σ = 0.25")
    row = published("Table 7", "smoothadv_pgd", "T=2 m=1 eps=0.25", "0.25")
    expected = sorted(zip(row["radius"].astype(float), row["value"], strict=True))
    paper_lines = [line for line in panel.get_lines() if line.get_label().startswith("paper")]
    plotted = [sorted(zip(line.get_xdata(), line.get_ydata(), strict=True)) for line in paper_lines]
    assert expected in plotted
    # The envelope panel of SmoothAdv: Salman et al. Table 2's SmoothAdv row.
    panel = next(ax for ax in drawn["envelopes.png"].axes if ax.get_title() == "smoothadv")
    row = published("Table 2", "smoothadv", "envelope", "")
    (line,) = [line for line in panel.get_lines() if line.get_label().startswith("paper")]
    assert sorted(zip(line.get_xdata(), line.get_ydata(), strict=True)) == sorted(
        zip(row["radius"].astype(float), row["value"], strict=True)
    )
    assert "Table 2" in line.get_label()


def test_paper_vs_run_plots_every_cell_of_the_table_against_the_run(run, tmp_path, drawn):
    written = write(run, tmp_path)
    assert tmp_path / "paper_vs_run_salman2019_table_7.png" in written
    cells = figures.paper_vs_run_cells(run, load_paper_numbers(), figures.RunFacts("cifar10", CERTIFY))
    table = cells[("salman2019", "Table 7")]
    ax = drawn["paper_vs_run_salman2019_table_7.png"].axes[0]
    # The points are the data lines of the error-bar containers (one per metric and reach).
    points = sorted(
        (x, y) for container in ax.containers for x, y in zip(*container.lines[0].get_data(), strict=True)
    )
    assert points == sorted(zip(table["paper_value"], table["run_value"], strict=True))
    # Beyond the run's reach (radius > 0.48 at sigma 0.25): the run can only show 0 there.
    beyond = table[table["beyond_reach"]]
    assert len(beyond) and (beyond["run_value"] == 0).all()
    assert (beyond["radius"].astype(float) > max_certifiable_radius(0.25, 256, 0.001)).all()


def test_no_two_curves_share_colour_and_line_style(run, tmp_path, drawn):
    styles = figures.curve_styles(figures.MAX_STYLES)
    assert len({(s["color"], s["linestyle"]) for s in styles}) == figures.MAX_STYLES
    # Neighbours differ in both, and the 11th curve (past a 10-colour cycle) not like the 1st.
    assert all(
        a["color"] != b["color"] and a["linestyle"] != b["linestyle"] for a, b in itertools.pairwise(styles)
    )
    with pytest.raises(ValueError, match="at most 40"):
        figures.curve_styles(41)
    # Twelve curves on one axes, as the old certified_accuracy.png had.
    logs = {f"m{i}": run[i % len(run)].log for i in range(12)}
    figures.plot_certified_accuracy(logs, tmp_path / "twelve.png", max_radius=1.0)
    write(run, tmp_path)
    empirical_report.write_empirical_analysis(attack_plan(tmp_path, figure_run(tmp_path)), tmp_path / "emp")
    assert {"twelve.png", "certified_accuracy.png", "per_sigma.png", "m_test.png", "groups.png"} <= set(drawn)
    for name, fig in drawn.items():
        for axes in curves(fig):
            assert len(axes) == len(set(axes)), (name, axes)
    assert len(curves(drawn["twelve.png"])[0]) == 12
    # Legends sit outside the data: right of or below the axes.
    for name, fig in drawn.items():
        fig.canvas.draw()
        for ax in fig.axes:
            if ax.get_legend() is not None:
                box, frame = ax.get_legend().get_window_extent(), ax.get_window_extent()
                assert box.x0 >= frame.x1 or box.y1 <= frame.y0, name


def test_a_figure_with_nothing_to_show_is_not_written(run, tmp_path):
    # One Gaussian model: no SmoothAdv model, no ablation, no second method to compare.
    gaussian = [c for c in run if c.model.id == "gaussian_sigma-0.25"]
    written = write(gaussian, tmp_path / "one")
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in written)
    assert not {
        "representative.png",
        "ablation_m_train.png",
        "ablation_eps.png",
        "ablation_method.png",
    } & set(names)
    assert write([], tmp_path / "none") == [] and not list((tmp_path / "none").iterdir())
    # The whole run has two eps and two m_train values, and two methods: those figures exist.
    names = {p.name for p in write(run, tmp_path / "all")}
    assert {"ablation_m_train.png", "ablation_eps.png", "ablation_method.png", "representative.png"} <= names
    # Empirical: one group and one attack setting leave nothing to compare: no figure at all.
    plan = attack_plan(tmp_path, figure_run(tmp_path))
    plan["runs"] = [r for r in plan["runs"] if r["group"] == "cohen" and r["num_noise"] == 4]
    written = empirical_report.write_empirical_analysis(plan, tmp_path / "emp")
    assert not [p for p in written if p.suffix == ".png"] and not list((tmp_path / "emp/figures").iterdir())


def test_empirical_figures_draw_the_certified_step_curve_between_the_attacked_eps(tmp_path, drawn):
    grid = figure_run(tmp_path)
    plan = attack_plan(tmp_path, grid)
    written = empirical_report.write_empirical_analysis(plan, tmp_path / "emp")
    assert {p.name for p in written if p.suffix == ".png"} == {
        "m_test.png",
        "groups.png",
    }  # no gradient-free run
    ax = drawn["m_test.png"].axes[0]
    (certified,) = [line for line in ax.get_lines() if line.get_label().startswith("certified")]
    x, y = certified.get_xdata(), certified.get_ydata()
    log = read_grid(grid)[0].log  # gaussian_sigma-0.25, the "cohen" group's model
    radii = log.loc[(log["correct"] == 1) & (log["radius"] > 0), "radius"].to_numpy()
    between = radii[(radii > 0.0) & (radii < 0.25) | (radii > 0.25) & (radii < 0.5)]
    assert len(between) >= 5 and set(between) <= set(x)
    # At every vertex the curve is the log's certified accuracy there (a step, not a line between eps).
    for r in between:
        assert certified_accuracy(log, [r])[0] in y[x == r]
    assert len(np.unique(y[(x > 0) & (x < 0.25)])) >= 3


def test_clopper_pearson_and_the_largest_certifiable_radius():
    low, high = clopper_pearson(24, 40)
    assert low == pytest.approx(0.43327, abs=1e-5) and high == pytest.approx(0.75135, abs=1e-5)
    assert clopper_pearson(0, 40)[0] == 0.0 and clopper_pearson(40, 40)[1] == 1.0
    # All n of n: the one-sided 97.5% bound is 0.025 ** (1 / n).
    assert clopper_pearson(40, 40)[0] == pytest.approx(0.025 ** (1 / 40))
    lows, highs = clopper_pearson(np.array([0, 3, 5]), 5)
    assert lows.shape == (3,) and (lows <= highs).all()
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        clopper_pearson(41, 40)
    # The number: 0.48 at sigma 0.25 with N = 256, alpha = 0.001.
    assert max_certifiable_radius(0.25, 256, 0.001) == pytest.approx(0.25 * 1.9329, abs=1e-3)
    assert max_certifiable_radius(0.5, 100_000, 0.001) == pytest.approx(
        0.5 * 3.8, abs=0.01
    ) and math.isfinite(max_certifiable_radius(1.0, 10**6, 0.001))
