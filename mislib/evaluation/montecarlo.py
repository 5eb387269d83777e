"""Monte-Carlo ground truth: the Bayes-optimal membership attack on a discrete release, by retraining.

For a release ``R = Q(theta_hat)`` taking finitely many values (THEORY.md §1),
``Delta_n = E_{z ~ P} TV( law(R | Z_1 = z), law(R) )``. Here both laws are estimated by retraining: for each of
``n_targets`` targets ``z ~ P``, ``n_retrain`` models are trained on ``z`` plus ``n - 1`` fresh points
(law(R | Z_1 = z)), and ``n_retrain_out`` models on ``n`` fresh points (law(R)); the release of each model (its
quantized weights, stored scales included since ``q(w)`` is de-quantized with them) is hashed to a category.

Two estimates, per target then averaged over targets:

- plug-in: ``TV(p_in_hat, p_out_hat)``. Biased *upwards* (finite samples look different even when the laws are
  not); with many categories (a continuous release: every retraining gives a new value) it tends to 1.
- split-sample (cross-fitted): the Bayes rule ``S = {r : p_in_hat(r) > p_out_hat(r)}`` is fitted on one half of
  the retrainings and its advantage ``P_in(S) - P_out(S)`` measured on the other half, then the halves swap. For
  a fixed ``S``, ``P_in(S) - P_out(S) <= TV``, and the held-out half estimates it without bias: an honest *lower
  bound* on ``Delta_n`` in expectation (a continuous release gives ~0: the rule never sees a value twice).

Uncertainty: by default every target has its own out-sample, so per-target estimates are independent and the
interval is a percentile bootstrap over targets (it covers the between-target spread and the retraining noise).

Usage::

    sims = retrain(sampler, trainer, n=200, n_targets=100, n_retrain=400, seed=0)
    result = montecarlo_delta(sims, quantizers.FixedGrid(0.5))     # .lower_bound, .plug_in, CIs

``sampler(size, generator) -> tuple of tensors [size, ...]`` draws i.i.d. points from ``P``;
``trainer(*batched) -> [B, p]`` trains ``B`` models on batched data ``[B, n, ...]`` (e.g. a lambda around
``mislib.evaluation.trainers.fit_logistic``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from mislib.infra.checks import check_float, check_int
from mislib.quantizers import FixedGrid, Identity, Quantizer, SizeAdaptiveGrid, StochasticRounding, Uniform


DRAW_BLOCK = 256


@dataclass
class Retrainings:
    """Parameters of models retrained with a target fixed in the training set (``inside``) and without."""

    n: int
    targets: tuple                 # the K targets, as returned by the sampler
    inside: torch.Tensor           # [K, M_in, p]: models trained on target k plus n - 1 fresh points
    outside: torch.Tensor          # [K, M_out, p] (independent per target) or [M_out, p] (shared pool)
    seed: int
    seconds: float

    @property
    def n_targets(self) -> int:
        return self.inside.shape[0]

    @property
    def model_fits(self) -> int:
        return self.inside.shape[0] * self.inside.shape[1] + self.outside.shape[0] * (
            self.outside.shape[1] if self.outside.dim() == 3 else 1)

    @property
    def shared_out(self) -> bool:
        return self.outside.dim() == 2


def retrain(sampler, trainer, n: int, *, n_targets: int = 100, n_retrain: int = 400,
            n_retrain_out: int | None = None, shared_out: bool = False, seed: int = 0,
            batch_size: int = 8192) -> Retrainings:
    """Train ``n_targets * n_retrain`` models with a target inside and the out-models, in batches.

    Target ``k`` sits at position 0 of each of its training sets (position does not matter to an M-estimator).
    ``n_retrain_out`` defaults to ``n_retrain``; ``shared_out=True`` uses one out-pool for all targets (cheaper,
    but then per-target estimates are correlated and the bootstrap interval is approximate).
    """
    n = check_int("n", n, minimum=2)
    n_targets = check_int("n_targets", n_targets, minimum=2)
    n_retrain = check_int("n_retrain", n_retrain, minimum=4)
    n_retrain_out = n_retrain if n_retrain_out is None else check_int("n_retrain_out", n_retrain_out, minimum=4)
    seed = check_int("seed", seed, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if not callable(sampler) or not callable(trainer):
        raise TypeError("sampler and trainer must be callables (see the module docstring)")
    start = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    targets = _as_tuple(sampler(n_targets, g), "sampler", n_targets)

    def draw(lo, b, target_index):
        size = n if target_index is None else n - 1
        fresh = _as_tuple(sampler(b * size, g), "sampler", b * size)
        data = [f.reshape((b, size) + tuple(f.shape[1:])) for f in fresh]
        if target_index is not None:
            idx = target_index[lo:lo + b]
            data = [torch.cat([t[idx].unsqueeze(1).to(d), d], dim=1) for t, d in zip(targets, data)]
        return data

    def train(blocks):
        data = [torch.cat(parts) for parts in zip(*blocks)]
        b = data[0].shape[0]
        thetas = trainer(*data)
        if not isinstance(thetas, torch.Tensor) or thetas.dim() != 2 or thetas.shape[0] != b:
            raise ValueError(f"trainer must return a [B, p] tensor for a batch of B = {b} models, got "
                             f"{getattr(thetas, 'shape', type(thetas).__name__)}")
        return thetas.detach()

    def fit(count, target_index):
        # Data are drawn in fixed blocks of DRAW_BLOCK models, so batch_size changes speed, not numbers.
        out, blocks, pending = [], [], 0
        for lo in range(0, count, DRAW_BLOCK):
            b = min(DRAW_BLOCK, count - lo)
            blocks.append(draw(lo, b, target_index))
            pending += b
            if pending >= batch_size or lo + b >= count:
                out.append(train(blocks))
                blocks, pending = [], 0
        return torch.cat(out)

    index = torch.arange(n_targets).repeat_interleave(n_retrain)
    inside = fit(n_targets * n_retrain, index).reshape(n_targets, n_retrain, -1)
    if shared_out:
        outside = fit(n_retrain_out, None)
    else:
        outside = fit(n_targets * n_retrain_out, None).reshape(n_targets, n_retrain_out, -1)
    return Retrainings(n, targets, inside, outside, seed, time.perf_counter() - start)


def _as_tuple(value, name, size):
    value = (value,) if isinstance(value, torch.Tensor) else tuple(value)
    for v in value:
        if not isinstance(v, torch.Tensor) or v.shape[0] != size:
            raise ValueError(f"{name} must return tensors with {size} rows (one per point)")
    return value


# ------------------------------------------------------------------------------------------------ releases

def quantize_rows(quantizer: Quantizer, thetas: torch.Tensor, shape=None, generator=None) -> torch.Tensor:
    """Apply ``quantizer`` to each row of ``thetas`` [B, p] as one parameter tensor of ``shape`` (default [p]).

    Elementwise quantizers (public grids, identity, stochastic rounding) run on the whole batch at once, and so
    does a per-tensor ``Uniform`` on 1-d rows (as a per-channel ``Uniform`` with one channel per row, which is
    the same computation); any other quantizer is applied row by row.
    """
    if not isinstance(quantizer, Quantizer):
        raise TypeError(f"quantizer must be a Quantizer, got {type(quantizer).__name__}")
    B, p = thetas.shape
    shape = (p,) if shape is None else tuple(shape)
    if math.prod(shape) != p:
        raise ValueError(f"shape {shape} does not hold {p} parameters")
    if isinstance(quantizer, (Identity, FixedGrid, SizeAdaptiveGrid, StochasticRounding)):
        return quantizer(thetas, generator=generator)
    if isinstance(quantizer, Uniform) and len(shape) == 1 and not quantizer.per_channel:
        return _uniform_rowwise(quantizer)(thetas)
    return _rowwise(quantizer, thetas, shape, lambda q, w: q._apply(w, q._grid(w)),
                    lambda w: quantizer(w, generator=generator))


def cell_rows(quantizer: Quantizer, thetas: torch.Tensor, shape=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``quantizer.cell_bounds`` of each row of ``thetas`` [B, p] (as one tensor of ``shape``): (low, high)."""
    if not quantizer.deterministic:
        raise ValueError(f"{quantizer!r} is randomised: it has no cells")
    B, p = thetas.shape
    shape = (p,) if shape is None else tuple(shape)
    if isinstance(quantizer, (Identity, FixedGrid, SizeAdaptiveGrid)):
        return quantizer.cell_bounds(thetas)
    if isinstance(quantizer, Uniform) and len(shape) == 1 and not quantizer.per_channel:
        return _uniform_rowwise(quantizer).cell_bounds(thetas)
    both = _rowwise(quantizer, thetas, shape, lambda q, w: torch.cat(q._bounds(w, q._grid(w))),
                    lambda w: torch.cat(quantizer.cell_bounds(w)), width=2)
    return both[:, :p], both[:, p:]


