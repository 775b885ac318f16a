"""Derived numbers (FLOP utilisation, ratios) and the outputs: results.json, results.md, results.png."""

from __future__ import annotations

from pathlib import Path

PEAK_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def peak_dtypes(precisions: list[str]) -> list[str]:
    """The matmul dtypes to measure: float32 and bfloat16 always, float16 when a cell uses it."""
    extra = ["float16"] if "mixed_float16" in precisions else []
    return ["float32", "bfloat16", *extra]


def add_utilisation(cell: dict, peaks: dict) -> dict:
    """Adds the peak of the cell's compute dtype, the % of it achieved, and eval and pipeline rates vs training."""
    train = cell["train_examples_per_sec"]["median"]
    dtype = PEAK_DTYPE.get(cell["resolved_precision"], "float32")
    peak = peaks.get(dtype, {}).get("flops_per_sec", {}).get("median")
    return cell | {
        "peak_dtype": dtype, "peak_flops_per_sec": peak,
        "flop_utilisation_pct": 100 * cell["achieved_flops_per_sec"] / peak if peak else None,
        "eval_over_train": cell["eval_examples_per_sec"]["median"] / train,
        "pipeline_over_train": cell["pipeline_examples_per_sec"]["median"] / train,
    }


def ratios(contenders: dict) -> dict:
    """fmnist / keras_fit and fmnist / the faster torch contender (and the float32 counterparts), median over median."""
    rate = {k: v["examples_per_sec"]["median"] for k, v in contenders.items() if "examples_per_sec" in v}
    torch = {k: r for k, r in rate.items() if k.startswith("torch")}
    best = max(torch, key=torch.get) if torch else None
    out: dict = {"torch_best": best}
    for a, b, name in [("fmnist", "keras_fit", "fmnist / keras_fit"), ("fmnist", best, "fmnist / torch_best"),
                       ("fmnist_float32", "keras_fit", "fmnist_float32 / keras_fit"),
                       ("fmnist_float32", "torch_float32", "fmnist_float32 / torch_float32")]:
        if a in rate and b in rate:
            out[name] = rate[a] / rate[b]
    return out


