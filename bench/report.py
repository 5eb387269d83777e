"""The README's performance table, from bench/results/*.json.   python -m bench.report"""

from __future__ import annotations

from bench.common import load


def _seconds(value: float) -> str:
    if value >= 120:
        return f"{value / 60:.1f} min"
    if value >= 1:
        return f"{value:.1f} s"
    return f"{value * 1000:.0f} ms"


def _met(flag) -> str:
    return {True: "yes", False: "**no**", None: "not run"}[flag]


def rows() -> list[tuple[str, str, str, str, str]]:
    """(benchmark, command, measured, target, met?) for every result present."""
    out = []
    batched = load("batched_training")
    if batched:
        by = {r["threads"]: r for r in batched["by_threads"]}
        out.append(("Batched training: 256 logistic regressions (n = 500, d = 20) vs a scikit-learn loop",
                    batched["command"],
                    f"{batched['speedup']:.1f}x ({_seconds(batched['batched_seconds'])} vs "
                    f"{_seconds(batched['sklearn_loop_seconds'])}; 1 thread {by[1]['speedup']:.1f}x, 2 threads "
                    f"{by[2]['speedup']:.1f}x); coefficients within {batched['max_abs_coefficient_difference']:.0e}",
                    f">= {batched['target_speedup']:.0f}x, same coefficients", _met(batched["met"])))
    lira = load("indicator_vs_lira")
    if lira:
        for r in lira["rows"]:
            rank = r["ranking"]
            separated = (f", {rank['concordant']:.0f} of {rank['n_separated']} pairs separated by the AUC intervals "
                         f"ordered alike" if rank["n_separated"] else ", no pair separated by the AUC intervals")
            out.append((f"Indicator vs LiRA with {r['n_shadow']} shadow models: {r['model']} "
                        f"({r['parameters']} parameters, {r['n_quantizers']} quantizers)", lira["command"],
                        f"{r['ratio']:.0f}x cheaper ({_seconds(r['indicator_seconds'])} vs "
                        f"{_seconds(r['lira_seconds'])}); rankings: Kendall tau {rank['kendall_tau']:.2f}"
                        f"{separated}", f">= {r['target_ratio']:.0f}x", _met(r["met"])))
    for preset in ("smoke", "paper"):
        rep = load(f"reproduce_{preset}")
        target = {"smoke": "3 min", "paper": "30 min"}[preset]
        if rep:
            slow = max(rep["notebooks"], key=lambda n: n["seconds"])
            out.append((f"make reproduce, preset {preset} ({len(rep['notebooks'])} notebooks)", rep["command"],
                        f"{_seconds(rep['total_seconds'])} in all (slowest {slow['name']}: "
                        f"{_seconds(slow['seconds'])}); peak {rep['peak_rss_mb'] / 1024:.2f} GiB"
                        + ("" if rep["all_notebooks_ok"] else "; a notebook FAILED"),
                        f"< {target}, peak < 4 GiB", _met(rep["met"])))
        else:
            out.append((f"make reproduce, preset {preset}", f"python -m bench.reproduce --preset {preset}",
                        "not measured yet", f"< {target}, peak < 4 GiB", _met(None)))
    heads = load("tanh_mlp_scaling")
    if heads:
        compared = [r for r in heads["rows"] if "se_ratio" in r]
        big = [r for r in heads["rows"] if "se_ratio" not in r]
        largest = max(compared, key=lambda r: r["parameters"])
        text = (f"p = {largest['parameters']:,}: polish {largest['polish_ratio']:.1f}x "
                f"({_seconds(largest['polish_matrix_free_seconds'])} vs {_seconds(largest['polish_dense_seconds'])}), "
                f"standard errors {largest['se_ratio']:.1f}x ({_seconds(largest['se_matrix_free_seconds'])} vs "
                f"{_seconds(largest['se_dense_seconds'])}); largest relative difference "
                f"{max(r['se_max_relative_difference'] for r in compared):.0e}")
        influence = [r for r in compared if "influence_ratio" in r]
        if influence:
            text += "; white-box insertion influence against the autodiff CG it replaced: " + ", ".join(
                f"p = {r['parameters']:,} {r['influence_ratio']:.0f}x ({_seconds(r['influence_matrix_free_seconds'])} "
                f"vs {_seconds(r['influence_autodiff_cg_seconds'])})" for r in influence) + \
                f", largest relative difference {max(r['influence_max_relative_difference'] for r in influence):.0e}"
        if big:
            text += (f"; p = {big[0]['parameters']:,} (matrix-free only): polish of {big[0]['heads']} heads "
                     f"{_seconds(big[0]['polish_matrix_free_seconds'])}, standard errors "
                     f"{_seconds(big[0]['se_matrix_free_seconds'])}"
                     + (f", influence of {big[0]['influence_rows']} rows "
                        f"{_seconds(big[0]['influence_matrix_free_seconds'])}" if "influence_rows" in big[0] else "")
                     + " (the dense path would need an 8.6 GB Hessian per head)")
        text += f"; both polishes reach the same minimum in {sum(r['polish_same_minimum'] for r in compared)} of " \
                f"{sum(r['heads'] for r in compared)} heads (the others: equal objectives to " \
                f"{max(r['polish_objective_max_difference'] for r in compared):.0e})"
        out.append(("Matrix-free vs dense Newton polish and sandwich of tanh heads (8 heads, 16 units, sparse 0/1 "
                    "inputs)", heads["command"], text,
                    f">= {heads['target_ratio']:.0f}x at p ~ 8,000, same standard errors (1e-6)", _met(heads["met"])))
    scaling = load("indicator_scaling")
    if scaling and "summary" in scaling:
        s = scaling["summary"]
        new = {r["parameters"]: r for r in scaling["rows"] if r["kind"] == "woodbury" and r["n"] == 256}
        old = {r["parameters"]: r for r in scaling["rows"] if r["kind"] == "previous"}
        points = "; ".join(f"10^{len(str(p)) - 1}: {_seconds(r['seconds'])}"
                           + (f" (was {_seconds(old[p]['seconds'])})" if p in old else "")
                           for p, r in sorted(new.items()))
        big = new.get(10 ** 6)
        tail = (f"; at 10^6 peak {big['extra_peak_mb'] / big['data_mb']:.2f}x the data, max relative error "
                f"{s['exactness_at_1e6']['exactness_max_relative_error']:.0e} on 20 coordinates" if big else "")
        out.append(("Indicator cost vs model size: exact standard errors + 10 quantizers (logistic, n = 256)",
                    scaling["command"], points + tail
                    + f"; growth p^{s['exponent_in_p']:.2f}, n^{s['exponent_in_n']:.2f}",
                    "10^6 in <= 10 s, 10^5 in <= 1 s, peak <= 2x data",
                    _met(all(t["met"] and t["memory_met"] for t in s["targets"].values()))))
    return out


def plot_scaling(path=None):
    """bench/results/indicator_scaling.png: seconds against parameters, per method and thread count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.common import RESULTS
    from mislib.plotting import use_style

    scaling = load("indicator_scaling")
    if not scaling:
        return None
    use_style()
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, label, style in (("woodbury", "exact, by structure (Woodbury)", "o-"),
                               ("previous", "before: exact Hessian, then CG with a sketch", "s--")):
        points = sorted((r["parameters"], r["seconds"]) for r in scaling["rows"]
                        if r["kind"] == kind and r.get("n", 256) == 256)
        if points:
            ax.plot(*zip(*points), style, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters of the model")
    ax.set_ylabel("seconds for all standard errors")
    ax.set_title("Cost of the sandwich (n = 256)")
    ax.legend(fontsize=7)
    path = path or RESULTS / "indicator_scaling.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def markdown() -> str:
    lines = ["| Benchmark | Command | Measured | Target | Met? |", "|---|---|---|---|---|"]
    lines += [f"| {b} | `{c}` | {m} | {t} | {ok} |" for b, c, m, t, ok in rows()]
    return "\n".join(lines)


if __name__ == "__main__":
    plot_scaling()
    print(markdown())