def _uniform_rowwise(quantizer: Uniform) -> Uniform:
    """A per-tensor Uniform applied to each row of a matrix = a per-channel Uniform with one channel per row."""
    return Uniform(quantizer.bits, symmetric=quantizer.symmetric, per_channel=True, channel_dim=0,
                   scale_format=quantizer.scale_format, scale=quantizer.scale, zero_point=quantizer.zero_point)


def _rowwise(quantizer, thetas, shape, batched, single, width: int = 1):
    """``single`` on each row; through ``torch.vmap`` of ``batched`` (the ``_grid`` / ``_apply`` / ``_bounds``
    contract of data-dependent quantizers) when that works and agrees with ``single`` on the first rows."""
    from mislib.quantizers import DataDependentQuantizer

    B, p = thetas.shape

    def one(row):
        return single(row.reshape(shape)).reshape(-1)

    if isinstance(quantizer, DataDependentQuantizer) and B > 16:
        try:
            out = torch.vmap(lambda w: batched(quantizer, w.reshape(shape)).reshape(-1))(thetas)
            check = torch.stack([one(row) for row in thetas[:8]])
            if out.shape == (B, width * p) and torch.equal(out[:8], check):
                return out
        except Exception:  # noqa: BLE001 - any vmap limitation: fall back on the loop below
            pass
    return torch.stack([one(row) for row in thetas])


