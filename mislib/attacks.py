"""Membership-inference attacks and their metrics, on plain arrays.

Convention (as in TensorFlow Privacy's membership-inference module): an attack turns what it sees into one
real **score** per target example, *higher = more likely a member*; the metrics take those scores and the
membership **labels** (1 = member, 0 = non-member). NumPy arrays, torch tensors and lists are accepted and
converted to NumPy float64.

Metrics
-------
- ``roc_curve``: one ROC point per distinct score (the rule "member iff score >= threshold"), starting from
  ``(0, 0)`` at threshold ``+inf``; identical to ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``
  (``drop_intermediate=True`` reproduces sklearn's default).
- ``auc``: area under that curve, ties counted one half (the Mann-Whitney statistic; equals sklearn's
  ``roc_auc_score``).
- ``advantage``: ``max over thresholds |TPR - FPR|`` (the empirical TV-style advantage of THEORY.md §1).
- ``tpr_at_fpr``: the largest TPR among achievable thresholds whose FPR is ``<= fpr`` (no interpolation).
- ``attack_metrics``: all of the above with stratified-bootstrap percentile confidence intervals, computed for
  every bootstrap replicate at once.

Attacks (each returns scores, higher = member)
----------------------------------------------
- ``loss_threshold_scores``: Yeom et al. (2018), ``-loss``.
- ``logit_confidence``, ``logit_confidence_from_logits``, ``negative_squared_error``: the per-example
  statistics that LiRA fits Gaussians to.
- ``lira_offline_scores``, ``lira_online_scores``: Carlini et al. (2022), with shadow-model statistics.
- ``whitebox_gaussian_scores``: a Gaussian likelihood-ratio attack on released (quantized) weights that sees
  only the quantization cell of each weight.
- ``rmia_scores``: RMIA, Zarifzadeh et al. (2024), online and offline (``rmia_offline_a`` picks the offline
  ``a``); ``gaussian_likelihood`` is its ``Pr(y|x)`` for regression.

RMIA's reference implementations, and where they differ:

- ML Privacy Meter's paper code (privacytrustlab/ml_privacy_meter@d327341, research/2024_rmia/main.py):
  online ``Pr(x)`` is a trimmed mean (20% cut each side) of k/2 IN and k/2 OUT reference probabilities
  (lines 391-400, 440, 515, 531); offline ``((1 + a) Pr_OUT + (1 - a)) / 2`` for x and z alike, OUT
  references only (lines 422, 528-529); the score is the mean over z of ``LR(x) / LR(z) > gamma`` (547-551);
  z are the target's non-members, each one's comparison with itself removed (554, 1119); configurations:
  gamma 2, a 0.3, softmax temperature 2 (attack_configs/cifar10/rmia_*.yaml).
- ML Privacy Meter now (@e384af8, attacks.py): offline only, gamma fixed at 1 (lines 117-138), ``a`` tuned on
  {0, 0.1, ..., 1} by attacking a paired model (42-88), population OUT for every reference model (122-124),
  so that its "keep the k/2 largest OUT signals" (38) averages the larger half of each z's k probabilities.
- LeakPro (aidotse/LeakPro@c47752f, leakpro/attacks/mia_attacks/rmia.py): ``Pr(y|x)`` a softmax at
  temperature 2 (lines 29-31, 231-236); online ``Pr(x)``, ``Pr(z)`` the mean over all shadows (216-217,
  238-239); offline ``Pr(x)`` from OUT shadows but ``Pr(z)`` from all of them (218-221, 240-244); 1e-6 added
  to ``Pr(.)`` (95, 223, 247); gamma 2 by default (43-46), strict ``>`` (253).

``rmia_scores`` keeps what they share (strict ``>``, the offline line) and takes: the plain mean (no trimming),
OUT references only for both x and z offline (as the paper code), no epsilon, gamma 2 by default, and
probabilities from the caller (any temperature is the caller's).
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from scipy.special import log_ndtr, logsumexp

from mislib.infra.checks import check_float, check_int
from mislib.mis import log1mexp

__all__ = [
    "roc_curve", "auc", "advantage", "tpr_at_fpr", "attack_metrics", "balanced_indices", "membership_split",
    "loss_threshold_scores", "logit_confidence", "logit_confidence_from_logits", "negative_squared_error",
    "lira_offline_scores", "lira_online_scores", "gaussian_interval_logprob", "whitebox_gaussian_scores",
    "rmia_scores", "rmia_offline_a", "gaussian_likelihood",
]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


# ----------------------------------------------------------------------------------------------------------
# input conversion and validation
# ----------------------------------------------------------------------------------------------------------

def _to_numpy(name: str, value) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):        # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except Exception as error:  # noqa: BLE001 - re-raised with the argument's name
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}") from error
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(f"{name} must be an array of numbers, got dtype {array.dtype}")
    if np.iscomplexobj(array):
        raise TypeError(f"{name} must be real, got dtype {array.dtype}")
    return array


def _float_array(name: str, value, *, ndim: int | tuple[int, ...] = 1, allow_nan: bool = False,
                 allow_inf: bool = False, allow_empty: bool = False) -> np.ndarray:
    """Convert to float64 and check the number of dimensions and the finiteness of the entries."""
    array = _to_numpy(name, value).astype(np.float64, copy=False)
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if array.ndim not in ndims:
        want = " or ".join(f"{k}-d" for k in ndims)
        raise ValueError(f"{name} must be a {want} array, got shape {array.shape}")
    if array.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty (shape {array.shape}); it needs at least one entry")
    if not allow_nan and np.isnan(array).any():
        raise ValueError(f"{name} contains {int(np.isnan(array).sum())} NaN entries")
    if not allow_inf and np.isinf(array).any():
        raise ValueError(f"{name} contains {int(np.isinf(array).sum())} infinite entries")
    return array


def _labels(name: str, value, length: int | None = None, *, both_classes: bool = True) -> np.ndarray:
    """Membership labels: a 1-d array of 0 (non-member) and 1 (member); returned as int8."""
    array = _to_numpy(name, value)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array of 0 and 1, got shape {array.shape}")
    as_float = array.astype(np.float64)
    bad = ~((as_float == 0) | (as_float == 1))
    if bad.any():
        examples = np.unique(array[bad])[:5].tolist()
        raise ValueError(f"{name} must contain only 0 (non-member) and 1 (member); found {examples}")
    if length is not None and array.shape[0] != length:
        raise ValueError(f"{name} has length {array.shape[0]} but scores has length {length}; "
                         "give one label per score")
    labels = as_float.astype(np.int8)
    if both_classes:
        n_members = int(labels.sum())
        if n_members == 0 or n_members == labels.size:
            which = "member (1)" if n_members == 0 else "non-member (0)"
            raise ValueError(f"{name} has only one class: no {which} example; the metrics need both")
    return labels


def _scores_and_labels(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    # +-inf scores are legal (a log-likelihood may be -inf); NaN is not: it has no place in an ordering.
    scores = _float_array("scores", scores, allow_inf=True)
    labels = _labels("labels", labels, scores.shape[0])
    return scores, labels


def _check_fpr(name: str, value) -> float:
    return check_float(name, value, low=0.0, high=1.0, low_open=True, high_open=True)


# ----------------------------------------------------------------------------------------------------------
# ROC curve and metrics
# ----------------------------------------------------------------------------------------------------------

def _sorted_counts(scores: np.ndarray, labels: np.ndarray):
    """Order by decreasing score (stable) and mark the end of each group of tied scores.

    Returns the sort order, the sorted scores and the index (in sorted order) of the last element of each
    group of equal scores: the ROC curve has one point per group."""
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    # a group ends where the next score differs (inf == inf, so tied infinities stay one group)
    ends = np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1])
    ends = np.r_[ends, sorted_scores.size - 1]
    return order, sorted_scores, ends


def roc_curve(scores, labels, *, drop_intermediate: bool = False):
    """ROC curve of the rule "member iff score >= threshold".

    Returns ``(fpr, tpr, thresholds)``: one point per distinct score in decreasing order, preceded by
    ``(0, 0)`` at threshold ``+inf``; the last point is ``(1, 1)``. This is exactly
    ``sklearn.metrics.roc_curve(labels, scores, drop_intermediate=drop_intermediate)``; the default keeps every
    point (unlike sklearn) because ``tpr_at_fpr`` needs the points that a straight-line drop would remove.
    """
    scores, labels = _scores_and_labels(scores, labels)
    order, sorted_scores, ends = _sorted_counts(scores, labels)
    tps = np.cumsum(labels[order], dtype=np.float64)[ends]
    fps = (ends + 1.0) - tps
    thresholds = sorted_scores[ends]
    if drop_intermediate and tps.size > 2:
        # sklearn's rule: drop a point that lies on the straight line through its neighbours
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        tps, fps, thresholds = tps[keep], fps[keep], thresholds[keep]
    tps = np.r_[0.0, tps]
    fps = np.r_[0.0, fps]
    thresholds = np.r_[np.inf, thresholds]
    return fps / fps[-1], tps / tps[-1], thresholds


def _auc_from_curve(fpr: np.ndarray, tpr: np.ndarray) -> np.ndarray:
    """Trapezoid area along the last axis (a tied group contributes a diagonal segment: ties count 1/2)."""
    return np.sum(np.diff(fpr, axis=-1) * (tpr[..., 1:] + tpr[..., :-1]), axis=-1) / 2.0


def _tpr_at_fpr_from_curve(fpr: np.ndarray, tpr: np.ndarray, target: float) -> np.ndarray:
    """Largest TPR with FPR <= target along the last axis; fpr and tpr are non-decreasing along it and
    start at (0, 0), so it is the TPR of the last point whose FPR is <= target."""
    last = np.sum(fpr <= target, axis=-1, keepdims=True) - 1
    return np.take_along_axis(tpr, last, axis=-1)[..., 0]


def auc(scores, labels) -> float:
    """Area under the ROC curve, ties counted one half (= ``sklearn.metrics.roc_auc_score``)."""
    fpr, tpr, _ = roc_curve(scores, labels)
    return float(_auc_from_curve(fpr, tpr))


def advantage(scores, labels) -> float:
    """``max over thresholds |TPR - FPR|`` (also counts a rule used the other way round)."""
    fpr, tpr, _ = roc_curve(scores, labels)
    return float(np.max(np.abs(tpr - fpr)))


def tpr_at_fpr(scores, labels, fpr) -> float:
    """The largest TPR among achievable thresholds with FPR ``<= fpr`` (no interpolation between points).

    With ``n0`` non-members the achievable FPRs are multiples of ``1/n0``: below ``1/n0`` only a rule that
    flags no non-member counts (often TPR 0, unless top-scored members stand alone above every non-member)."""
    target = _check_fpr("fpr", fpr)
    curve_fpr, curve_tpr, _ = roc_curve(scores, labels)
    return float(_tpr_at_fpr_from_curve(curve_fpr, curve_tpr, target))


_LOW_FPRS = {"tpr_at_1pct_fpr": 0.01, "tpr_at_0.1pct_fpr": 0.001}
METRIC_NAMES = ("auc", "advantage", *_LOW_FPRS)


def _metrics_from_weights(labels_sorted: np.ndarray, ends: np.ndarray, weights: np.ndarray) -> dict:
    """Metrics for each row of ``weights`` (how many times each example, in decreasing-score order, is drawn).

    A bootstrap replicate keeps the order of the original scores, so its ROC curve is the weighted cumulative
    count at the same group ends: one cumulative sum over a [B, N] array serves every replicate at once."""
    member = labels_sorted.astype(bool)
    tps = np.cumsum(np.where(member, weights, 0.0), axis=1)[:, ends]
    fps = np.cumsum(np.where(member, 0.0, weights), axis=1)[:, ends]
    zeros = np.zeros((weights.shape[0], 1))
    tpr = np.concatenate([zeros, tps / tps[:, -1:]], axis=1)
    fpr = np.concatenate([zeros, fps / fps[:, -1:]], axis=1)
    out = {"auc": _auc_from_curve(fpr, tpr), "advantage": np.max(np.abs(tpr - fpr), axis=1)}
    for key, target in _LOW_FPRS.items():
        out[key] = _tpr_at_fpr_from_curve(fpr, tpr, target)
    return out


def _bootstrap_weights(rng: np.random.Generator, labels_sorted: np.ndarray, n_rows: int) -> np.ndarray:
    """Stratified bootstrap as counts: members resampled among members, non-members among non-members."""
    weights = np.zeros((n_rows, labels_sorted.size))
    for value in (0, 1):
        where = np.flatnonzero(labels_sorted == value)
        draws = rng.integers(0, where.size, size=(n_rows, where.size))
        draws += np.arange(n_rows)[:, None] * where.size           # one bincount for every row at once
        counts = np.bincount(draws.ravel(), minlength=n_rows * where.size).reshape(n_rows, where.size)
        weights[:, where] = counts
    return weights


def attack_metrics(scores, labels, *, n_bootstrap: int = 200, confidence: float = 0.95, seed: int = 0,
                   balanced: bool = True) -> dict:
    """AUC, advantage and TPR at 1% and 0.1% FPR, each with a stratified-bootstrap percentile interval.

    Keys: ``auc``, ``advantage``, ``tpr_at_1pct_fpr``, ``tpr_at_0.1pct_fpr`` (point estimates on the full
    sample), each with ``<key>_low`` and ``<key>_high`` (the ``(1 - confidence)/2`` and ``(1 + confidence)/2``
    quantiles over ``n_bootstrap`` replicates that resample members and non-members separately, so that every
    replicate has the original class sizes), and ``n_members``, ``n_nonmembers``. ``n_bootstrap=0`` gives NaN
    intervals. The membership game is balanced (THEORY.md §1), so unequal class sizes are refused unless
    ``balanced=False`` (see ``balanced_indices`` to subsample). Same seed, same numbers.

    Measured coverage of the 95% intervals (Gaussian scores, 100 repetitions): AUC 0.92 at 200 + 200 examples
    and 0.96 at 1000 + 1000; TPR at 1% FPR 0.90 and 0.93; the advantage, a maximum over thresholds and so
    biased upwards at small samples, only 0.78 and 0.87: read its interval as rough.
    """
    scores, labels = _scores_and_labels(scores, labels)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, minimum=0)
    confidence = check_float("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    seed = check_int("seed", seed, minimum=0)
    n_members = int(labels.sum())
    n_nonmembers = int(labels.size - n_members)
    if balanced and n_members != n_nonmembers:
        raise ValueError(f"labels are unbalanced ({n_members} members, {n_nonmembers} non-members); the "
                         "membership game is balanced: subsample with balanced_indices(labels, seed) or pass "
                         "balanced=False")
    order, _, ends = _sorted_counts(scores, labels)
    labels_sorted = labels[order]
    point = _metrics_from_weights(labels_sorted, ends, np.ones((1, labels.size)))
    result = {key: float(value[0]) for key, value in point.items()}
    if n_bootstrap:
        rng = np.random.default_rng(seed)
        # chunks bound the memory to a few [chunk, N] arrays of doubles
        chunk = max(1, min(n_bootstrap, 2_000_000 // labels.size))
        samples = {key: [] for key in METRIC_NAMES}
        for start in range(0, n_bootstrap, chunk):
            weights = _bootstrap_weights(rng, labels_sorted, min(chunk, n_bootstrap - start))
            for key, value in _metrics_from_weights(labels_sorted, ends, weights).items():
                samples[key].append(value)
        quantiles = [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0]
        for key in METRIC_NAMES:
            low, high = np.quantile(np.concatenate(samples[key]), quantiles)
            result[f"{key}_low"], result[f"{key}_high"] = float(low), float(high)
    else:
        for key in METRIC_NAMES:
            result[f"{key}_low"] = result[f"{key}_high"] = float("nan")
    ordered = {}
    for key in METRIC_NAMES:
        ordered[key], ordered[f"{key}_low"], ordered[f"{key}_high"] = (
            result[key], result[f"{key}_low"], result[f"{key}_high"])
    ordered["n_members"], ordered["n_nonmembers"] = n_members, n_nonmembers
    return ordered


def balanced_indices(labels, seed: int = 0) -> np.ndarray:
    """Sorted indices of a balanced subsample: every example of the smaller class and as many, drawn at random
    without replacement, of the larger one."""
    labels = _labels("labels", labels)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    members, nonmembers = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    size = min(members.size, nonmembers.size)
    chosen = [group if group.size == size else rng.choice(group, size=size, replace=False)
              for group in (members, nonmembers)]
    return np.sort(np.concatenate(chosen))


def membership_split(n_total: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n_total)`` at random into ``(members, nonmembers)``, two sorted index arrays of
    ``n_total // 2`` each (one index is left out when ``n_total`` is odd)."""
    n_total = check_int("n_total", n_total, minimum=2)
    seed = check_int("seed", seed, minimum=0)
    permutation = np.random.default_rng(seed).permutation(n_total)
    half = n_total // 2
    return np.sort(permutation[:half]), np.sort(permutation[half:2 * half])


