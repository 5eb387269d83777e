"""The membership game, simulated (a check of the exact values by playing it)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from mislib.infra.checks import check_choice, check_float, check_int
from mislib.quantizers import StochasticRounding
from mislib.mis.exact import bernoulli_levels, exact_bernoulli_mean, exact_gaussian_mean
from mislib.mis.numerics import check_quantizer, grid_at, log_interval_prob, tent_expectation


# ----------------------------------------------------------------------------------------------------------
# The membership game, simulated
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GameResult:
    """Empirical accuracy of the Bayes-optimal attack over ``n_games`` balanced games, with a Wilson interval,
    beside the exact value ``(1 + Delta_n) / 2``."""

    n: int
    n_games: int
    accuracy: float
    ci_low: float
    ci_high: float
    exact_accuracy: float
    exact_log_delta: float
    confidence: float
    description: str

    @property
    def advantage(self) -> float:
        return 2 * self.accuracy - 1

    @property
    def z_score(self) -> float:
        se = math.sqrt(max(self.exact_accuracy * (1 - self.exact_accuracy), 1e-300) / self.n_games)
        return (self.accuracy - self.exact_accuracy) / se

    @property
    def consistent(self) -> bool:
        return self.ci_low <= self.exact_accuracy <= self.ci_high


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    successes = check_int("successes", successes, minimum=0)
    trials = check_int("trials", trials, minimum=max(1, successes))
    confidence = check_float("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    phat = successes / trials
    denominator = 1 + z * z / trials
    centre = (phat + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(phat * (1 - phat) / trials + z * z / (4 * trials * trials)) / denominator
    # The interval always contains phat; clip the rounding at 0 and 1 (at phat = 1 the upper end is exactly 1).
    return max(0.0, min(centre - half, phat)), min(1.0, max(centre + half, phat))


def _gaussian_game_guesses(n, mu, sigma, grid, theta, target, generator):
    """Bayes-optimal guess (1 = member) from the release of theta and the target, exactly."""
    scale = math.sqrt(n) / sigma
    x = (theta - mu) * scale
    u = (target - mu) / sigma
    rho, s = 1 / math.sqrt(n), math.sqrt(1 - 1 / n)
    if grid is None:
        if n == 1:
            return theta == target
        log_cond = -0.5 * ((x - rho * u) / s) ** 2 - math.log(s)
        return log_cond > -0.5 * x ** 2
    release = grid(torch.as_tensor(theta, dtype=torch.float64), generator=generator).numpy()
    if isinstance(grid, StochasticRounding):
        level = (release - mu) * scale
        width = grid.step * scale
        cond = tent_expectation(rho * u, s if n > 1 else 0.0, level, width)
        return cond > tent_expectation(0.0, 1.0, level, width)
    low = (release - grid.step / 2 - mu) * scale
    high = (release + grid.step / 2 - mu) * scale
    log_marginal = log_interval_prob(low, high)
    if n == 1:
        same = grid(torch.as_tensor(target, dtype=torch.float64)).numpy() == release
        return same & (log_marginal < 0)
    return log_interval_prob((low - rho * u) / s, (high - rho * u) / s) > log_marginal


def _bernoulli_game_guesses(n, p, grid, k_total, target, generator):
    """Bernoulli: P(R = r | z = 1) - P(R = r) = (1 - p) D_r and P(R = r | z = 0) - P(R = r) = -p D_r with
    D_r = P(R(K' + 1) = r) - P(R(K') = r); the optimal guess is the sign of D_r, flipped for z = 0."""
    log_b = lambda k: stats.binom.logpmf(k, n - 1, p)  # noqa: E731  (-inf outside 0..n-1)
    if grid is None:
        positive = log_b(k_total - 1) > log_b(k_total)
        negative = log_b(k_total - 1) < log_b(k_total)
    elif isinstance(grid, StochasticRounding):
        release = grid(torch.as_tensor(k_total / n, dtype=torch.float64), generator=generator).numpy()
        k = np.arange(n)
        weight = stats.binom.pmf(k, n - 1, p)
        diff = {}
        index = np.round((release - grid.offset) / grid.step).astype(np.int64)
        levels = np.unique(index)
        for shift, sign in ((1, 1.0), (0, -1.0)):
            position = ((k + shift) / n - grid.offset) / grid.step
            for lvl in levels:
                tent = np.maximum(1 - np.abs(position - lvl), 0.0)
                diff[lvl] = diff.get(lvl, 0.0) + sign * float(np.dot(weight, tent))
        d = np.array([diff[i] for i in index])
        positive, negative = d > 0, d < 0
    else:
        k = np.arange(n + 1)
        _, cell = np.unique(bernoulli_levels(grid, k, n), return_inverse=True)
        first = np.full(cell.max() + 1, n + 1)
        last = np.full(cell.max() + 1, -1)
        np.minimum.at(first, cell, k)
        np.maximum.at(last, cell, k)
        c = cell[k_total]
        low_side, high_side = log_b(first[c] - 1), log_b(last[c])
        positive, negative = low_side > high_side, low_side < high_side
    return np.where(target == 1, positive, negative)


def simulate_membership_game(n: int, model: str = "gaussian", *, mu: float = 0.0, sigma: float = 1.0,
                             p: float = 0.5, quantizer=None, n_games: int = 10_000, seed: int = 0,
                             confidence: float = 0.95) -> GameResult:
    """Play ``n_games`` balanced membership games and score the Bayes-optimal attack.

    Each game: a training set (drawn through its sufficient statistic: ``Z_1`` and the sum of the other n-1),
    the release ``R = Q(theta_hat)``, a fair coin ``T``, the target ``Z_1`` (T = 1, member) or a fresh ``Z_0``
    (T = 0); the attack says "member" iff ``p(R | Z_1 = target) > p(R)``, computed exactly. The accuracy should
    match ``(1 + Delta_n) / 2`` within the interval."""
    n = check_int("n", n, minimum=1)
    model = check_choice("model", model, {"gaussian", "bernoulli"})
    n_games = check_int("n_games", n_games, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    confidence = check_float("confidence", confidence, low=0.0, high=1.0, low_open=True, high_open=True)
    grid = grid_at(check_quantizer(quantizer), n)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    member = rng.random(n_games) < 0.5
    if model == "gaussian":
        exact = exact_gaussian_mean(n, mu, sigma, quantizer)
        z1 = rng.normal(mu, sigma, n_games)
        rest = rng.normal((n - 1) * mu, math.sqrt(n - 1) * sigma, n_games) if n > 1 else np.zeros(n_games)
        theta = (z1 + rest) / n if n > 1 else z1.copy()
        target = np.where(member, z1, rng.normal(mu, sigma, n_games))
        guess = _gaussian_game_guesses(n, mu, sigma, grid, theta, target, generator)
    else:
        exact = exact_bernoulli_mean(n, p, quantizer)
        z1 = (rng.random(n_games) < p).astype(np.int64)
        k_total = z1 + rng.binomial(n - 1, p, n_games)
        target = np.where(member, z1, (rng.random(n_games) < p).astype(np.int64))
        guess = _bernoulli_game_guesses(n, p, grid, k_total, target, generator)
    wins = int(np.sum(guess == member))
    low, high = wilson_interval(wins, n_games, confidence)
    return GameResult(n, n_games, wins / n_games, low, high, exact.bayes_accuracy, exact.log_delta, confidence,
                      exact.description)
