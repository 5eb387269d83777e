"""Exit probabilities of a quantized release (THEORY.md §3.4): how likely ``Q(theta_hat)`` leaves its cell.

For one coordinate with standard error ``s``, sitting at ``theta`` in the cell ``[low, high]`` of ``Q``, the
probability that a Gaussian estimate ``N(theta, s^2)`` falls outside the cell counts **both** thresholds:

    q = Phi_bar((theta - low) / s) + Phi_bar((high - theta) / s).

A coordinate released exactly (identity, weights kept by pruning: the point cell ``[theta, theta]``) has
``q = 1``; an outermost cell of a clipping grid has one threshold at infinity. Stored scales are coordinates of
the release too: a float scale counts ``q = 1`` (it changes with every data set); a scale rounded onto a storage
grid (bfloat16, float16, power of two) has its own cell, with the delta-method standard error of the scale
statistic; an integer zero point counts its nearer threshold twice (conservative: at most twice the exact value).

Everything is computed in log space (``log q`` down to ``-1e300`` and below stays finite). The functions:

- ``log_exit_probabilities(theta, stderr, low, high)``: the formula above, elementwise;
- ``release_log_exits(quantizer, theta, stderr)``: for every coordinate and every stored scale of a release;
- ``averaged_release_log_exits``: the same averaged over the sampling uncertainty of ``theta``
  (``theta* ~ N(theta_hat, s^2)`` per coordinate, a Latin-hypercube quadrature of ``n_nodes`` points per
  coordinate, the grid recomputed at each draw);
- ``probability_more_private(theta, stderr, a, b)``: for two quantizers of one model, the probability (over
  the same uncertainty) that ``a``'s release changes fewer coordinates in expectation than ``b``'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from mislib.infra.checks import check_int, check_tensor
from mislib.quantizers import Quantizer, store_scale

SCALE_CHANNELS = ("none", "continuous", "stored-on-grid")
# Significand bits (implicit bit included) of the 16-bit storage formats of a scale.
_SIGNIFICAND_BITS = {"bfloat16": 8, "float16": 11}
# Up to this many coordinates the Jacobian of a scale statistic is taken coordinate by coordinate; beyond,
# from random sign directions (exact for max-type statistics, whose Jacobian has one entry per group).
SCALE_FD_MAX_COORDINATES = 512
SCALE_FD_PROBES = 64


def log_exit_probabilities(theta: torch.Tensor, stderr: torch.Tensor, low: torch.Tensor,
                           high: torch.Tensor) -> torch.Tensor:
    """``log(Phi_bar((theta - low)/stderr) + Phi_bar((high - theta)/stderr))`` elementwise (float64).

    Infinite bounds contribute nothing; a point cell (``low == theta == high``) gives ``log 1 = 0``.

    Examples
    --------
    >>> import torch
    >>> q = log_exit_probabilities(torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([-1.0]),
    ...                            torch.tensor([1.0])).exp()
    >>> round(float(q), 6)    # 2 Phi_bar(1)
    0.317311
    """
    t, s = theta.to(torch.float64), stderr.to(torch.float64)
    z_low = (t - low.to(torch.float64)) / s
    z_high = (high.to(torch.float64) - t) / s
    return torch.logaddexp(torch.special.log_ndtr(-z_low), torch.special.log_ndtr(-z_high))


# ------------------------------------------------------------------------------------------- stored scales

def scale_cell_bounds(raw: torch.Tensor, scale_format: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The cell ``[low, high]`` of positive scale statistics ``raw`` on a storage format's grid: the interval of
    raw values stored as the same number (``"pow2"``: ``2**(e -+ 1/2)``; ``"bfloat16"`` / ``"float16"``: half-way
    to the neighbouring representable numbers; normal numbers of the format only)."""
    stored, _ = store_scale(raw, scale_format)
    if scale_format == "pow2":
        return stored * 2 ** -0.5, stored * 2 ** 0.5
    if scale_format not in _SIGNIFICAND_BITS:
        raise ValueError(f"scale_format {scale_format!r} has no cells (float32 and public scales are not stored "
                         "on a grid)")
    bits = _SIGNIFICAND_BITS[scale_format]
    mantissa, exponent = torch.frexp(stored)                         # stored = mantissa 2^exponent, [0.5, 1)
    ulp_above = torch.ldexp(torch.ones_like(stored), exponent - bits)
    ulp_below = torch.where(mantissa == 0.5, ulp_above / 2, ulp_above)
    return stored - ulp_below / 2, stored + ulp_above / 2


