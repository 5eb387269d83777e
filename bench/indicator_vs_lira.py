"""The indicator (sandwich standard errors + margins) against a LiRA audit with 64 shadow models of the same model.

Set-up of the synthetic ranking study (``mislib.evaluation.audit``): a 4-mode Gaussian mixture in d = 20, a pool of 1,000
points, the target trained on a random half (n = 500), the quantizers of ``synthetic_ranking.STUDY_QUANTIZERS`` (public
grids from a model trained on an independent public sample). Two models: ridge logistic regression (21
parameters) and a one-hidden-layer tanh MLP with 16 units (353 parameters; Adam, then Newton-polished as in the
study). Both sides start from the trained target, whose training is shared and not timed.

- indicator: ``indicator.indicator_of_model`` on the target alone: sandwich standard errors and, per quantizer,
  margins, ``r_min``, ``r_soft``, scale channel. No other model is trained.
- LiRA: 64 shadow models in complementary pairs (``audit.shadow_masks``), trained in one batched call of the
  same trainer (``mislib.evaluation.trainers``: the fast path, not a loop), then per quantizer: every model's release
  (``audit.release``), the logit-confidence statistic on the pool, online LiRA scores (per-example Gaussians),
  AUC and TPR at 1% FPR.

Timed side by side in one run (medians over repeats, torch on 1 thread, see ``bench.common.threads``). Then the
rankings: how the indicator (``r_soft_with_scale``, higher = more private) orders the quantizers against LiRA's
AUC (higher = less private) with 95% bootstrap intervals (``agreement.ranking_agreement``: the fraction of pairs
separated by the intervals that are ordered the same way, and Kendall's tau over all quantizers).

Target: the indicator at least 100x cheaper in wall time.   python -m bench.indicator_vs_lira
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from bench.common import median_seconds, save, threads
from mislib import attacks, indicator
from mislib.evaluation import agreement, audit, trainers as models
from mislib.studies import synthetic_ranking
from mislib.evaluation.synthetic_data import GaussianMixture

DIM, N_POOL, N_SHADOW, SEED = 20, 1000, 64, 0
TARGET = 100.0
SETTINGS = {"logistic": dict(ridge=1e-3), "mlp": dict(ridge=1e-2, hidden=16, n_iter=500, lr=0.02)}


def _study_settings(kind: str) -> dict:
    s = SETTINGS[kind]
    return dict(dim=DIM, k_modes=4, separation=3.0, ridge=s["ridge"], hidden=s.get("hidden", 16),
                n_iter=s.get("n_iter", 500), lr=s.get("lr", 0.02), fit_intercept=True)


def fit(kind: str, X, y, weights) -> dict:
    """Batched fit of one model per row of ``weights`` (the study's trainers): named parameters [B, ...]."""
    s = SETTINGS[kind]
    if kind == "logistic":
        return models.coefficients_to_params(models.fit_logistic(X, y, s["ridge"], sample_weight=weights,
                                                                 max_iter=100))
    params = models.fit_mlp_head(X, y, s["hidden"], ridge=s["ridge"], sample_weight=weights, n_iter=s["n_iter"],
                                 lr=s["lr"], seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return audit.polish_mlp(params, X, y, weights, task="classification", ridge=s["ridge"])


def module(kind: str, params: dict, index: int):
    if kind == "mlp":
        return models.MLPHead.from_params(params, index=index)
    return models.LogisticRegression.from_coefficients(models.params_to_coefficients(params)[index])


def outputs(kind: str, params: dict, X) -> torch.Tensor:
    """Logits [B, N]."""
    if kind == "mlp":
        return models.mlp_forward(params, X).squeeze(-1)
    return params["linear.weight"][:, 0, :] @ X.T + params["linear.bias"]


class Case:
    """One model kind: data, target, quantizers, and the two procedures to time."""

    def __init__(self, kind: str):
        self.kind = kind
        law = GaussianMixture(dim=DIM, k_modes=4, separation=3.0, centers_seed=0)
        self.X, self.y = law.sample(N_POOL, seed=1)
        members, _ = attacks.membership_split(N_POOL, SEED)
        self.in_target = np.zeros(N_POOL, dtype=bool)
        self.in_target[members] = True
        self.labels = self.in_target.astype(np.int8)
        self.X_members, self.y_members = self.X[members], self.y[members]
        weights = torch.as_tensor(self.in_target[None], dtype=torch.float64)
        self.target = fit(kind, self.X, self.y, weights)          # shared by both procedures: not timed
        self.target_module = module(kind, self.target, 0)
        self.masks = audit.shadow_masks(N_POOL, N_SHADOW, SEED)
        absmax = synthetic_ranking.public_absmax(_study_settings(kind), kind, N_POOL // 2)
        self.quantizers = audit.build_quantizers(synthetic_ranking.STUDY_QUANTIZERS, absmax)

    def indicator(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", indicator.NotAtOptimumWarning)
            return indicator.indicator_of_model(self.target_module, self.X_members, self.y_members, "logistic",
                                            self.quantizers, ridge=SETTINGS[self.kind]["ridge"], seed=SEED)

    def lira(self):
        """Scores per quantizer (and AUC / TPR at 1% FPR, as the audit reports them)."""
        shadows = fit(self.kind, self.X, self.y, torch.as_tensor(self.masks, dtype=torch.float64))
        everything = {name: torch.cat([self.target[name], shadows[name]]) for name in shadows}
        out = {}
        for label, q in self.quantizers.items():
            generator = torch.Generator().manual_seed(SEED)
            logits = outputs(self.kind, audit.release(q, everything, generator), self.X)      # [1 + S, N]
            stats = attacks.logit_confidence_from_logits(logits.reshape(-1).numpy(),
                                                         self.y.repeat(logits.shape[0]).numpy())
            stats = stats.reshape(logits.shape)
            scores = attacks.lira_online_scores(stats[0], stats[1:], stats[1:], in_mask=self.masks,
                                                out_mask=~self.masks)
            out[label] = (scores, attacks.auc(scores, self.labels), attacks.tpr_at_fpr(scores, self.labels, 0.01))
        return out


def compare(kind: str, repeats: int) -> dict:
    case = Case(kind)
    with threads(1):
        indicator_seconds = median_seconds(case.indicator, repeats=max(3, repeats))
        lira_seconds = median_seconds(case.lira, repeats=repeats)
        table = case.indicator().set_index("quantizer")
        lira = case.lira()
    labels = list(case.quantizers)
    metrics = {label: attacks.attack_metrics(lira[label][0], case.labels, n_bootstrap=200, seed=SEED)
               for label in labels}
    score = np.array([table.loc[label, "r_soft_with_scale"] for label in labels])
    auc = np.array([metrics[label]["auc"] for label in labels])
    result = agreement.ranking_agreement(score, auc, [metrics[label]["auc_low"] for label in labels],
                                        [metrics[label]["auc_high"] for label in labels],
                                        reference_higher_is_private=False).as_dict()
    ratio = lira_seconds / indicator_seconds
    return {
        "model": kind, "parameters": int(sum(p.numel() for p in case.target_module.parameters())),
        "sample_size": N_POOL // 2, "n_shadow": N_SHADOW, "n_quantizers": len(labels),
        "indicator_seconds": indicator_seconds, "lira_seconds": lira_seconds, "ratio": ratio,
        "target_ratio": TARGET, "met": ratio >= TARGET,
        "ranking": result,
        "per_quantizer": [{"quantizer": label, "r_soft_with_scale": float(table.loc[label, "r_soft_with_scale"]),
                           "r_min_with_scale": float(table.loc[label, "r_min_with_scale"]),
                           "lira_auc": metrics[label]["auc"], "lira_auc_low": metrics[label]["auc_low"],
                           "lira_auc_high": metrics[label]["auc_high"],
                           "lira_tpr_at_1pct_fpr": metrics[label]["tpr_at_1pct_fpr"]} for label in labels],
    }


def main(repeats: int = 3):
    rows = []
    for kind in ("logistic", "mlp"):
        rows.append(compare(kind, repeats))
        print({k: v for k, v in rows[-1].items() if k != "per_quantizer"}, flush=True)
    return save("indicator_vs_lira", {
        "what": f"indicator (sandwich + margins, {len(rows[0]['per_quantizer'])} quantizers) vs online LiRA with "
                f"{N_SHADOW} shadow models, Gaussian mixture d={DIM}, n={N_POOL // 2}; torch on 1 thread",
        "rows": rows, "target_ratio": TARGET, "met": all(r["met"] for r in rows),
    })


if __name__ == "__main__":
    main()
