"""Membership advantage measured on held-out examples, and its permutation null (issue 14, part 2): an attack
metric of the core, next to ``mislib.attacks.attack_metrics`` (a module of its own only to keep ``attacks`` short).

Why: ``mislib.attacks.advantage`` is ``max over thresholds |TPR - FPR|`` on the examples it is measured on. The
maximum picks the luckiest threshold, so it is biased upward even when nothing leaks: with ``m`` members and
``m`` non-members and scores independent of membership it is the two-sample Kolmogorov-Smirnov statistic, whose
mean is about ``0.87 * sqrt(2 / m)`` (0.055 at m = 500). A leakage that falls like ``n^-1/2`` is hidden under
that floor, which falls at the same rate.

``heldout_advantage`` removes the bias by cross-fitting: the evaluated examples are split once at random into
two halves; on half A the rule (a threshold and a direction, "member iff score >= t" or "member iff score < t")
that maximises ``|TPR - FPR|`` is chosen, and on half B its **signed** ``TPR - FPR`` is measured (its advantage
in the direction chosen on A, which is negative when the choice was wrong); then the mirror (choose on B,
measure on A), and the two are averaged. With scores independent of membership the chosen rule is independent
of the other half, so the measured value has mean exactly 0 (a fact the tests check).

``permutation_null`` runs the same procedure (the same split of positions) on membership labels shuffled at
random, ``n_permutations`` times: the distribution of the held-out advantage, and of the maximum over
thresholds, when nothing leaks, for these very scores (ties included).
"""

from __future__ import annotations

import numpy as np

from mislib.attacks import advantage as max_advantage
from mislib.infra.checks import check_float, check_int

__all__ = ["heldout_advantage", "heldout_advantages", "max_advantages", "permutation_null", "split_halves"]