def _grid_of(quantizer, w):
    grid = quantizer.grid(w)
    if isinstance(grid, dict) and "uniform" in grid:
        grid = grid["uniform"]
    return grid


def _raw_scale(quantizer, w):
    raw = getattr(_grid_of(quantizer, w), "raw_scale", None)
    if raw is None:
        raise ValueError(f"cannot find the raw scale statistic of {quantizer!r} (needs grid(w).raw_scale)")
    return raw.reshape(-1).to(torch.float64)


def _range_minimum(quantizer, w):
    """min(w, 0) per group: the statistic that sets an affine grid's zero point."""
    rows = w.detach().to(torch.float64)
    if getattr(quantizer, "per_channel", False):
        rows = rows.movedim(quantizer.channel_dim, 0).reshape(rows.shape[quantizer.channel_dim], -1)
    else:
        rows = rows.reshape(1, -1)
    return rows.amin(dim=1).clamp_max(0)


def statistic_stderr(statistic, w, se):
    """Delta method with a diagonal covariance: ``sqrt(sum_k (ds/dw_k)^2 se_k^2)``, derivatives by central
    differences (exact for the piecewise-linear statistics used: max|w|, range, mean|w|)."""
    w64 = w.detach().to(torch.float64)
    se64 = se.detach().to(torch.float64).to(w64.device)
    h = 1e-6 * float(w64.abs().max().clamp_min(1e-12))
    base = statistic(w64)
    flat = w64.reshape(-1)
    total = torch.zeros_like(base)
    if flat.numel() <= SCALE_FD_MAX_COORDINATES:
        for k in range(flat.numel()):
            plus, minus = flat.clone(), flat.clone()
            plus[k] += h
            minus[k] -= h
            deriv = (statistic(plus.reshape(w64.shape)) - statistic(minus.reshape(w64.shape))) / (2 * h)
            total += deriv ** 2 * float(se64.reshape(-1)[k]) ** 2
    else:
        g = torch.Generator().manual_seed(0)
        for _ in range(SCALE_FD_PROBES):
            direction = (torch.randint(0, 2, flat.shape, generator=g) * 2 - 1).to(flat) * se64.reshape(-1)
            step = h / float(se64.max())
            deriv = (statistic((flat + step * direction).reshape(w64.shape))
                     - statistic((flat - step * direction).reshape(w64.shape))) / (2 * step)
            total += deriv ** 2 / SCALE_FD_PROBES
    return total.sqrt().clamp_min(1e-300)


class ScaleChannel:
    """The stored scales (and zero points) of ``quantizer`` for one tensor whose standard errors are ``se``
    (computed at the weights ``w``: the scale statistics' standard errors are held at these values when the
    channel is evaluated at other weights, as the uncertainty-averaged estimator does)."""

    def __init__(self, quantizer: Quantizer, w: torch.Tensor, se: torch.Tensor):
        self.quantizer, self.channel = quantizer, quantizer.scale_channel
        if self.channel not in SCALE_CHANNELS:
            raise ValueError(f"{quantizer!r} reports scale_channel {self.channel!r}; expected one of "
                             f"{SCALE_CHANNELS}")
        self.note, self.count, self.se_scale, self.se_zero_point = "", 0, None, None
        if self.channel == "continuous":
            self.count = sum(s.count for s in quantizer.storage(w) if s.data_dependent) or 1
            self.note = "continuous (float) scale published: it changes with every data set (counts 1 per value)"
        elif self.channel == "stored-on-grid":
            if quantizer.scale_margins(w) is None:
                raise ValueError(f"{quantizer!r} says its scale is stored on a grid but scale_margins() is None")
            self.se_scale = statistic_stderr(lambda v: _raw_scale(quantizer, v), w, se)
            if getattr(quantizer, "zero_point_margins", lambda v: None)(w) is not None:
                self.se_zero_point = statistic_stderr(lambda v: _range_minimum(quantizer, v), w, se)
            self.note = ("scale stored on a grid: both thresholds of its storage cell over the delta-method "
                         "standard error of the scale statistic (diagonal covariance)")

    def z(self, w: torch.Tensor) -> torch.Tensor | None:
        """Standardised margin (nearer threshold) of each stored value: 0 for a float scale; None if none."""
        if self.channel == "none":
            return None
        if self.channel == "continuous":
            return torch.zeros(self.count, dtype=torch.float64, device=w.device)
        parts = [self.quantizer.scale_margins(w).reshape(-1).to(torch.float64) / self.se_scale]
        if self.se_zero_point is not None:
            parts.append(self.quantizer.zero_point_margins(w).reshape(-1).to(torch.float64) / self.se_zero_point)
        return torch.cat(parts)

    def log_exits(self, w: torch.Tensor) -> torch.Tensor | None:
        """log exit probability of each stored value at weights ``w``; None when nothing data-dependent is
        stored."""
        if self.channel == "none":
            return None
        if self.channel == "continuous":
            return torch.zeros(self.count, dtype=torch.float64, device=w.device)
        raw = _raw_scale(self.quantizer, w)
        low, high = scale_cell_bounds(raw, self.quantizer.scale_format)
        parts = [log_exit_probabilities(raw, self.se_scale, low, high)]
        if self.se_zero_point is not None:
            margin = self.quantizer.zero_point_margins(w).reshape(-1).to(torch.float64)
            parts.append(math.log(2) + torch.special.log_ndtr(-margin / self.se_zero_point))
        return torch.cat(parts).clamp_max(0.0)