def num(value, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _resolved(requested: str, resolved: str) -> str:
    return f"{resolved} (auto)" if requested == "auto" else resolved


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown(results: dict) -> str:
    meta, lines = results["meta"], ["# fmnist benchmark results", ""]
    lines += [f"{meta['started']}, {meta['cpu']} ({meta['cpu_count']} logical CPUs; features "
              f"{', '.join(meta.get('cpu_features') or []) or '?'}; oneDNN {'on' if meta.get('onednn') else 'off'}), "
              f"TensorFlow {meta['tensorflow']}, Keras {meta['keras']}, torch {meta['torch'] or 'absent'}, "
              f"fmnist {meta['git_commit'] or '?'}.", "",
              f"Command: `{meta['command']}`", ""]
    peaks = results.get("peaks") or {}
    if peaks:
        lines += ["## Peak: square matmul through TensorFlow", ""]
        lines += table(["dtype", "size", "GFLOP/s (median)", "spread"], [
            [d, str(p["size"]), num(p["flops_per_sec"]["median"] / 1e9, 1), f"{p['flops_per_sec']['spread_pct']:.1f}%"]
            for d, p in peaks.items()]) + [""]
    cells = results.get("cells") or []
    ok = [c for c in cells if "error" not in c]
    if ok:
        lines += ["## Training step time", ""]
        lines += table(
            ["model", "batch", "precision", "XLA", "strategy", "replicas", "BatchNorm", "steps/loop", "step ms",
             "train ex/s",
             "spread", "eval ex/s", "pipeline ex/s", "pipeline / train", "train GFLOP/s", "% of peak"],
            [[c["model"], str(c["batch_size"]), _resolved(c["precision"], c["resolved_precision"]),
              _resolved(c["jit_compile"], "yes" if c["resolved_jit_compile"] else "no"),
              c["strategy"], str(c["num_replicas"]), c.get("batchnorm", "-"), str(c["steps_per_loop"]),
              num(c["step_time_ms"]["median"], 2),
              num(c["train_examples_per_sec"]["median"]), f"{c['train_examples_per_sec']['spread_pct']:.1f}%",
              num(c["eval_examples_per_sec"]["median"]), num(c["pipeline_examples_per_sec"]["median"]),
              num(c["pipeline_over_train"], 1) + "x", num(c["achieved_flops_per_sec"] / 1e9, 1),
              num(c["flop_utilisation_pct"], 1) + ("" if c["flop_utilisation_pct"] is None else "%")]
             for c in ok]) + [""]
        c = ok[0]
        lines += [f"FLOPs per training example = 3 x forward ({c['model']}: {c['forward_flops_per_example']:,} "
                  "forward, counted by fmnist.models.flops); % of peak is against the matmul peak of the cell's "
                  "compute dtype.", ""]
    for c in cells:
        if "error" in c:
            lines += [f"- FAILED `{c['label']}`: {c['error'].splitlines()[0]}"]
    comparison = results.get("comparison") or {}
    if comparison.get("contenders"):
        lines += ["", "## Side by side", "",
                  f"{comparison['model']}, batch {comparison['batch_size']}, {comparison['examples_per_round']:,} "
                  f"examples per contender per round, {comparison['rounds']} rounds, contenders alternated.", ""]
        rows = []
        for name, c in comparison["contenders"].items():
            rate = c.get("examples_per_sec")
            rows.append([name, str(c.get("precision", "-")), num(rate["median"]) if rate else "-",
                         f"{rate['spread_pct']:.1f}%" if rate else c.get("error", "-").splitlines()[0]])
        lines += table(["contender", "precision", "ex/s (median)", "spread"], rows) + [""]
        best = comparison["ratios"].get("torch_best")
        lines += [f"- {k}{f' ({best})' if k.endswith('torch_best') else ''}: {v:.2f}x"
                  for k, v in comparison["ratios"].items() if k != "torch_best"]
        if comparison.get("note"):
            lines += [f"- {comparison['note']}"]
    return "\n".join(lines).rstrip() + "\n"


def chart(results: dict, path: Path) -> None:
    """Horizontal bars: training (min-max whiskers), evaluation and pipeline rates per cell; the comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [c for c in results.get("cells") or [] if "error" not in c]
    contenders = {k: v for k, v in ((results.get("comparison") or {}).get("contenders") or {}).items()
                  if "examples_per_sec" in v}
    panels = [p for p in (cells, contenders) if p]
    fig, axes = plt.subplots(len(panels) or 1, 1, squeeze=False,
                             figsize=(10, 1.5 + sum(0.6 * len(p) + 0.8 for p in panels)))
    for ax, panel in zip(axes[:, 0], panels, strict=False):
        if panel is cells:
            labels = [c["label"] for c in cells]
            series = [("train", "train_examples_per_sec"), ("eval", "eval_examples_per_sec"),
                      ("pipeline", "pipeline_examples_per_sec")]
            rows = [[c[key] for c in cells] for _, key in series]
            ax.set_title("Matrix: examples/s (median; whiskers min-max)")
        else:
            labels, series = list(contenders), [("train", "")]
            rows = [[c["examples_per_sec"] for c in contenders.values()]]
            ax.set_title("Side by side: training examples/s")
        height = 0.8 / len(series)
        for i, ((name, _), stats) in enumerate(zip(series, rows, strict=True)):
            y = [j + i * height for j in range(len(labels))]
            med = [s["median"] for s in stats]
            err = [[m - s["min"] for m, s in zip(med, stats, strict=True)],
                   [s["max"] - m for m, s in zip(med, stats, strict=True)]]
            bars = ax.barh(y, med, height, xerr=err, label=name, capsize=2)
            ax.bar_label(bars, [f"{m:,.0f}" for m in med], fontsize=7, padding=3)
        ax.set_yticks([j + height * (len(series) - 1) / 2 for j in range(len(labels))], labels, fontsize=8)
        ax.invert_yaxis()
        if panel is cells:
            ax.set_xscale("log")  # Pipeline rates are often 10-100x the training rate.
        ax.margins(x=0.15)
        ax.set_xlabel("examples/s")
        if len(series) > 1:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if not panels:
        axes[0, 0].text(0.5, 0.5, "no successful measurement", ha="center")
    meta = results.get("meta", {})
    fig.suptitle(f"fmnist benchmarks, {meta.get('cpu', '?')}, {meta.get('started', '')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
