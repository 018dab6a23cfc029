#!/usr/bin/env python
"""Figures of a run: certified accuracy against radius (models, upper envelopes overall and per sigma, one
representative model per sigma: SmoothAdv Figure 1) and the ablations over m_train, eps and training method
(Figures 4-6). An ablation this run has no models for is drawn as an empty, labelled figure, so that the
report always has the same figures.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from aggregate import (  # scripts/ is on sys.path when run as a script
    group_logs,
    load_logs,
    method_group,
    read_run,
)
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rsmooth.analysis import (
    PLOT_MAX_RADIUS,
    average_certified_radius,
    collect_provenance,
    plot_certified_accuracy,
    plot_envelopes,
    representative_models,
)

MAX_CURVES = 12


def empty_figure(path: Path, message: str) -> None:
    fig = Figure(figsize=(5, 3.6))
    FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    fig.savefig(path)


def main() -> None:
    args, grid, config = read_run(__doc__)
    dataset = config["training"]["dataset"]
    max_radius = max(PLOT_MAX_RADIUS.get(dataset, 2.25), *config.get("analysis", {}).get("radii", [0.0]))
    provenance = collect_provenance(config)
    args.out.mkdir(parents=True, exist_ok=True)
    plot = {"max_radius": max_radius, "provenance": provenance}

    logs, keys = load_logs(grid)
    groups = group_logs(grid, keys, logs)

    best = sorted(logs, key=lambda name: average_certified_radius(logs[name]), reverse=True)[:MAX_CURVES]
    title = "every model" if len(best) == len(logs) else f"the {len(best)} models with the highest ACR"
    plot_certified_accuracy(
        {n: logs[n] for n in best}, args.out / "certified_accuracy.png", title=title, **plot
    )

    plot_envelopes(groups, args.out / "envelopes.png", title="Upper envelopes", **plot)

    per_sigma: dict[str, dict] = defaultdict(dict)
    by_sigma: dict[float, dict] = defaultdict(dict)
    for name, (cell_id, sigma) in keys.items():
        per_sigma[f"{method_group(grid[cell_id])}, sigma={sigma}"][name] = logs[name]
        if grid[cell_id]["train"]["method"] == "smoothadv":
            by_sigma[float(sigma)][name] = logs[name]
    plot_envelopes(dict(per_sigma), args.out / "envelopes_per_sigma.png", title="Envelopes per sigma", **plot)

    if by_sigma:
        chosen = representative_models(dict(by_sigma))
        curves = {
            f"sigma={s}: {name.split(' @ ')[0]}": by_sigma[s][name] for s, name in sorted(chosen.items())
        }
        plot_certified_accuracy(
            curves, args.out / "representative.png", title="One SmoothAdv model per sigma", **plot
        )
    else:
        empty_figure(args.out / "representative.png", "no SmoothAdv models in this run")

    # Ablations: the envelope over all other hyper-parameters, one curve per value (Figures 4-6).
    ablations = {"m_train": "num_noise_vec", "eps": "eps"}
    for label, parameter in ablations.items():
        curves: dict[str, dict] = defaultdict(dict)
        for name, (cell_id, _) in keys.items():
            cell = grid[cell_id]
            if method_is_plain_smoothadv(cell):
                curves[f"{label}={cell['train'][parameter]}"][name] = logs[name]
        path = args.out / f"ablation_{label}.png"
        if len(curves) > 1:
            plot_envelopes(dict(sorted(curves.items())), path, title=f"SmoothAdv envelope by {label}", **plot)
        else:
            empty_figure(
                path,
                f"this run has SmoothAdv models with {len(curves)} value(s) of {label}: nothing to compare",
            )
    # Figure 4: SmoothAdv against the vanilla-PGD baselines and Cohen et al.
    baselines = ("gaussian", "smoothadv", "vanilla PGD", "vanilla PGD + noise")
    compared = {g: groups[g] for g in baselines if g in groups}
    path = args.out / "ablation_method.png"
    if len(compared) > 1:
        plot_envelopes(compared, path, title="SmoothAdv against the vanilla-PGD baselines", **plot)
    else:
        empty_figure(path, "this run has fewer than two of: Gaussian, SmoothAdv, vanilla PGD (+ noise)")
    print(f"figures of {len(logs)} logs written to {args.out}")


def method_is_plain_smoothadv(cell: dict) -> bool:
    return cell["train"]["method"] == "smoothadv" and not cell["pretrain"] and not cell["pseudo_labels"]


if __name__ == "__main__":
    main()
