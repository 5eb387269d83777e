"""Synthetic data with a known law ``P``, so that membership experiments can draw as many training sets as they need.

Two families:

- ``GaussianMixture`` / ``gaussian_mixture``: ``k_modes`` isotropic Gaussian modes (identity covariance) in
  ``dim`` dimensions, equal weights. Mode ``j`` has class ``j % n_classes`` (with two classes the modes
  alternate 0, 1, 0, 1, ...), so a class is itself a mixture when ``k_modes > n_classes`` and the Bayes
  classifier is non-linear. The centres are ``separation * u_j`` with ``u_j`` independent uniform unit vectors
  drawn from ``centers_seed``; in high dimension they are nearly orthogonal, so two centres are about
  ``separation * sqrt(2)`` apart.
- ``LogisticModel`` / ``logistic_data``: a well-specified logistic regression, ``X ~ N(0, I_d)`` and
  ``y | X ~ Bernoulli(sigmoid(X beta + intercept))``: the maximum-likelihood estimator is a regular
  M-estimator whose sandwich covariance equals the inverse Fisher information (used to validate the indicator).

The law (centres, ``beta``) is fixed by the object; ``seed`` only decides which sample is drawn, so that
``sample(n, seed=s)`` for different ``s`` are independent draws from the same ``P``. Tensors are float64 on the
CPU unless ``dtype`` / ``device`` say otherwise; labels are floats in {0., 1., ...} (class indices).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mislib.infra.checks import check_float, check_int, resolve_device


def _generator(seed: int | torch.Generator) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    return torch.Generator().manual_seed(check_int("seed", seed, minimum=0))


@dataclass(frozen=True)
class GaussianMixture:
    """Equal-weight mixture of ``k_modes`` unit-variance Gaussians; mode ``j`` carries class ``j % n_classes``."""

    dim: int
    k_modes: int = 2
    separation: float = 3.0
    n_classes: int = 2
    centers_seed: int = 0
    centers: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        check_int("dim", self.dim, minimum=1)
        check_int("k_modes", self.k_modes, minimum=1)
        check_float("separation", self.separation, low=0.0)
        check_int("n_classes", self.n_classes, minimum=2)
        check_int("centers_seed", self.centers_seed, minimum=0)
        if self.k_modes < self.n_classes:
            raise ValueError(f"k_modes ({self.k_modes}) must be >= n_classes ({self.n_classes}): "
                             "every class needs at least one mode")
        g = torch.Generator().manual_seed(self.centers_seed)
        directions = torch.randn(self.k_modes, self.dim, generator=g, dtype=torch.float64)
        directions = directions / directions.norm(dim=1, keepdim=True).clamp_min(1e-12)
        object.__setattr__(self, "centers", self.separation * directions)

    def mode_labels(self) -> torch.Tensor:
        return torch.arange(self.k_modes) % self.n_classes

    def sample(self, n: int, seed: int | torch.Generator = 0, *, dtype=torch.float64, device=None):
        """``n`` i.i.d. points: ``X`` [n, dim] and class labels ``y`` [n] (floats)."""
        n = check_int("n", n, minimum=1)
        g = _generator(seed)
        modes = torch.randint(self.k_modes, (n,), generator=g)
        X = self.centers[modes] + torch.randn(n, self.dim, generator=g, dtype=torch.float64)
        y = self.mode_labels()[modes].to(torch.float64)
        device = resolve_device(device)
        return X.to(dtype=dtype, device=device), y.to(dtype=dtype, device=device)


def gaussian_mixture(n: int, dim: int, k_modes: int = 2, separation: float = 3.0, seed: int = 0, *,
                     n_classes: int = 2, centers_seed: int = 0, dtype=torch.float64, device=None):
    """Draw ``n`` points of ``GaussianMixture(dim, k_modes, separation, n_classes, centers_seed)``.

    Returns ``X`` [n, dim] and ``y`` [n] with ``y = mode % n_classes``. ``seed`` picks the sample,
    ``centers_seed`` the law (keep it fixed to draw several samples from the same ``P``).
    """
    mixture = GaussianMixture(dim=dim, k_modes=k_modes, separation=separation, n_classes=n_classes,
                              centers_seed=centers_seed)
    return mixture.sample(n, seed, dtype=dtype, device=device)


@dataclass(frozen=True)
class LogisticModel:
    """Well-specified logistic model: ``X ~ N(0, I_d)``, ``y ~ Bernoulli(sigmoid(X beta + intercept))``."""

    beta: tuple
    intercept: float = 0.0

    def __post_init__(self):
        values = self.beta.tolist() if isinstance(self.beta, torch.Tensor) else list(self.beta)
        beta = tuple(check_float(f"beta[{i}]", b) for i, b in enumerate(values))
        if not beta:
            raise ValueError("beta must have at least one coefficient")
        object.__setattr__(self, "beta", beta)
        check_float("intercept", self.intercept)

    @property
    def dim(self) -> int:
        return len(self.beta)

    def true_parameters(self, fit_intercept: bool = False) -> torch.Tensor:
        """theta* in the layout of ``mislib.evaluation.trainers.fit_logistic`` (intercept last) -- without the
        ridge shrinkage."""
        beta = torch.tensor(self.beta, dtype=torch.float64)
        return torch.cat([beta, torch.tensor([self.intercept], dtype=torch.float64)]) if fit_intercept else beta

    def sample(self, n: int, seed: int | torch.Generator = 0, *, dtype=torch.float64, device=None):
        """``n`` i.i.d. pairs: ``X`` [n, d] and ``y`` [n] in {0., 1.}."""
        n = check_int("n", n, minimum=1)
        g = _generator(seed)
        X = torch.randn(n, self.dim, generator=g, dtype=torch.float64)
        p = torch.sigmoid(X @ torch.tensor(self.beta, dtype=torch.float64) + self.intercept)
        y = (torch.rand(n, generator=g, dtype=torch.float64) < p).to(torch.float64)
        device = resolve_device(device)
        return X.to(dtype=dtype, device=device), y.to(dtype=dtype, device=device)


def logistic_data(n: int, beta, intercept: float = 0.0, seed: int = 0, *, dtype=torch.float64, device=None):
    """Draw ``n`` points of the well-specified ``LogisticModel(beta, intercept)``: ``X`` [n, d], ``y`` [n]."""
    return LogisticModel(tuple(beta), intercept).sample(n, seed, dtype=dtype, device=device)
