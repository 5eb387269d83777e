"""Your own model, real-sized: a convolutional network on handwritten digits, its quantized releases, the indicator
with exact standard errors, and a 64-shadow LiRA audit of the same releases for comparison.

    python examples/digits_cnn.py --preset smoke     # tiny CNN, 8 shadows: seconds
    python examples/digits_cnn.py --preset paper     # 102,881-weight CNN, 64 shadows: ~17 min on 2 shared cores

Data: scikit-learn's handwritten digits (1,797 8x8 images, shipped with scikit-learn), task "is the digit odd?"
(one logit). A pool of ``2 n`` images; the target model trains on a random half of it (the members). Model:
conv 3x3 (1 -> c channels) -> tanh -> dense (64 c -> h) -> tanh -> dense (h -> 1), float64, trained to the
minimum of  mean logistic loss + ridge/2 ||parameters||^2  (all penalised): Adam, then exact Newton steps until
the gradient's norm is below 1e-8 (the sandwich assumes the optimum). Six quantized releases (``RELEASES``; each
parameter tensor quantized on its own).

Indicator: exact sandwich standard errors (``mislib.sandwich.model_standard_errors``, hessian="exact": block
conjugate gradients on exact Hessian-vector products, preconditioned by the Gauss-Newton form inverted exactly
by Woodbury), then ``mislib.indicator.estimate`` per release. Its Gauss-Newton-only variant is timed too and
its error against the exact standard errors reported. Audit: 64 shadow models, each trained with the same recipe
on a random half of the pool; online LiRA (logit of the true-label probability) for every release, AUC with
bootstrap intervals (``mislib.attacks.attack_metrics``). Compared: the cost of the indicator's point estimate
against the audit's, and the two privacy orderings of the releases (``ranking_agreement``: indicator
``r_soft_with_scale``, higher = more private, against the LiRA AUC, higher = less private).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import torch
from torch import nn
from torch.nn.utils import vector_to_parameters

from mislib import quantizers as Q
from mislib.attacks import attack_metrics, lira_online_scores
from mislib.evaluation.agreement import ranking_agreement
from mislib.indicator import estimate
from mislib.modules import flatten_params, unflatten_params
from mislib.sandwich import ModelCurvature, model_standard_errors

PRESETS = {
    "smoke": dict(n=60, channels=2, hidden=6, shadows=8, adam_steps=100, lbfgs_steps=50, ridge=3e-2),
    "paper": dict(n=150, channels=8, hidden=200, shadows=64, adam_steps=300, lbfgs_steps=200, ridge=5e-2),
}
RELEASES = {
    "uniform 8-bit": ("uniform", {"bits": 8}),
    "uniform 4-bit": ("uniform", {"bits": 4}),
    "uniform 4-bit, pow2 scale": ("uniform", {"bits": 4, "scale_format": "pow2"}),
    "ternary (BitNet b1.58)": ("ternary_absmean", {}),
    "sign": ("sign", {}),
    "public grid, step 0.05": ("fixed_grid", {"step": 0.05}),
}
GRAD_TOL = 1e-8


class DigitsCNN(nn.Module):
    """conv 3x3 (1 -> channels, padding 1) -> tanh -> dense (64 channels -> hidden) -> tanh -> dense (hidden -> 1)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1, dtype=torch.float64)
        self.hidden = nn.Linear(64 * channels, hidden, dtype=torch.float64)
        self.output = nn.Linear(hidden, 1, dtype=torch.float64)

    def forward(self, x):
        h = torch.tanh(self.conv(x.reshape(-1, 1, 8, 8))).flatten(1)
        return self.output(torch.tanh(self.hidden(h))).squeeze(-1)


def digits_pool(n: int, seed: int = 0):
    """``2 n`` images [2n, 64] in [0, 1] and labels (odd digit = 1), drawn without replacement (seeded)."""
    from sklearn.datasets import load_digits

    images, digits = load_digits(return_X_y=True)
    if 2 * n > len(digits):
        raise ValueError(f"n = {n} needs {2 * n} images; the data set has {len(digits)}")
    order = np.random.default_rng(seed).permutation(len(digits))[:2 * n]
    X = torch.tensor(images[order] / 16.0, dtype=torch.float64)
    y = torch.tensor(digits[order] % 2, dtype=torch.float64)
    return X, y


def penalize(name: str) -> bool:
    """Every parameter is penalised here, biases included: a bias whose unit the ridge has switched off would
    otherwise be a flat direction of the objective (no minimum to take standard errors at)."""
    return True


def objective(model, X, y, ridge):
    f = model(X)
    return (nn.functional.softplus(f) - y * f).mean() + ridge / 2 * sum(p.square().sum() for p in model.parameters())


