"""ml3 plots (run by the ml3 binary with Debian's python3-matplotlib).

usage: python3 - curve METRICS_CSV OUT_PNG TITLE
       python3 - meta METRICS_CSV OUT_PNG TITLE
       python3 - compare DATA_JSON OUT_PNG TITLE

curve: a training run's learning curves (return, success, distance, losses)
against environment steps. compare: several methods' curves (mean and 95%
band over seeds, computed by ml3), from {"x_label": ..., "x": [...],
"x2_label": ..., "x2": [...], "order": [method names], "panels": [{"y_label": ..., "methods": {name:
{"n": seeds, "mean": [...], "lo": [...], "hi": [...]}}}]}.
"""
import csv
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def num(s):
    try:
        v = float(s)
        return v if math.isfinite(v) else None
    except (TypeError, ValueError):
        return None


def draw_panels(axes, rows, x, panels, x_label, style_of):
    """Each panel: (y label, [(column, legend name), ...]) plotted against x."""
    for ax, (label, series) in zip(axes, panels):
        for key, name in series:
            pts = [(xi, num(r.get(key))) for xi, r in zip(x, rows)]
            pts = [(a, b) for a, b in pts if b is not None and a is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style_of(key), label=name, markersize=3,
                        linewidth=1.0)
        ax.set_xlabel(x_label)
        ax.set_ylabel(label, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)


def read_rows(csv_path):
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise SystemExit("no metrics rows in " + csv_path)
    return rows


def curve(csv_path, out_png, title):
    rows = read_rows(csv_path)
    x = [num(r["env_steps"]) for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    panels = [
        ("return (training episodes)", [("return_mean", "train (stochastic)"), ("eval_return_mean", "eval (deterministic)")]),
        ("success rate", [("success_rate", "train (stochastic)"), ("eval_success_rate", "eval test split (deterministic)")]),
        ("final distance", [("final_distance_mean", "train"), ("eval_final_distance_mean", "eval test split")]),
        ("losses / entropy", [("policy_loss", "policy loss"), ("value_loss", "value loss"), ("entropy", "entropy")]),
    ]
    draw_panels(axes.flat, rows, x, panels, "environment steps", lambda key: "o-" if key.startswith("eval_") else "-")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)


def meta(csv_path, out_png, title):
    rows = read_rows(csv_path)
    x = [num(r["iteration"]) for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = [
        ("task loss (REINFORCE surrogate after the inner step)", [("task_loss", "task loss")]),
        ("success rate of pool policies", [("pool_success_rate", "before the inner step"), ("post_success_rate", "after")]),
        ("return of pool policies", [("pool_return", "before"), ("post_return", "after")]),
    ]
    draw_panels(axes, rows, x, panels, "meta-iteration", lambda key: "-")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)


def sine(csv_path, out_png, title):
    rows = read_rows(csv_path)
    x = [num(r["iteration"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = [
        ("MSE after the inner step (task loss)", [("task_loss", "task loss")]),
        ("learned loss before the inner step", [("inner_loss", "inner loss")]),
    ]
    draw_panels(axes, rows, x, panels, "meta-iteration", lambda key: "-")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)


def compare(json_path, out_png, title):
    """Mean and 95% band per method; one row vs policy updates and, when the
    data has "x2" (environment steps), a second row against it."""
    with open(json_path) as f:
        data = json.load(f)
    panels = data["panels"]
    axes_x = [(data["x"], data.get("x_label", "policy updates"))]
    if "x2" in data:
        axes_x.append((data["x2"], data.get("x2_label", "environment steps")))
    fig, axes = plt.subplots(len(axes_x), len(panels), figsize=(6.5 * len(panels), 4.2 * len(axes_x)),
                             squeeze=False)
    for row, (x, x_label) in enumerate(axes_x):
        for ax, panel in zip(axes[row], panels):
            for name in data.get("order", list(panel["methods"])):
                m = panel["methods"][name]
                line, = ax.plot(x, m["mean"], label=f"{name} (n={m['n']})", linewidth=1.3)
                ax.fill_between(x, m["lo"], m["hi"], alpha=0.18, color=line.get_color(), linewidth=0)
            ax.set_xlabel(x_label)
            ax.set_ylabel(panel["y_label"])
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)


if __name__ == "__main__":
    mode, src, out, title = sys.argv[1:5]
    {"curve": curve, "meta": meta, "sine": sine, "compare": compare}[mode](src, out, title)