def release_codes(releases: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Category of each release row (equal rows, equal codes) and the number of categories."""
    # Each row's bytes as one opaque value: numpy sorts those far faster than torch.unique(dim=0).
    rows = np.ascontiguousarray(releases.detach().cpu().numpy())
    rows = rows + 0.0  # -0.0 and 0.0 are the same release
    keys = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1)
    _, codes = np.unique(keys, return_inverse=True)
    return torch.from_numpy(codes.reshape(-1).astype(np.int64)), int(codes.max()) + 1


# ------------------------------------------------------------------------------------------- the estimates

@dataclass
class MonteCarloResult:
    """Monte-Carlo estimates of ``Delta_n`` for one quantizer (see the module docstring)."""

    quantizer: str
    n: int
    lower_bound: float            # split-sample, cross-fitted
    lower_bound_low: float
    lower_bound_high: float
    lower_bound_stderr: float
    plug_in: float
    plug_in_low: float
    plug_in_high: float
    n_targets: int
    n_retrain: int
    n_retrain_out: int
    n_categories: int             # distinct releases seen
    distinct_fraction: float      # categories / releases: near 1 means a continuous release (MC uninformative)
    model_fits: int
    seconds: float
    rule_lower_bound: float        # fixed Gaussian likelihood-ratio rule (NaN when not asked / randomised)
    rule_lower_bound_low: float
    rule_lower_bound_high: float
    per_target_lower: np.ndarray = field(repr=False)
    per_target_plug_in: np.ndarray = field(repr=False)

    def as_row(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("per_target")}


def delta_from_codes(codes_in: np.ndarray, codes_out: np.ndarray, *, seed: int = 0, n_bootstrap: int = 200,
                     confidence: float = 0.95) -> dict:
    """Plug-in and split-sample estimates from release categories.

    ``codes_in`` [K, M_in] (target k inside), ``codes_out`` [K, M_out] (independent out-samples) or [M_out]
    (shared). Returns a dict with the per-target arrays and the means with bootstrap (over targets) intervals.
    """
    codes_in = np.asarray(codes_in)
    codes_out = np.asarray(codes_out)
    if codes_in.ndim != 2 or codes_in.shape[1] < 4:
        raise ValueError(f"codes_in must be [K, M_in] with M_in >= 4, got shape {codes_in.shape}")
    K = codes_in.shape[0]
    if codes_out.ndim == 1:
        codes_out = np.broadcast_to(codes_out, (K, codes_out.shape[0]))
    if codes_out.ndim != 2 or codes_out.shape[0] != K or codes_out.shape[1] < 4:
        raise ValueError(f"codes_out must be [M_out] or [K, M_out] with K = {K}, M_out >= 4; got {codes_out.shape}")
    rng = np.random.default_rng(seed)
    lower = np.empty(K)
    plug = np.empty(K)
    for k in range(K):
        cats, inv = np.unique(np.concatenate([codes_in[k], codes_out[k]]), return_inverse=True)
        a, b = inv[:codes_in.shape[1]], inv[codes_in.shape[1]:]
        C = cats.size
        plug[k] = 0.5 * np.abs(np.bincount(a, minlength=C) / a.size - np.bincount(b, minlength=C) / b.size).sum()
        pa, pb = rng.permutation(a.size), rng.permutation(b.size)
        halves_in = (a[pa[: a.size // 2]], a[pa[a.size // 2:]])
        halves_out = (b[pb[: b.size // 2]], b[pb[b.size // 2:]])
        value = 0.0
        for fit, test in ((0, 1), (1, 0)):
            p_in = np.bincount(halves_in[fit], minlength=C) / halves_in[fit].size
            p_out = np.bincount(halves_out[fit], minlength=C) / halves_out[fit].size
            rule = p_in > p_out                      # "member" where the fitted Bayes rule says so
            value += rule[halves_in[test]].mean() - rule[halves_out[test]].mean()
        lower[k] = value / 2
    alpha = (1 - confidence) / 2
    idx = rng.integers(0, K, size=(n_bootstrap, K))
    boot_lower = lower[idx].mean(1)
    boot_plug = plug[idx].mean(1)
    return {
        "per_target_lower": lower, "per_target_plug_in": plug,
        "lower_bound": float(lower.mean()),
        "lower_bound_low": float(np.quantile(boot_lower, alpha)),
        "lower_bound_high": float(np.quantile(boot_lower, 1 - alpha)),
        "lower_bound_stderr": float(lower.std(ddof=1) / math.sqrt(K)),
        "plug_in": float(plug.mean()),
        "plug_in_low": float(np.quantile(boot_plug, alpha)),
        "plug_in_high": float(np.quantile(boot_plug, 1 - alpha)),
    }


def montecarlo_delta(retrainings: Retrainings, quantizer: Quantizer, *, shape=None, label: str | None = None,
                     whitebox: dict | None = None, n_bootstrap: int = 200, confidence: float = 0.95,
                     seed: int = 0) -> MonteCarloResult:
    """Monte-Carlo ``Delta_n`` of ``quantizer`` from retrainings (``retrain``): split-sample lower bound and
    plug-in, each with a percentile-bootstrap interval over targets at level ``confidence``.

    ``whitebox`` (dict with ``mean_out`` [p], ``std`` [p], ``shifts`` [K, p]; deterministic quantizers): adds the
    *rule* lower bound: the rule "member iff the Gaussian log-likelihood ratio of the released cells is > 0"
    (the white-box attack at its Bayes threshold) is fixed before looking at the retrainings, so its advantage
    ``P_in(S_z) - P_out(S_z)``, measured on all of them, estimates a lower bound on ``Delta_n`` without the
    fitting loss of the split-sample rule; it works for continuous releases too (it only looks at cells).

    ``shape``: the parameter tensor each row is (default [p]: the whole vector is one tensor, which matters for
    per-tensor scales). Randomised quantizers draw from a generator seeded with ``seed``.
    """
    if not isinstance(retrainings, Retrainings):
        raise TypeError(f"retrainings must come from mislib.evaluation.montecarlo.retrain, got {type(retrainings).__name__}")
    if not isinstance(quantizer, Quantizer):
        raise TypeError(f"quantizer must be a Quantizer, got {type(quantizer).__name__}")
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, minimum=10)
    confidence = check_float("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    seed = check_int("seed", seed, minimum=0)
    start = time.perf_counter()
    K, M, p = retrainings.inside.shape
    outside = retrainings.outside
    generator = torch.Generator(device=outside.device).manual_seed(seed)
    flat = torch.cat([retrainings.inside.reshape(-1, p), outside.reshape(-1, p)])
    releases = quantize_rows(quantizer, flat, shape, generator if not quantizer.deterministic else None)
    codes, n_categories = release_codes(releases)
    codes = codes.cpu().numpy()
    codes_in = codes[: K * M].reshape(K, M)
    codes_out = codes[K * M:].reshape(outside.shape[:-1])
    stats = delta_from_codes(codes_in, codes_out, seed=seed, n_bootstrap=n_bootstrap, confidence=confidence)
    rule = dict.fromkeys(("rule_lower_bound", "rule_lower_bound_low", "rule_lower_bound_high"), math.nan)
    if whitebox is not None and quantizer.deterministic:
        rule = _rule_lower_bound(retrainings, quantizer, whitebox, shape, seed, n_bootstrap, confidence)
    return MonteCarloResult(
        quantizer=label if label is not None else repr(quantizer), n=retrainings.n, n_targets=K, n_retrain=M,
        n_retrain_out=outside.shape[-2], n_categories=n_categories,
        distinct_fraction=n_categories / flat.shape[0], model_fits=retrainings.model_fits,
        seconds=retrainings.seconds + time.perf_counter() - start, **stats, **rule)


def whitebox_log_ratios(low, high, mean_out, std, shifts) -> np.ndarray:
    """Gaussian log-likelihood ratio of released cells, row by row: ``low``, ``high``, ``shifts`` [m, p]
    (one release and the shift of its target per row), ``mean_out``, ``std`` [p]. Row ``j`` equals
    ``mislib.attacks.whitebox_gaussian_scores(low[j], high[j], mean_out, shifts[j][None], std)[0]``: the
    log-probabilities are per coordinate, so every (row, coordinate) pair goes through
    ``mislib.attacks.gaussian_interval_logprob`` at once."""
    from mislib.attacks import gaussian_interval_logprob

    low, high, shifts = _numpy(low), _numpy(high), _numpy(shifts)
    mean_out, std = _numpy(mean_out), _numpy(std)
    m, p = low.shape
    stds = np.broadcast_to(std, (m, p)).reshape(-1)

    def log_prob(means):
        return gaussian_interval_logprob(low.reshape(-1), high.reshape(-1), np.ascontiguousarray(means).reshape(-1),
                                         stds).reshape(m, p).sum(1)

    return log_prob(mean_out + shifts) - log_prob(np.broadcast_to(mean_out, (m, p)))


def _rule_lower_bound(retrainings, quantizer, whitebox, shape, seed, n_bootstrap, confidence):
    K, M, p = retrainings.inside.shape
    outside = retrainings.outside if retrainings.outside.dim() == 3 else retrainings.outside.expand(K, -1, -1)
    shifts = _numpy(whitebox["shifts"])
    values = []
    for block, sign in ((retrainings.inside, 1.0), (outside, -1.0)):
        c = block.shape[1]
        low, high = cell_rows(quantizer, block.reshape(-1, p), shape)
        ratio = whitebox_log_ratios(low, high, whitebox["mean_out"], whitebox["std"], np.repeat(shifts, c, axis=0))
        values.append(sign * (ratio > 0).reshape(K, c).mean(1))
    per_target = values[0] + values[1]
    rng = np.random.default_rng(seed + 1)
    boot = per_target[rng.integers(0, K, size=(n_bootstrap, K))].mean(1)
    alpha = (1 - confidence) / 2
    return {"rule_lower_bound": float(per_target.mean()),
            "rule_lower_bound_low": float(np.quantile(boot, alpha)),
            "rule_lower_bound_high": float(np.quantile(boot, 1 - alpha))}


def montecarlo_table(retrainings: Retrainings, quantizers, **kwargs):
    """``montecarlo_delta`` for several quantizers (dict label -> quantizer, or a list) on the same retrainings:
    a pandas DataFrame, one row per quantizer."""
    import pandas as pd

    items = list(quantizers.items()) if isinstance(quantizers, Mapping) else [(repr(q), q) for q in quantizers]
    return pd.DataFrame([montecarlo_delta(retrainings, q, label=label, **kwargs).as_row() for label, q in items])


# ------------------------------------------------------------------------------------ practical attacks

def attack_evaluation(retrainings: Retrainings, quantizer: Quantizer, *, loss, statistic, whitebox=None,
                      n_games: int = 10, n_shadow: int | None = None, shape=None, label: str | None = None,
                      n_bootstrap: int = 200, seed: int = 0) -> dict:
    """Practical attacks on the releases of ``retrainings``, in the balanced membership game.

    Game: for each target ``k``, its first ``n_games`` inside models (label 1 = member) and first ``n_games``
    outside models (label 0), each seen through its release ``Q(theta)``. Shadow models (for LiRA): the next
    ``n_shadow`` inside and outside models of the same target (default: all the remaining ones).

    - ``loss(releases [m, p], target_index [m]) -> [m]``: loss of the released model on its target
      (loss-threshold attack, score ``-loss``);
    - ``statistic(releases, target_index) -> [m]``: LiRA's statistic (e.g. the logit confidence on the
      target); offline (OUT shadows) and online (IN and OUT shadows) LiRA scores from ``mislib.attacks``;
    - ``whitebox``: dict with ``mean_out`` [p], ``std`` [p], ``shifts`` [K, p]: the white-box Gaussian
      likelihood-ratio attack on the released cells (``mislib.attacks.whitebox_gaussian_scores``), for
      deterministic quantizers only (a randomised release has no cells).

    Returns one flat dict: for each attack ``<attack>_auc``, ``<attack>_advantage``, ``<attack>_tpr_at_1pct_fpr``
    with ``_low`` / ``_high`` intervals (``mislib.attacks.attack_metrics``), and the game's size.
    """
    from mislib import attacks

    if not isinstance(retrainings, Retrainings):
        raise TypeError(f"retrainings must come from mislib.evaluation.montecarlo.retrain, got {type(retrainings).__name__}")
    if retrainings.shared_out:
        raise ValueError("attack_evaluation needs independent out-models per target (retrain(shared_out=False))")
    if not isinstance(quantizer, Quantizer):
        raise TypeError(f"quantizer must be a Quantizer, got {type(quantizer).__name__}")
    K, M, p = retrainings.inside.shape
    M_out = retrainings.outside.shape[1]
    n_games = check_int("n_games", n_games, minimum=1, maximum=min(M, M_out) - 2)
    available = min(M, M_out) - n_games
    n_shadow = available if n_shadow is None else check_int("n_shadow", n_shadow, minimum=2, maximum=available)
    generator = None if quantizer.deterministic else torch.Generator().manual_seed(seed)

    def releases(block):   # [K, c, p] -> [K * c, p]
        return quantize_rows(quantizer, block.reshape(-1, p), shape, generator)

    game_in = retrainings.inside[:, :n_games]
    game_out = retrainings.outside[:, :n_games]
    thetas = torch.cat([game_in.reshape(-1, p), game_out.reshape(-1, p)])
    released = torch.cat([releases(game_in), releases(game_out)])
    target_index = torch.arange(K).repeat_interleave(n_games).repeat(2)
    labels = np.concatenate([np.ones(K * n_games), np.zeros(K * n_games)])
    shadow_target = torch.arange(K).repeat_interleave(n_shadow)
    shadow_in = statistic(releases(retrainings.inside[:, n_games:n_games + n_shadow]), shadow_target)
    shadow_out = statistic(releases(retrainings.outside[:, n_games:n_games + n_shadow]), shadow_target)
    shadow_in = _numpy(shadow_in).reshape(K, n_shadow)[target_index.numpy()].T      # [S, m]
    shadow_out = _numpy(shadow_out).reshape(K, n_shadow)[target_index.numpy()].T
    target_stats = _numpy(statistic(released, target_index))
    scores = {
        "loss_attack": attacks.loss_threshold_scores(_numpy(loss(released, target_index))),
        "lira_offline": attacks.lira_offline_scores(target_stats, shadow_out),
        "lira_online": attacks.lira_online_scores(target_stats, shadow_in, shadow_out),
    }
    if whitebox is not None and quantizer.deterministic:
        low, high = cell_rows(quantizer, thetas, shape)
        scores["whitebox"] = whitebox_log_ratios(low, high, whitebox["mean_out"], whitebox["std"],
                                                 _numpy(whitebox["shifts"])[target_index.numpy()])
    row = {"quantizer": label if label is not None else repr(quantizer), "n": retrainings.n,
           "n_game_members": K * n_games, "n_shadow": n_shadow}
    for name, values in scores.items():
        metrics = attacks.attack_metrics(values, labels, n_bootstrap=n_bootstrap, seed=seed)
        for key in ("auc", "advantage", "tpr_at_1pct_fpr"):
            for suffix in ("", "_low", "_high"):
                row[f"{name}_{key}{suffix}"] = metrics[key + suffix]
    return row


def _numpy(value):
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
