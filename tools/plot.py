"""ml3 plots (run by the ml3 binary with Debian's python3-matplotlib).

usage: python3 - curve METRICS_CSV OUT_PNG TITLE
       python3 - meta METRICS_CSV OUT_PNG TITLE
       python3 - compare DATA_JSON OUT_PNG TITLE
       python3 - sine_shaped|sine_frequency METRICS_CSV OUT_PNG TITLE
       python3 - landscape DATA_JSON OUT_PNG TITLE
       python3 - mountain_car METRICS_CSV OUT_PNG TITLE
       python3 - mbrl METRICS_CSV OUT_PNG TITLE

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


def meta_panels(csv_path, out_png, title, panels):
    """A meta-training run's metrics against meta-iterations, one axis per panel."""
    rows = read_rows(csv_path)
    x = [num(r["iteration"]) for r in rows]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2))
    draw_panels(axes, rows, x, panels, "meta-iteration", lambda key: "o-" if key.startswith("eval_") else "-")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)


def meta(csv_path, out_png, title):
    meta_panels(csv_path, out_png, title, [
        ("task loss (REINFORCE surrogate after the inner step)", [("task_loss", "task loss")]),
        ("success rate of pool policies", [("pool_success_rate", "before the inner step"), ("post_success_rate", "after")]),
        ("return of pool policies", [("pool_return", "before"), ("post_return", "after")]),
    ])


def sine(csv_path, out_png, title, task_label="MSE after the inner step (task loss)"):
    meta_panels(csv_path, out_png, title, [
        (task_label, [("task_loss", "task loss")]),
        ("learned loss before the (first) inner step", [("inner_loss", "inner loss")]),
    ])


def mountain_car(csv_path, out_png, title):
    meta_panels(csv_path, out_png, title, [
        ("task loss after the inner step", [("task_loss", "task loss")]),
        ("final position (goal 0.5)", [("pool_final_position", "pool, after the inner step"),
                                       ("eval_final_position", "meta-test, after the last step")]),
        ("meta-test: steps at the goal in a row", [("eval_max_consecutive_at_goal", "max consecutive")]),
    ])


def mbrl(csv_path, out_png, title):
    meta_panels(csv_path, out_png, title, [
        ("task loss after the inner step (through the model)", [("task_loss", "task loss")]),
        ("final fingertip distance (m)", [("pool_model_distance", "pool, model rollout"),
                                          ("pool_real_distance", "pool, MuJoCo"),
                                          ("eval_real_distance", "meta-test goals, MuJoCo")]),
        ("dynamics model NLL (normalised)", [("model_nll", "NLL of the last fit")]),
    ])


def es(csv_path, out_png, title):
    meta_panels(csv_path, out_png, title, [
        ("fitness: AUC + final value of success or return (es.fitness), train goals",
         [("fitness_mean", "population mean"), ("fitness_max", "best member"),
          ("eval_center_fitness", "the mean's drift"), ("eval_ppo_fitness", "PPO, same lifetimes")]),
        ("the search", [("mean_norm", "|mean|"), ("step_norm", "|step|")]),
    ])


def landscape(json_path, out_png, title):
    """1-D curves and 2-D heat maps of the learned loss and the task loss,
    from {"one_d": [{"label", "x_label", "x": [...], "curves": {name: [...]},
    "marks": {name: x}}], "two_d": [{"label", "x_label", "y_label", "x": [...],
    "y": [...], "surfaces": {name: [[...] per y]}, "marks": {name: [x, y]}}]}.
    Each curve / surface is min-max normalised for display; minima marked."""
    with open(json_path) as f:
        data = json.load(f)
    one_d, two_d = data.get("one_d", []), data.get("two_d", [])
    n2 = sum(len(p["surfaces"]) for p in two_d)
    cols = max(len(one_d) + n2, 1)
    fig, axes = plt.subplots(1, cols, figsize=(5.2 * cols, 4.4), squeeze=False)
    axes = list(axes[0])
    for ax, panel in zip(axes, one_d):
        for name, ys in panel["curves"].items():
            vals = [num(v) for v in ys]
            finite = [v for v in vals if v is not None]
            if not finite:
                continue
            lo, hi = min(finite), max(finite)
            scale = (hi - lo) or 1.0
            norm = [None if v is None else (v - lo) / scale for v in vals]
            line, = ax.plot(panel["x"], norm, label=f"{name} (range {lo:.3g}..{hi:.3g})", linewidth=1.3)
            i = min(range(len(vals)), key=lambda k: vals[k] if vals[k] is not None else float("inf"))
            ax.plot([panel["x"][i]], [norm[i]], "o", color=line.get_color(), markersize=6)
        for name, xv in panel.get("marks", {}).items():
            ax.axvline(xv, color="k", linestyle="--", linewidth=0.8)
            ax.text(xv, 1.02, name, fontsize=8, ha="center")
        ax.set_xlabel(panel["x_label"])
        ax.set_ylabel("normalised loss (dots: minima)")
        ax.set_title(panel["label"], fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    k = len(one_d)
    for panel in two_d:
        for name, z in panel["surfaces"].items():
            ax = axes[k]
            k += 1
            zz = [[num(v) if num(v) is not None else float("nan") for v in row] for row in z]
            im = ax.pcolormesh(panel["x"], panel["y"], zz, shading="auto", cmap="viridis")
            fig.colorbar(im, ax=ax)
            best = None
            for yi, row in enumerate(zz):
                for xi, v in enumerate(row):
                    if v == v and (best is None or v < best[0]):
                        best = (v, panel["x"][xi], panel["y"][yi])
            if best:
                ax.plot([best[1]], [best[2]], "r*", markersize=12, label="minimum")
            for mname, (mx, my) in panel.get("marks", {}).items():
                ax.plot([mx], [my], "wx", markersize=9, mew=2, label=mname)
            ax.set_xlabel(panel["x_label"])
            ax.set_ylabel(panel["y_label"])
            ax.set_title(f"{panel['label']}: {name}", fontsize=10)
            ax.legend(fontsize=7)
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
            for i, name in enumerate(data.get("order", list(panel["methods"]))):
                m = panel["methods"][name]
                color = f"C{i % 10}"  # a method's colour is the same in every panel
                if row == 1 and m.get("env_steps", 1) == 0:
                    # No environment steps (behaviour cloning, a target network
                    # alone): its final level, not a curve along the axis.
                    ax.axhline(m["mean"][-1], linestyle="--", linewidth=1.3, color=color,
                               label=f"{name} (n={m['n']}, final, 0 env steps)")
                    continue
                line, = ax.plot(x, m["mean"], label=f"{name} (n={m['n']})", linewidth=1.3, color=color)
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
    modes = {
        "curve": curve,
        "meta": meta,
        "sine": sine,
        "sine_shaped": lambda c, o, t: sine(c, o, t, "|theta - theta*| after the last inner step"),
        "sine_frequency": lambda c, o, t: sine(c, o, t, "MSE after the last inner step (task loss)"),
        "landscape": landscape,
        "mountain_car": mountain_car,
        "mbrl": mbrl,
        "es": es,
        "compare": compare,
    }
    modes[mode](src, out, title)