def _gradient(model, X, y, ridge):
    model.zero_grad()
    value = objective(model, X, y, ridge)
    value.backward()
    return value.detach(), torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def _lbfgs(model, X, y, ridge, iterations):
    optimiser = torch.optim.LBFGS(model.parameters(), max_iter=iterations, tolerance_grad=0, tolerance_change=0,
                                  history_size=20, line_search_fn="strong_wolfe")
    optimiser.step(lambda: _gradient(model, X, y, ridge)[0])


def train(X, y, channels, hidden, ridge, adam_steps, lbfgs_steps, seed):
    """The recipe of every model here (target and shadows): Adam (full batch, lr 0.01), then L-BFGS."""
    torch.manual_seed(seed)
    model = DigitsCNN(channels, hidden)
    adam = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(adam_steps):
        adam.zero_grad()
        objective(model, X, y, ridge).backward()
        adam.step()
    _lbfgs(model, X, y, ridge, lbfgs_steps)
    return model


def newton_polish(model, X, y, ridge, grad_tol=GRAD_TOL, max_steps=10):
    """Newton steps with backtracking until the gradient norm is below ``grad_tol`` (the sandwich needs the
    optimum): each solves ``H s = g`` exactly (``ModelCurvature.solve``: conjugate gradients on exact
    Hessian-vector products, preconditioned by the Gauss-Newton form). Returns the final gradient norm."""
    for _ in range(max_steps):
        value, g = _gradient(model, X, y, ridge)
        if float(g.norm()) <= grad_tol:
            break
        try:
            curvature = ModelCurvature(model, X, y, "logistic", ridge, penalize=penalize)
            step = curvature.solve(g.unsqueeze(0), tol=1e-6, max_iter=100)[0][0]
        except ValueError:              # not yet where the Hessian is positive definite: quasi-Newton steps
            _lbfgs(model, X, y, ridge, 100)
            continue
        theta = flatten_params({n: p.detach() for n, p in model.named_parameters()})
        t = 1.0
        for _ in range(40):
            vector_to_parameters(theta - t * step, model.parameters())
            with torch.no_grad():
                if float(objective(model, X, y, ridge)) <= float(value) - 1e-4 * t * float(step @ g) + 1e-15:
                    break
            t /= 2
    return float(_gradient(model, X, y, ridge)[1].norm())


def release(model, quantizer):
    """A copy of ``model`` whose every parameter tensor is quantized on its own."""
    out = DigitsCNN(model.conv.out_channels, model.hidden.out_features)
    with torch.no_grad():
        for (name, p), (_, q) in zip(model.named_parameters(), out.named_parameters()):
            q.copy_(quantizer(p.detach()))
    return out


def statistic(model, X, y):
    """LiRA's statistic: the logit of the true-label probability (``f`` for label 1, ``-f`` for label 0)."""
    with torch.no_grad():
        f = model(X)
    return ((2 * y - 1) * f).numpy()