# ----------------------------------------------------------------------------------------------------------
# per-example statistics
# ----------------------------------------------------------------------------------------------------------

def loss_threshold_scores(losses) -> np.ndarray:
    """Yeom et al. (2018): a member tends to have a lower loss, so the score is ``-loss``."""
    return -_float_array("losses", losses, allow_inf=True)


def logit_confidence(p_true, *, eps: float = 1e-15) -> np.ndarray:
    """LiRA's statistic ``log(p / (1 - p))`` of the probability given to the true label.

    ``p`` is clipped to ``[eps, 1 - eps]`` so that 0 and 1 stay finite (at ``eps=1e-15`` the statistic lies
    in about ``[-34.5, 34.5]``); from logits, ``logit_confidence_from_logits`` needs no clipping."""
    p = _probabilities("p_true", p_true, ndim=(1, 2))
    eps = check_float("eps", eps, low=0.0, high=0.5, low_open=True, high_open=True)
    p = np.clip(p, eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


def logit_confidence_from_logits(logits, labels) -> np.ndarray:
    """LiRA's statistic ``log(p_y / (1 - p_y))`` from raw logits, stably: ``z_y - logsumexp_{k != y} z_k``.

    ``logits`` of shape ``[m, C]`` (C >= 2 classes, integer ``labels`` in ``[0, C)``) or, for a binary model
    with one logit ``z`` for class 1, shape ``[m]`` or ``[m, 1]`` (labels in {0, 1}: the statistic is ``z`` for
    label 1 and ``-z`` for label 0). Here ``labels`` are the task's class labels, not membership."""
    z = _float_array("logits", logits, ndim=(1, 2))
    y = _to_numpy("labels", labels)
    if y.ndim != 1 or y.shape[0] != z.shape[0]:
        raise ValueError(f"labels must be a 1-d array with one class label per row of logits "
                         f"({z.shape[0]}), got shape {y.shape}")
    if not np.all(np.isfinite(y.astype(np.float64))) or not np.all(y == np.round(y)):
        raise ValueError("labels must be integer class labels")
    y = y.astype(np.int64)
    binary = z.ndim == 1 or z.shape[1] == 1
    n_classes = 2 if binary else z.shape[1]
    if (y < 0).any() or (y >= n_classes).any():
        raise ValueError(f"labels must lie in [0, {n_classes - 1}] for logits of shape {z.shape}")
    if binary:
        z = z.reshape(-1)
        return np.where(y == 1, z, -z)
    rows = np.arange(z.shape[0])
    others = z.copy()
    others[rows, y] = -np.inf
    return z[rows, y] - logsumexp(others, axis=1)


def negative_squared_error(predictions, targets) -> np.ndarray:
    """The statistic used for regression LiRA: ``-(prediction - target)^2`` (higher = fits better = member).

    It plays the role of the logit confidence: LiRA fits per-example Gaussians to it across shadow models.
    (The signed residual is closer to Gaussian but its sign carries no membership signal by itself; the
    squared error is the usual choice, and the Gaussian fit is only a working model.)"""
    predictions = _float_array("predictions", predictions, ndim=(1, 2))
    targets = _float_array("targets", targets, ndim=(1, 2))
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions has shape {predictions.shape} but targets has shape {targets.shape}")
    return -np.square(predictions - targets)


# ----------------------------------------------------------------------------------------------------------
# LiRA (Carlini et al. 2022)
# ----------------------------------------------------------------------------------------------------------

def _shadow_matrix(name: str, stats, mask, mask_name: str, m: int) -> np.ndarray:
    """Shadow statistics ``[n_shadow, m]`` with missing entries as NaN (NaN in ``stats`` or False in ``mask``)."""
    stats = _float_array(name, stats, ndim=2, allow_nan=True)
    if stats.shape[1] != m:
        raise ValueError(f"{name} has shape {stats.shape}; it must be [n_shadow, m] with m = {m} "
                         "(the length of target_stats)")
    if mask is None:
        return stats
    mask = _to_numpy(mask_name, mask)
    if mask.dtype != bool:
        raise TypeError(f"{mask_name} must be a boolean array, got dtype {mask.dtype}")
    if mask.shape != stats.shape:
        raise ValueError(f"{mask_name} has shape {mask.shape} but {name} has shape {stats.shape}")
    if np.isnan(stats[mask]).any():
        raise ValueError(f"{name} has NaN entries where {mask_name} is True")
    return np.where(mask, stats, np.nan)


def _gaussian_fit(name: str, stats: np.ndarray, fixed_variance: bool, min_std: float):
    """Per-example mean and standard deviation over the shadow models (axis 0), ignoring NaN.

    The per-example variance is unbiased (ddof=1); with ``fixed_variance`` one variance is pooled over all
    examples around their own means, ``sum_j sum_i (x_ij - mu_j)^2 / sum_j (n_j - 1)`` (the spread between
    examples is not counted). ``min_std`` keeps a degenerate fit (all shadows equal) finite."""
    counts = np.sum(~np.isnan(stats), axis=0)
    if (counts < 1).any():
        raise ValueError(f"{name}: {int((counts < 1).sum())} examples have no shadow statistic "
                         f"(first: column {int(np.argmax(counts < 1))}); every example needs at least one")
    mean = np.nansum(stats, axis=0) / counts
    squares = np.nansum(np.square(stats - mean), axis=0)
    if fixed_variance:
        dof = int(np.sum(counts - 1))
        if dof < 1:
            raise ValueError(f"{name}: a pooled variance needs two statistics for some example")
        std = np.full(mean.shape, math.sqrt(float(squares.sum()) / dof))
    else:
        if (counts < 2).any():
            raise ValueError(f"{name}: {int((counts < 2).sum())} examples have fewer than two shadow "
                             "statistics, too few for a per-example variance; use fixed_variance=True or "
                             "more shadow models")
        std = np.sqrt(squares / (counts - 1))
    return mean, np.maximum(std, min_std)


def _gaussian_logpdf(x, mean, std):
    return -0.5 * np.square((x - mean) / std) - np.log(std) - _LOG_SQRT_2PI


def lira_offline_scores(target_stats, shadow_out_stats, *, out_mask=None, fixed_variance: bool = False,
                        min_std: float = 1e-12) -> np.ndarray:
    """Offline LiRA: a one-sided test against the Gaussian fitted to OUT shadow statistics.

    ``target_stats`` ``[m]`` (the target model's statistic on each example, e.g. ``logit_confidence``),
    ``shadow_out_stats`` ``[n_shadow, m]`` from shadow models *not* trained on the example (NaN, or False in
    ``out_mask``, where a shadow did train on it). With ``mu, s`` the OUT mean and standard deviation, the score
    is ``-log P(Z >= x)``, ``Z ~ N(mu, s^2)``: minus the log p-value of "x is no larger than a non-member's",
    computed as ``-log_ndtr(-(x - mu)/s)`` so it never saturates. It orders examples exactly as Carlini et al.'s
    ``Phi((x - mu)/s)`` does."""
    x = _float_array("target_stats", target_stats)
    min_std = check_float("min_std", min_std, low=0.0, low_open=True)
    out = _shadow_matrix("shadow_out_stats", shadow_out_stats, out_mask, "out_mask", x.size)
    mean, std = _gaussian_fit("shadow_out_stats", out, fixed_variance, min_std)
    return -log_ndtr(-(x - mean) / std)


def lira_online_scores(target_stats, shadow_in_stats, shadow_out_stats, *, in_mask=None, out_mask=None,
                       fixed_variance: bool = False, min_std: float = 1e-12) -> np.ndarray:
    """Online LiRA: ``log N(x; mu_in, s_in^2) - log N(x; mu_out, s_out^2)`` per example.

    ``shadow_in_stats`` and ``shadow_out_stats`` are ``[n_shadow, m]`` (they may be the same array with
    ``in_mask`` / ``out_mask`` saying which shadow trained on which example; missing entries may also be NaN).
    ``fixed_variance`` pools one IN variance and one OUT variance over all examples (see ``_gaussian_fit``)."""
    x = _float_array("target_stats", target_stats)
    min_std = check_float("min_std", min_std, low=0.0, low_open=True)
    inside = _shadow_matrix("shadow_in_stats", shadow_in_stats, in_mask, "in_mask", x.size)
    out = _shadow_matrix("shadow_out_stats", shadow_out_stats, out_mask, "out_mask", x.size)
    mean_in, std_in = _gaussian_fit("shadow_in_stats", inside, fixed_variance, min_std)
    mean_out, std_out = _gaussian_fit("shadow_out_stats", out, fixed_variance, min_std)
    return _gaussian_logpdf(x, mean_in, std_in) - _gaussian_logpdf(x, mean_out, std_out)


# ----------------------------------------------------------------------------------------------------------
# white-box Gaussian likelihood ratio on quantized weights
# ----------------------------------------------------------------------------------------------------------

def _interval_logprob(low: np.ndarray, high: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """log P(low <= X <= high), X ~ N(mean, std^2), broadcast; low == high gives the log density instead.

    The difference of CDFs is taken on the side where both are small (flip the interval to the left half of
    the normal when it lies mostly to the right), in log space: log Phi(b) + log(1 - exp(log Phi(a) -
    log Phi(b))). Very narrow intervals (width below 1e-5 standard deviations, where that difference loses
    digits) use the midpoint rule with its second-order term instead."""
    with np.errstate(invalid="ignore"):   # inf - inf for infinite bounds is resolved just below
        a = (low - mean) / std
        b = (high - mean) / std
        flip = (a + b) > 0                # nan (a = -inf, b = +inf) counts as "no flip", which is right
    a, b = np.where(flip, -b, a), np.where(flip, -a, b)
    log_b = log_ndtr(b)
    with np.errstate(invalid="ignore"):
        log_prob = log_b + log1mexp(log_ndtr(a) - log_b)
    point = low == high
    # the width from the bounds themselves: b - a rounds to 0 for a cell far narrower than its distance to the mean
    # (a bfloat16 cell of 1e-18 at 1e-16, a standard deviation of 0.3 away)
    with np.errstate(invalid="ignore"):
        width = (high - low) / std
    with np.errstate(invalid="ignore"):
        narrow = (width < 1e-5) & ~point
    if point.any() or narrow.any():
        with np.errstate(invalid="ignore"):
            mid = np.where(np.isfinite(a) & np.isfinite(b), (a + b) / 2.0, 0.0)
        log_phi = -0.5 * mid * mid - _LOG_SQRT_2PI
        safe_width = np.where(narrow, width, 1.0)
        # integral of phi over [mid - w/2, mid + w/2] = w phi(mid) (1 + w^2 (mid^2 - 1) / 24 + O(w^4))
        log_narrow = log_phi + np.log(safe_width) + np.log1p(safe_width ** 2 * (mid * mid - 1.0) / 24.0)
        log_prob = np.where(narrow, log_narrow, log_prob)
        log_prob = np.where(point, log_phi - np.log(std), log_prob)
    return log_prob


def _cell_arrays(cell_low, cell_high):
    low = _float_array("cell_low", cell_low, allow_inf=True)
    high = _float_array("cell_high", cell_high, allow_inf=True)
    if low.shape != high.shape:
        raise ValueError(f"cell_low has shape {low.shape} but cell_high has shape {high.shape}")
    if (low > high).any():
        k = int(np.argmax(low > high))
        raise ValueError(f"cell_low > cell_high at {int((low > high).sum())} coordinates (first: {k}, "
                         f"[{low[k]}, {high[k]}]); a cell is [cell_low, cell_high]")
    if ((low == high) & np.isinf(low)).any():
        raise ValueError("cell_low == cell_high == +-inf at some coordinate: a released weight must be finite")
    if (low == np.inf).any() or (high == -np.inf).any():
        raise ValueError("a cell cannot start at +inf (cell_low) or end at -inf (cell_high)")
    return low, high


def _std_array(std, d: int) -> np.ndarray:
    if isinstance(std, numbers.Real) and not isinstance(std, bool):
        std = np.full(d, float(std))
    std = _float_array("std", std, ndim=(0, 1))
    std = np.broadcast_to(std, (d,)) if std.ndim == 0 else std
    if std.shape != (d,):
        raise ValueError(f"std must be a scalar or have shape ({d},) like cell_low, got {std.shape}")
    if (std <= 0).any():
        raise ValueError(f"std must be > 0 everywhere; found {int((std <= 0).sum())} entries <= 0 "
                         f"(smallest {std.min()})")
    return std


def gaussian_interval_logprob(cell_low, cell_high, mean, std) -> np.ndarray:
    """``log P(cell_low <= X <= cell_high)`` for ``X ~ N(mean, std^2)``, per coordinate, accurate far in the
    tails (values near -1e300 stay finite); where ``cell_low == cell_high`` the log density at that point.
    Infinite bounds are allowed. ``cell_low``, ``cell_high``, ``mean``: ``[d]``; ``std``: scalar or ``[d]``."""
    low, high = _cell_arrays(cell_low, cell_high)
    mean = _float_array("mean", mean)
    if mean.shape != low.shape:
        raise ValueError(f"mean has shape {mean.shape} but cell_low has shape {low.shape}")
    return _interval_logprob(low, high, mean, _std_array(std, low.size))


def whitebox_gaussian_scores(cell_low, cell_high, mean_out, shifts, std, *,
                             max_chunk_elements: int = 4_000_000) -> np.ndarray:
    """White-box Gaussian likelihood-ratio attack on a release that reveals only the cell of each weight.

    Working model: the trained weights are ``N(mean_out, diag(std^2))`` when target ``j`` is not a member, and
    ``N(mean_out + shifts[j], diag(std^2))`` when it is (``shifts`` ``[m, d]``: the influence of target ``j``,
    e.g. ``-(1/n) H^-1 grad loss(z_j)``, computed by the caller). The release shows the cell
    ``[cell_low, cell_high]`` (``[d]``; e.g. ``q.cell_bounds(theta_hat)``) that contains the weights, and

        score_j = sum_k [ log P(cell_k | in_j) - log P(cell_k | out) ],

    the exact log-likelihood ratio of the observed cells (the Bayes-optimal test under the working model).
    Coordinates with ``cell_low == cell_high`` are released as is (identity, kept weights of magnitude
    pruning) and use the log density; infinite bounds are allowed. Returns ``[m]`` scores, higher = member.
    Work is split into chunks of targets of at most ``max_chunk_elements`` entries of ``[m, d]``.
    """
    low, high = _cell_arrays(cell_low, cell_high)
    d = low.size
    mean_out = _float_array("mean_out", mean_out)
    if mean_out.shape != (d,):
        raise ValueError(f"mean_out has shape {mean_out.shape} but cell_low has shape {low.shape}")
    shifts = _float_array("shifts", shifts, ndim=2)
    if shifts.shape[1] != d:
        raise ValueError(f"shifts has shape {shifts.shape}; it must be [m, d] with d = {d} (one row per target)")
    std = _std_array(std, d)
    max_chunk_elements = check_int("max_chunk_elements", max_chunk_elements, minimum=1)
    log_out = float(np.sum(_interval_logprob(low, high, mean_out, std)))
    scores = np.empty(shifts.shape[0])
    rows = max(1, max_chunk_elements // d)
    for start in range(0, shifts.shape[0], rows):
        block = shifts[start:start + rows]
        log_in = _interval_logprob(low, high, mean_out + block, std).sum(axis=1)
        scores[start:start + rows] = log_in - log_out
    return scores


# ----------------------------------------------------------------------------------------------------------
# RMIA (Zarifzadeh et al. 2024)
# ----------------------------------------------------------------------------------------------------------

def _probabilities(name: str, value, *, ndim: int | tuple[int, ...] = 1, allow_nan: bool = False) -> np.ndarray:
    """``_float_array`` of probabilities (also used by ``logit_confidence``)."""
    p = _float_array(name, value, ndim=ndim, allow_nan=allow_nan)
    if (p < 0).any() or (p > 1).any():      # NaN compares False: only real values outside [0, 1] are refused
        raise ValueError(f"{name} must lie in [0, 1]; found values in [{np.nanmin(p)}, {np.nanmax(p)}]")
    return p


def _rmia_log_ratio(target_name: str, target, name: str, reference, mask, mask_name: str, offline_a):
    """``log(Pr(.|target) / Pr(.))`` per example, ``Pr(.)`` the reference mean (offline-corrected when
    ``offline_a`` is set), and the number of reference models."""
    p_target = _probabilities(target_name, target)
    reference = _shadow_matrix(name, reference, mask, mask_name, p_target.size)
    _probabilities(name, reference, ndim=2, allow_nan=True)
    counts = np.sum(~np.isnan(reference), axis=0)
    if (counts < 1).any():
        raise ValueError(f"{name}: {int((counts < 1).sum())} examples have no reference statistic "
                         f"(first: column {int(np.argmax(counts < 1))}); every example needs at least one")
    p_marginal = np.nansum(reference, axis=0) / counts
    if offline_a is not None:
        p_marginal = 0.5 * ((1.0 + offline_a) * p_marginal + (1.0 - offline_a))
    tiny = np.finfo(np.float64).tiny        # 0 / 0 reads as a ratio of 1 (no evidence), not NaN
    return np.log(np.maximum(p_target, tiny)) - np.log(np.maximum(p_marginal, tiny)), reference.shape[0]


def rmia_scores(target_p_x, reference_p_x, target_p_z, reference_p_z, *, out_mask=None, z_out_mask=None,
                offline_a: float | None = None, gamma: float = 2.0) -> np.ndarray:
    """RMIA (Zarifzadeh, Liu and Shokri, ICML 2024): the fraction of population samples ``z`` that ``x`` beats.

    ``target_p_x`` ``[m]``: the target model's probability of the true label ``Pr(y|x)`` on each example;
    ``reference_p_x`` ``[k, m]``: the same from ``k`` reference models (NaN where missing); ``target_p_z``
    ``[n_z]`` and ``reference_p_z`` ``[k, n_z]``: the same on population samples ``z`` (known non-members of
    the target). With ``Pr(x)`` the mean of the reference probabilities, ``LR(x) = Pr(x|target) / Pr(x)`` and

        score(x) = (1 / n_z) #{z : LR(x) / LR(z) > gamma},

    in ``[0, 1]``, higher = member. **Online** (``offline_a=None``): ``Pr(x)`` averages every reference model,
    IN and OUT; with complementary pairs (each ``x`` IN for half of them) this is ``(Pr_IN + Pr_OUT) / 2``.
    **Offline** (``offline_a=a`` in ``[0, 1]``): only OUT references (``out_mask`` ``[k, m]`` True where a
    reference model did not train on ``x``; ``z_out_mask`` likewise for ``z``; None: all OUT), and the paper's
    linear approximation ``Pr_IN = a Pr_OUT + (1 - a)`` gives ``Pr(x) = ((1 + a) Pr_OUT(x) + (1 - a)) / 2``.
    (ML Privacy Meter tunes ``a`` on a grid by attacking one reference model with the others; the paper's
    configurations use ``a = 0.3``.)

    Ratios are compared in log space (probability 0 floored at the smallest positive double), the count by
    a binary search: ``O((m + n_z) log n_z)``, no ``[m, n_z]`` matrix. For regression, pass
    ``gaussian_likelihood`` values. At ``gamma = 1`` the score is an increasing step function of ``LR(x)``
    alone (the samples ``z`` set only its resolution); ``gamma > 1`` asks ``x`` to beat ``z`` by a margin.
    """
    if offline_a is not None:
        offline_a = check_float("offline_a", offline_a, low=0.0, high=1.0)
    elif out_mask is not None or z_out_mask is not None:
        raise ValueError("out_mask and z_out_mask select OUT references for the offline attack; online RMIA "
                         "averages every reference model (pass offline_a for the offline attack)")
    gamma = check_float("gamma", gamma, low=0.0, low_open=True)
    log_lr_x, k_x = _rmia_log_ratio("target_p_x", target_p_x, "reference_p_x", reference_p_x, out_mask,
                                    "out_mask", offline_a)
    log_lr_z, k_z = _rmia_log_ratio("target_p_z", target_p_z, "reference_p_z", reference_p_z, z_out_mask,
                                    "z_out_mask", offline_a)
    if k_x != k_z:
        raise ValueError(f"reference_p_x has {k_x} reference models but reference_p_z has {k_z}; the same "
                         "reference models must score x and z")
    # LR(x) / LR(z) > gamma  <=>  log LR(z) < log LR(x) - log gamma
    below = np.searchsorted(np.sort(log_lr_z), log_lr_x - math.log(gamma), side="left")
    return below / log_lr_z.size


def rmia_offline_a(target_p_x, reference_p_x, target_p_z, reference_p_z, labels, *, out_mask=None,
                   z_out_mask=None, gamma: float = 2.0, grid=tuple(k / 10 for k in range(11))) -> float:
    """Offline RMIA's ``a`` as ML Privacy Meter chooses it (attacks.py, ``tune_offline_a``, lines 42-88): the
    value on ``grid`` whose offline RMIA scores a model of known membership (``labels``; typically a reference
    model, attacked with the others but its complementary partner) with the largest AUC, the first on ties.
    Arguments as ``rmia_scores``, whose target is now that model."""
    grid = [check_float("grid entry", a, low=0.0, high=1.0) for a in np.atleast_1d(grid).tolist()]
    if not grid:
        raise ValueError("grid is empty; give at least one value of a in [0, 1]")

    def auc_at(a):          # auc checks the labels (0 and 1, both present, one per example)
        return auc(rmia_scores(target_p_x, reference_p_x, target_p_z, reference_p_z, out_mask=out_mask,
                               z_out_mask=z_out_mask, offline_a=a, gamma=gamma), labels)
    return max(grid, key=auc_at)


def gaussian_likelihood(predictions, targets, scale) -> np.ndarray:
    """RMIA's ``Pr(y|x)`` for regression: ``exp(-((prediction - target) / scale)^2 / 2)``, in ``(0, 1]``.

    The Gaussian density of the residual up to its constant ``1 / (scale sqrt(2 pi))``, which cancels in
    ``Pr(x|target) / Pr(x)`` when every model shares ``scale`` (e.g. the noise standard deviation, estimated
    by the root-mean-square residual of the reference models); it is 1 at a perfect fit, like a probability
    of 1 for the true label, so the offline line ``Pr_IN = a Pr_OUT + (1 - a)`` keeps its meaning."""
    scale = check_float("scale", scale, low=0.0, low_open=True)
    return np.exp(negative_squared_error(predictions, targets) / (2.0 * scale * scale))