def _scores_labels(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 1 or scores.size < 4:
        raise ValueError(f"scores must be a 1-d array of at least 4 scores, got shape {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError(f"scores has {int((~np.isfinite(scores)).sum())} NaN or infinite entries")
    if labels.shape != scores.shape:
        raise ValueError(f"labels must have the shape of scores {scores.shape}, got {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (non-member) or 1 (member)")
    labels = labels.astype(np.int8)
    if labels.sum() < 2 or labels.sum() > labels.size - 2:
        raise ValueError("labels must hold at least two members and two non-members")
    return scores, labels


def split_halves(m: int, seed: int) -> np.ndarray:
    """A random half of ``range(m)`` as a boolean mask (``m // 2`` True), the split of ``heldout_advantage``."""
    m = check_int("m", m, minimum=4)
    rng = np.random.default_rng([check_int("seed", seed, minimum=0), 14])
    mask = np.zeros(m, dtype=bool)
    mask[rng.permutation(m)[: m // 2]] = True
    return mask


def _cuts(scores: np.ndarray, labels: np.ndarray):
    """For scores sorted in decreasing order and label rows ``[P, k]``: TPR - FPR of every rule "member iff score
    >= t", one column per cut position ``0..k`` (cut ``c`` = the top ``c`` scores are called members), with cuts
    inside a run of tied scores marked invalid."""
    P, k = labels.shape
    members = labels.sum(axis=1, keepdims=True).astype(np.float64)
    nonmembers = k - members
    if (members == 0).any() or (nonmembers == 0).any():
        raise ValueError("a half of the evaluated examples holds a single class; use more examples")
    tp = np.concatenate([np.zeros((P, 1)), np.cumsum(labels, axis=1)], axis=1)
    fp = np.arange(k + 1)[None, :] - tp
    diff = tp / members - fp / nonmembers
    valid = np.ones(k + 1, dtype=bool)
    valid[1:k] = scores[:-1] != scores[1:]
    return diff, valid


def _one_way(choose_scores, choose_labels, measure_scores, measure_labels) -> np.ndarray:
    """Choose the rule on one half, return its signed TPR - FPR on the other, for every label row."""
    order = np.argsort(-choose_scores, kind="stable")
    s_choose = choose_scores[order]
    diff, valid = _cuts(s_choose, choose_labels[:, order])
    strength = np.where(valid[None, :], np.abs(diff), -1.0)
    best = strength.argmax(axis=1)                                       # cut position per row
    sign = np.sign(diff[np.arange(diff.shape[0]), best])
    # the threshold of cut c is the c-th largest score (cut 0: +inf, nobody called a member)
    threshold = np.where(best > 0, s_choose[np.maximum(best - 1, 0)], np.inf)
    order_m = np.argsort(-measure_scores, kind="stable")
    s_measure = measure_scores[order_m]
    diff_m, _ = _cuts(s_measure, measure_labels[:, order_m])
    called = np.searchsorted(-s_measure, -threshold, side="right")     # how many scores are >= threshold
    return sign * diff_m[np.arange(diff_m.shape[0]), called]


def heldout_advantages(scores, label_rows, half: np.ndarray) -> np.ndarray:
    """The held-out advantage (module notes) of one score vector under each row of ``label_rows`` ``[P, m]``,
    with the split ``half`` (boolean ``[m]``); ``[P]`` values in ``[-1, 1]``."""
    scores = np.asarray(scores, dtype=np.float64)
    label_rows = np.atleast_2d(np.asarray(label_rows)).astype(np.int8)
    a, b = half, ~half
    forward = _one_way(scores[a], label_rows[:, a], scores[b], label_rows[:, b])
    backward = _one_way(scores[b], label_rows[:, b], scores[a], label_rows[:, a])
    return 0.5 * (forward + backward)


def max_advantages(scores, label_rows) -> np.ndarray:
    """``max over thresholds |TPR - FPR|`` of one score vector under each row of ``label_rows`` ``[P, m]`` (the
    biased in-sample advantage, ``mislib.attacks.advantage`` row by row)."""
    scores = np.asarray(scores, dtype=np.float64)
    label_rows = np.atleast_2d(np.asarray(label_rows)).astype(np.int8)
    order = np.argsort(-scores, kind="stable")
    diff, valid = _cuts(scores[order], label_rows[:, order])
    return np.where(valid[None, :], np.abs(diff), 0.0).max(axis=1)


def heldout_advantage(scores, labels, *, seed: int = 0) -> float:
    """Membership advantage with the threshold chosen on one random half of the examples and ``TPR - FPR``
    measured on the other, averaged with the mirror (module notes).

    Parameters
    ----------
    scores : array [m]
        Attack scores, higher = more likely a member.
    labels : array [m]
        1 = member, 0 = non-member (at least two of each).
    seed : int
        The random split.

    Returns
    -------
    float
        In ``[-1, 1]``; mean 0 when the scores are independent of membership.

    Raises
    ------
    ValueError
        On scores that are not finite, labels that are not 0/1, or a class with fewer than two examples.
    """
    scores, labels = _scores_labels(scores, labels)
    return float(heldout_advantages(scores, labels[None, :], split_halves(scores.size, seed))[0])


def permutation_null(scores, labels, *, n_permutations: int = 200, seed: int = 0) -> dict:
    """The held-out and the maximum advantage of ``scores`` under shuffled membership labels.

    The split of ``heldout_advantage(scores, labels, seed=seed)`` is kept and the labels are permuted
    ``n_permutations`` times (generator seeded by ``seed``).

    Returns
    -------
    dict
        ``heldout`` (the observed held-out advantage), ``max`` (the observed ``max |TPR - FPR|``),
        ``null_heldout`` and ``null_max`` (arrays ``[n_permutations]`` of the same under shuffled labels).

    Raises
    ------
    ValueError
        As ``heldout_advantage``, or for ``n_permutations < 2``.
    """
    scores, labels = _scores_labels(scores, labels)
    n_permutations = check_int("n_permutations", n_permutations, minimum=2)
    rng = np.random.default_rng([check_int("seed", seed, minimum=0), 15])
    rows = np.vstack([labels[None, :]] + [rng.permutation(labels)[None, :] for _ in range(n_permutations)])
    held = heldout_advantages(scores, rows, split_halves(scores.size, seed))
    maxima = max_advantages(scores, rows)
    return {"heldout": float(held[0]), "max": float(maxima[0]), "null_heldout": held[1:], "null_max": maxima[1:]}


def null_band(draws, confidence: float = 0.95) -> tuple[float, float]:
    """The central ``confidence`` interval (quantiles) of null draws."""
    confidence = check_float("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim != 1 or draws.size < 2:
        raise ValueError(f"draws must be a 1-d array of at least 2 null draws, got shape {draws.shape}")
    alpha = (1 - confidence) / 2
    return float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))


# the maximum over thresholds of mislib.attacks, re-exported for symmetry with heldout_advantage
__all__ += ["max_advantage", "null_band"]