# ------------------------------------------------------------------------------------------- whole release

def as_tensor_dict(name, value):
    """(keys or None, {key: tensor}) from a tensor or a dict of tensors (named parameters)."""
    if isinstance(value, torch.Tensor):
        return None, {"": value}
    if isinstance(value, Mapping):
        if not value:
            raise ValueError(f"{name} is an empty mapping")
        for key, v in value.items():
            if not isinstance(v, torch.Tensor):
                raise TypeError(f"{name}[{key!r}] must be a torch.Tensor, got {type(v).__name__}")
        return list(value), dict(value)
    raise TypeError(f"{name} must be a torch.Tensor or a dict of tensors (named parameters), got "
                    f"{type(value).__name__}")


def checked_pairs(theta, stderr) -> dict:
    """{key: (theta, stderr)} validated: same structure, same shapes, stderr > 0."""
    keys, thetas = as_tensor_dict("theta", theta)
    skeys, stderrs = as_tensor_dict("stderr", stderr)
    if (keys is None) != (skeys is None) or (keys is not None and set(keys) != set(skeys)):
        raise ValueError("theta and stderr must have the same structure (both tensors, or dicts with the same keys)")
    pairs = {}
    for key, t in thetas.items():
        label = "theta" if keys is None else f"theta[{key!r}]"
        t = check_tensor(label, t.detach())
        s = check_tensor(label.replace("theta", "stderr"), stderrs[key].detach().to(device=t.device))
        if s.shape != t.shape:
            raise ValueError(f"stderr has shape {tuple(s.shape)} but theta has {tuple(t.shape)}"
                             + ("" if keys is None else f" (parameter {key!r})"))
        if bool((s <= 0).any()):
            raise ValueError(f"stderr must be > 0 everywhere ({int((s <= 0).sum())} entries are not"
                             + ("" if keys is None else f", parameter {key!r}") + ")")
        pairs[key] = (t, s)
    return pairs