def run(preset: str = "smoke", seed: int = 0, device: str = "cpu", threads: int = 1, verbose: bool = True) -> dict:
    """Everything above at one preset; returns a dict of the numbers (and the flat standard errors)."""
    cfg = PRESETS[preset]
    torch.set_num_threads(threads)
    n, ridge = cfg["n"], cfg["ridge"]
    X, y = digits_pool(n, seed)
    rng = np.random.default_rng(seed + 1)
    members = np.zeros(2 * n, dtype=bool)
    members[rng.permutation(2 * n)[:n]] = True

    start = time.perf_counter()
    target = train(X[members], y[members], cfg["channels"], cfg["hidden"], ridge, cfg["adam_steps"],
                   cfg["lbfgs_steps"], seed)
    target_train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    target_grad = newton_polish(target, X[members], y[members], ridge)
    polish_seconds = time.perf_counter() - start
    if verbose:
        print(f"target trained in {target_train_seconds:.1f} s, polished to |gradient| = {target_grad:.1e} in "
              f"{polish_seconds:.1f} s", flush=True)
    p = sum(v.numel() for v in target.parameters())
    quantizers = {label: Q.get(name, **params) for label, (name, params) in RELEASES.items()}

    # ---- the indicator: exact standard errors once, then one estimate per release
    start = time.perf_counter()
    flat_se, details = model_standard_errors(target, X[members], y[members], "logistic", ridge, hessian="exact",
                                             penalize=penalize, device=device, return_details=True)
    stderr_seconds = time.perf_counter() - start
    if verbose:
        print(f"exact standard errors in {stderr_seconds:.1f} s ({details['iterations']} iterations)", flush=True)
    like = {name: v.detach() for name, v in target.named_parameters()}
    stderr = unflatten_params(flat_se.cpu(), like)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        indicator = {label: estimate(like, stderr, q, n) for label, q in quantizers.items()}
    indicator_seconds = time.perf_counter() - start
    estimate_seconds = indicator_seconds - stderr_seconds
    start = time.perf_counter()
    gn_se = model_standard_errors(target, X[members], y[members], "logistic", ridge, hessian="gauss-newton",
                                  penalize=penalize, device=device).cpu()
    gauss_newton_seconds = time.perf_counter() - start
    gn_error = float(((gn_se - flat_se.cpu()).abs() / flat_se.cpu()).max())

    # ---- the audit: shadows with the same recipe on random halves of the pool, online LiRA per release
    start = time.perf_counter()
    in_mask = np.zeros((cfg["shadows"], 2 * n), dtype=bool)
    shadows = []
    for s in range(cfg["shadows"]):
        in_mask[s, rng.permutation(2 * n)[:n]] = True
        idx = torch.from_numpy(in_mask[s])
        shadows.append(train(X[idx], y[idx], cfg["channels"], cfg["hidden"], ridge, cfg["adam_steps"],
                             cfg["lbfgs_steps"], seed + 100 + s))
    shadow_train_seconds = time.perf_counter() - start
    audit = {}
    for label, q in quantizers.items():
        target_stats = statistic(release(target, q), X, y)
        shadow_stats = np.stack([statistic(release(m, q), X, y) for m in shadows])
        scores = lira_online_scores(target_stats, shadow_stats, shadow_stats, in_mask=in_mask, out_mask=~in_mask,
                                    fixed_variance=cfg["shadows"] < 32)   # few shadows: pooled variances
        audit[label] = attack_metrics(scores, members.astype(int), n_bootstrap=200, seed=seed)
    audit_seconds = time.perf_counter() - start

    labels = list(RELEASES)
    score = [indicator[label].r_soft_with_scale for label in labels]
    auc = [audit[label]["auc"] for label in labels]
    agreement = ranking_agreement(score, auc, [audit[label]["auc_low"] for label in labels],
                                  [audit[label]["auc_high"] for label in labels], reference_higher_is_private=False)
    result = {
        "preset": preset, "n": n, "parameters": p, "shadows": cfg["shadows"], "ridge": ridge,
        "target_gradient_norm": target_grad, "target_train_seconds": target_train_seconds,
        "target_polish_seconds": polish_seconds,
        "stderr_method": details["method"], "cg_iterations": details["iterations"],
        "cg_residual": details["residual"], "threads": threads, "indicator_seconds": indicator_seconds,
        "gauss_newton_seconds": gauss_newton_seconds, "gauss_newton_max_relative_error": gn_error,
        "audit_seconds": audit_seconds, "shadow_train_seconds": shadow_train_seconds,
        "cost_ratio": audit_seconds / indicator_seconds,
        "stderr_seconds": stderr_seconds, "estimate_seconds": estimate_seconds,
        "cost_ratio_gauss_newton": audit_seconds / (gauss_newton_seconds + estimate_seconds),
        "releases": {label: {"r_soft_with_scale": indicator[label].r_soft_with_scale,
                             "r_min_with_scale": indicator[label].r_min_with_scale,
                             "r_soft": indicator[label].r_soft, "p_flip_with_scale": indicator[label].p_flip_with_scale,
                             "lira_auc": audit[label]["auc"], "lira_auc_low": audit[label]["auc_low"],
                             "lira_auc_high": audit[label]["auc_high"]} for label in labels},
        "agreement": agreement.as_dict(),
        "stderr": flat_se.cpu(),
        "model": target, "members": (X[members], y[members]),     # for checks (not printed)
    }
    if verbose:
        print(f"digits CNN ({preset}): {p:,} parameters, n = {n} members, |gradient| = {target_grad:.1e}; "
              f"standard errors: {details['method']} ({details['iterations']} iterations)")
        print(f"{'release':28s} {'r_soft_w/scale':>15s} {'r_min_w/scale':>14s} {'LiRA AUC [95% CI]':>26s}")
        for label in labels:
            r = result["releases"][label]
            print(f"{label:28s} {r['r_soft_with_scale']:15.4g} {r['r_min_with_scale']:14.4g} "
                  f"{r['lira_auc']:8.3f} [{r['lira_auc_low']:.3f}, {r['lira_auc_high']:.3f}]")
        print(f"cost: indicator {indicator_seconds:.2f} s (exact standard errors + 6 estimates) vs audit "
              f"{audit_seconds:.1f} s ({cfg['shadows']} shadows): {result['cost_ratio']:.0f}x; Gauss-Newton standard "
              f"errors {gauss_newton_seconds:.2f} s (max relative error {gn_error:.2g}); one training "
              f"{target_train_seconds:.1f} s")
        print(f"ranking agreement: {json.dumps({k: v for k, v in agreement.as_dict().items()})}")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="smoke")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: small tensor programs on a shared machine run fastest so)")
    args = parser.parse_args(argv)
    return run(args.preset, args.seed, args.device, args.threads)


if __name__ == "__main__":
    main()