def weight_log_exits(quantizer: Quantizer, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """log exit probability of every coordinate of ``t`` (cells of ``quantizer`` with its grid at ``t``);
    0 (certain change) for a randomised quantizer, which has no deterministic cells."""
    if not quantizer.deterministic:
        return torch.zeros(t.shape, dtype=torch.float64, device=t.device)
    low, high = quantizer.cell_bounds(t)
    return log_exit_probabilities(t, s, low, high).clamp_max(0.0)


def release_log_exits(quantizer: Quantizer, theta, stderr, channels: dict | None = None):
    """(log q of every weight [d], log q of every stored scale [m] or None), pooled over named tensors.

    ``channels``: {key: ScaleChannel} to reuse (built at ``theta`` when None)."""
    pairs = checked_pairs(theta, stderr)
    if channels is None:
        channels = {key: ScaleChannel(quantizer, t, s) for key, (t, s) in pairs.items()}
    weights, scales = [], []
    for key, (t, s) in pairs.items():
        weights.append(weight_log_exits(quantizer, t, s).reshape(-1))
        part = channels[key].log_exits(t)
        if part is not None:
            scales.append(part.reshape(-1))
    return torch.cat(weights), (torch.cat(scales) if scales else None)


def _latin_hypercube(shape, n_nodes: int, generator) -> torch.Tensor:
    """[n_nodes, *shape] standard normal nodes: for each coordinate, the ``n_nodes`` quantiles
    ``Phi^-1((j + 1/2) / n_nodes)`` in an independent random order."""
    numel = math.prod(shape)
    probabilities = (torch.arange(n_nodes, dtype=torch.float64) + 0.5) / n_nodes
    nodes = math.sqrt(2) * torch.special.erfinv(2 * probabilities - 1)
    order = torch.rand(n_nodes, numel, generator=generator, dtype=torch.float64).argsort(dim=0)
    return nodes[order].reshape(n_nodes, *shape)


def averaged_release_log_exits(quantizer: Quantizer, theta, stderr, *, n_nodes: int = 64, seed: int = 0):
    """``release_log_exits`` averaged over ``theta* ~ N(theta, stderr^2)`` (independent coordinates): the exit
    probability of each coordinate and scale, ``E q(theta*)``, with the grid and cells recomputed at each draw.

    The draws form a Latin hypercube: each coordinate sees the ``n_nodes`` normal quantiles exactly once (a
    one-dimensional quadrature per coordinate, error ``O(1/n_nodes)`` across a threshold), in an independent
    random order (``seed``), so that data-dependent grids see realistic joint draws."""
    n_nodes = check_int("n_nodes", n_nodes, minimum=2)
    pairs = checked_pairs(theta, stderr)
    channels = {key: ScaleChannel(quantizer, t, s) for key, (t, s) in pairs.items()}
    generator = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    nodes = {key: _latin_hypercube(t.shape, n_nodes, generator).to(t.device) for key, (t, _) in pairs.items()}
    sum_w = sum_s = None
    for j in range(n_nodes):
        draw = {key: (t.to(torch.float64) + s.to(torch.float64) * nodes[key][j]).to(t.dtype)
                for key, (t, s) in pairs.items()}
        w, sc = release_log_exits(quantizer, draw, {k: s for k, (_, s) in pairs.items()}, channels)
        sum_w = w.exp() if sum_w is None else sum_w + w.exp()
        if sc is not None:
            sum_s = sc.exp() if sum_s is None else sum_s + sc.exp()
    mean_w = (sum_w / n_nodes).log()
    return mean_w, (None if sum_s is None else (sum_s / n_nodes).log())


def log_expected_exits(log_weights: torch.Tensor, log_scales: torch.Tensor | None) -> float:
    """log of the expected number of released values that change: ``log sum q``."""
    parts = log_weights if log_scales is None else torch.cat([log_weights, log_scales])
    return float(torch.logsumexp(parts.to(torch.float64), 0))


def ranking_score_from(log_expected: float, n_coordinates: int, n: float) -> float:
    """``(log d - log min(E, d)) / n`` (>= 0; 0 for the unquantized release, whose ``E = d``)."""
    return (math.log(n_coordinates) - min(log_expected, math.log(n_coordinates))) / n


def probability_more_private(theta, stderr, quantizer_a: Quantizer, quantizer_b: Quantizer, *,
                             n_draws: int = 256, seed: int = 0) -> float:
    """P(A more private than B) for two quantizers of the same model, over the uncertainty of the weights.

    Draws ``theta* ~ N(theta, stderr^2)`` (independent coordinates), computes at each the expected number of
    changed values of each release (``release_log_exits``, grids at the draw), and returns the fraction of
    draws where A's is smaller (ties count one half). 0.5 means the model cannot tell them apart.

    Examples
    --------
    >>> import torch
    >>> from mislib.quantizers import get
    >>> theta, se = torch.tensor([0.3, -0.2]), torch.tensor([0.05, 0.05])
    >>> probability_more_private(theta, se, get("fixed_grid", step=1.0), get("identity"))
    1.0
    """
    for name, q in (("quantizer_a", quantizer_a), ("quantizer_b", quantizer_b)):
        if not isinstance(q, Quantizer):
            raise TypeError(f"{name} must be a mislib.quantizers.Quantizer, got {type(q).__name__}")
    n_draws = check_int("n_draws", n_draws, minimum=1)
    pairs = checked_pairs(theta, stderr)
    stderrs = {key: s for key, (_, s) in pairs.items()}
    channels = {label: {key: ScaleChannel(q, t, s) for key, (t, s) in pairs.items()}
                for label, q in (("a", quantizer_a), ("b", quantizer_b))}
    generator = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
    wins = 0.0
    for _ in range(n_draws):
        draw = {key: (t.to(torch.float64) + s.to(torch.float64)
                      * torch.randn(t.shape, generator=generator, dtype=torch.float64).to(t.device)).to(t.dtype)
                for key, (t, s) in pairs.items()}
        ea = log_expected_exits(*release_log_exits(quantizer_a, draw, stderrs, channels["a"]))
        eb = log_expected_exits(*release_log_exits(quantizer_b, draw, stderrs, channels["b"]))
        wins += 1.0 if ea < eb else 0.5 if ea == eb else 0.0
    return wins / n_draws
