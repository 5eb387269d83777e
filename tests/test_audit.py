"""The shared privacy audit: sane values on a tiny problem, the influence and the MLP polish against direct
computations, the quantizer catalogue, the deprecated names, and clear errors for bad inputs."""

import warnings

import pandas as pd
import pytest
import torch

from mislib.evaluation import audit, trainers as models
from mislib import quantizers as Q
from mislib.evaluation import quantizer_specs
from mislib.evaluation.synthetic_data import GaussianMixture
from mislib.objective import Objective, tanh_mlp_derivatives


@pytest.fixture(scope="module")
def tiny():
    """An over-fitted logistic regression (16 features, 32 members) audited with 8 shadows."""
    law = GaussianMixture(dim=16, k_modes=2, separation=2.0)
    X, y = law.sample(64, seed=1)
    Xt, yt = law.sample(400, seed=2)
    quantizers = {"identity": Q.get("identity"), "coarse public grid": Q.get("fixed_grid", step=100.0),
                  "uniform 4-bit": Q.get("uniform", bits=4), "stochastic rounding": Q.get("stochastic_rounding",
                                                                                           step=0.05)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = audit.run_audit(X, y, Xt, yt, quantizers, model=audit.ModelSpec(kind="logistic", ridge=1e-4),
                                n_shadow=8, seed=3, n_bootstrap=50, indicator_bootstrap=4)
    return table, (X, y, Xt, yt, quantizers)


def _value(table, quantizer, method, measurement):
    row = table[(table.quantizer == quantizer) & (table.method == method) & (table.measurement == measurement)]
    assert len(row) == 1, (quantizer, method, measurement, len(row))
    return row.iloc[0]


def test_table_is_tidy_and_complete(tiny):
    table, _ = tiny
    assert list(table.columns) == list(audit.COLUMNS)
    assert set(table.sample_size) == {32} and set(table.seed) == {3} and set(table.model) == {"logistic"}
    keys = ["quantizer", "method", "measurement"]
    assert not table.duplicated(keys).any()
    for q in ("identity", "coarse public grid", "uniform 4-bit"):
        methods = set(table[table.quantizer == q].method)
        assert set(audit.ATTACKS) | {"best_attack", "indicator", "test", "quantizer", "cost"} <= methods
    # stochastic rounding has no cells: no white-box attack
    sr = set(table[table.quantizer == "stochastic rounding"].method)
    assert "whitebox" not in sr and "lira_online" in sr
    assert _value(table, "uniform 4-bit", "cost", "shadow_model_fits").value == 9
    assert _value(table, "uniform 4-bit", "cost", "indicator_model_fits").value == 1
    assert _value(table, "(all)", "cost", "indicator_interval_model_fits").value == 4
    total = _value(table, "(all)", "cost", "shadow_audit_total_seconds").value
    assert total >= _value(table, "uniform 4-bit", "cost", "shadow_audit_seconds").value > 0


def test_identity_release_of_an_overfit_model_leaks(tiny):
    table, _ = tiny
    lira = _value(table, "identity", "lira_online", "auc")
    assert lira.value > 0.6 and lira.value_low > 0.5          # above a coin, beyond its interval
    assert _value(table, "identity", "best_attack", "auc").value >= _value(table, "identity", "lira_online",
                                                                              "auc").value
    # RMIA with 8 reference models: beyond a coin too; offline a is a grid value
    assert _value(table, "identity", "rmia_online", "auc").value > 0.6
    assert _value(table, "identity", "rmia_offline", "offline_a").value in [k / 10 for k in range(11)]
    # no margins: every coordinate is at risk, r_min = 0 and the ranking score is 0 (no quantization)
    assert _value(table, "identity", "indicator", "r_min_with_scale").value == 0
    assert _value(table, "identity", "indicator", "ranking_score").value == 0
    assert _value(table, "identity", "test", "accuracy").value > 0.8


def test_coarse_public_grid_hides_membership(tiny):
    table, _ = tiny
    # step 100: every weight rounds to 0, every model releases the same thing
    for attack in ("lira_online", "lira_offline", "rmia_online", "rmia_offline", "loss_threshold"):
        assert _value(table, "coarse public grid", attack, "auc").value == pytest.approx(0.5)
    assert _value(table, "coarse public grid", "indicator", "ranking_score").value > 0
    assert abs(_value(table, "coarse public grid", "whitebox", "auc").value - 0.5) < 0.1
    r = _value(table, "coarse public grid", "indicator", "r_min_with_scale")
    assert r.value > 1.0 and r.value_low > 0.5
    assert _value(table, "coarse public grid", "test", "accuracy").value == pytest.approx(0.5, abs=0.1)


def test_same_seed_same_numbers(tiny):
    table, (X, y, Xt, yt, quantizers) = tiny
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = audit.run_audit(X, y, Xt, yt, quantizers, model=audit.ModelSpec(kind="logistic", ridge=1e-4),
                                n_shadow=8, seed=3, n_bootstrap=50, indicator_bootstrap=4)
    keep = table.method != "cost"
    pd.testing.assert_frame_equal(table[keep].reset_index(drop=True), again[again.method != "cost"]
                                  .reset_index(drop=True))


def test_shadow_masks_are_balanced():
    masks = audit.shadow_masks(10, 6, seed=0)
    assert masks.shape == (6, 10)
    assert (masks.sum(0) == 3).all() and (masks.sum(1) == 5).all()
    assert (masks[0] == ~masks[1]).all()


def test_influence_matches_a_refit():
    law = GaussianMixture(dim=3, k_modes=2, separation=1.0)
    X, y = law.sample(400, seed=0)
    ridge = 1e-2
    module = models.LogisticRegression.from_coefficients(models.fit_logistic(X, y, ridge))
    Xn, yn = law.sample(3, seed=1)
    shifts = audit.insertion_influence(module, X, y, Xn, yn, "logistic", ridge=ridge)
    base = models.fit_logistic(X, y, ridge)
    for j in range(3):
        refit = models.fit_logistic(torch.cat([X, Xn[j:j + 1]]), torch.cat([y, yn[j:j + 1]]), ridge)
        actual = refit - base
        # first order in 1/n: relative error of a few percent (n / (n + 1) and the curvature term)
        assert torch.allclose(shifts[j], actual, rtol=0.05, atol=0.05 * float(actual.abs().max()))


def test_mlp_derivatives_and_polish():
    law = GaussianMixture(dim=5, k_modes=4, separation=3.0)
    X, y = law.sample(80, seed=0)
    weights = torch.ones(3, 80, dtype=torch.float64)
    weights[1, :40] = 0
    weights[2, ::3] = 2
    params = models.fit_mlp_head(X, y, 2, ridge=1e-2, n_iter=200, sample_weight=weights)
    polished = audit.polish_mlp(params, X, y, weights, ridge=1e-2)
    w = weights / weights.sum(1, keepdim=True)
    _, g, H, _ = tanh_mlp_derivatives(polished, X, y, w, "classification", 1e-2)
    assert float(g.abs().max()) < 1e-8
    assert bool((torch.linalg.eigvalsh(H)[:, 0] > 0).all())
    # the analytic Hessian equals torch.func's, up to the order of the parameters
    module = models.MLPHead.from_params(polished, index=2)
    problem = Objective(module, X, y, "logistic", 1e-2, weights[2], None, 2 ** 22)
    H_ref = problem.hessian(problem.theta)
    h, d = 2, 5
    order = []                                  # combined layout [W_j, b_j] per unit, v, c -> named order
    for j in range(h):
        order += [j * d + k for k in range(d)] + [h * d + j]
    order += [h * d + h + j for j in range(h)] + [h * d + 2 * h]
    index = torch.tensor(order)
    assert torch.allclose(H[2], H_ref[index][:, index], atol=1e-7)


def test_build_quantizers_resolves_public_steps():
    qs = quantizer_specs.build_quantizers([("a", "fixed_grid", {"step": "public:4", "offset": "public:4*0.5"}),
                                 ("b", "uniform", {"bits": 2, "scale_format": "public", "scale": "public:2"})],
                                public_absmax=3.5)
    assert qs["a"].step == pytest.approx(0.5) and qs["a"].offset == pytest.approx(0.25)
    assert qs["b"].scale == pytest.approx(3.5)
    with pytest.raises(ValueError, match="public scale"):
        quantizer_specs.build_quantizers([("a", "fixed_grid", {"step": "public:4"})])


def test_audit_bad_inputs(tiny):
    _, (X, y, Xt, yt, quantizers) = tiny
    q = {"identity": Q.get("identity")}
    with pytest.raises(ValueError, match="even"):
        audit.run_audit(X, y, Xt, yt, q, n_shadow=7)
    with pytest.raises(ValueError, match="n_shadow must be >= 4"):
        audit.run_audit(X, y, Xt, yt, q, n_shadow=2)
    with pytest.raises(TypeError, match="dict"):
        audit.run_audit(X, y, Xt, yt, "identity")
    with pytest.raises(TypeError, match="Quantizer"):
        audit.run_audit(X, y, Xt, yt, {"bad": "identity"})
    with pytest.raises(ValueError, match="features"):
        audit.run_audit(X, y, Xt[:, :3], yt, q)
    with pytest.raises(ValueError, match="one target per row"):
        audit.run_audit(X, y[:-1], Xt, yt, q)
    with pytest.raises(ValueError, match="NaN"):
        audit.run_audit(torch.full_like(X, float("nan")), y, Xt, yt, q)
    with pytest.raises(ValueError, match="binary"):
        audit.run_audit(X, y + (y == 1).double(), Xt, yt, q)
    with pytest.raises(ValueError, match="class indices"):
        audit.run_audit(X, y + 0.5, Xt, yt, q)
    with pytest.raises(ValueError, match="use model 'linear'"):
        audit.run_audit(X, y, Xt, yt, q, model="logistic", task="regression")
    with pytest.raises(ValueError, match="unknown model"):
        audit.run_audit(X, y, Xt, yt, q, model="forest")
    with pytest.raises(ValueError, match="disagrees"):
        audit.run_audit(X, y, Xt, yt, q, model=audit.ModelSpec(kind="linear", task="regression"),
                    task="classification")
    with pytest.raises(ValueError, match="at least 8"):
        audit.run_audit(X[:6], y[:6], Xt, yt, q)


def test_the_catalogue_serves_both_studies():
    from mislib.studies import molecular, synthetic_ranking

    labels = [spec[0] for spec in quantizer_specs.QUANTIZER_SPECS]
    assert len(labels) == len(set(labels)) == 17
    assert synthetic_ranking.STUDY_QUANTIZERS == quantizer_specs.QUANTIZER_SPECS
    assert all(spec in quantizer_specs.QUANTIZER_SPECS for spec in molecular.STUDY_QUANTIZERS)
    assert [s[0] for s in molecular.STUDY_QUANTIZERS][:3] == ["identity", "uniform 8-bit", "uniform 4-bit"]
    assert quantizer_specs.select_specs(["sign"]) == (("sign", "sign", {}),)
    with pytest.raises(ValueError, match="not in the catalogue"):
        quantizer_specs.select_specs(["uniform 5-bit"])


def test_deprecated_names_warn_and_give_the_same_numbers(tiny):
    table, (X, y, Xt, yt, quantizers) = tiny
    with pytest.warns(DeprecationWarning, match="run_audit"):
        again = audit.audit(X, y, Xt, yt, {"identity": quantizers["identity"]}, n_shadow=4, seed=3,
                            n_bootstrap=0, attacks_on=False)
    assert _value(again, "identity", "indicator", "r_soft").value == pytest.approx(
        _value(audit.run_audit(X, y, Xt, yt, {"identity": quantizers["identity"]}, n_shadow=4, seed=3,
                               n_bootstrap=0, attacks_on=False), "identity", "indicator", "r_soft").value, rel=1e-12)
    module = models.LogisticRegression.from_coefficients(models.fit_logistic(X, y, 1e-2))
    with pytest.warns(DeprecationWarning, match="insertion_influence"):
        old = audit.influence_shifts(module, X, y, Xt[:2], yt[:2], "logistic", ridge=1e-2)
    assert torch.equal(old, audit.insertion_influence(module, X, y, Xt[:2], yt[:2], "logistic", ridge=1e-2))


# ------------------------------------------------------------------------------ baselines and many targets

def test_baselines_against_direct_computations(tiny):
    """The baseline rows (issue 16): identity gives zeros, the performance drop is the AUROC difference, a grid
    that zeroes every weight raises the training loss, and the test metric's standard error has the size of a
    400-example AUROC's."""
    table, (X, y, Xt, yt, quantizers) = tiny
    for measurement in ("standardised_distortion", "train_loss_increase", "test_performance_drop"):
        assert _value(table, "identity", "baseline", measurement).value == pytest.approx(0.0, abs=1e-12)
    coarse = _value(table, "coarse public grid", "baseline", "test_performance_drop").value
    auroc = {q: _value(table, q, "test", "auroc").value for q in ("identity", "coarse public grid")}
    assert coarse == pytest.approx(auroc["identity"] - auroc["coarse public grid"], abs=1e-12)
    # a grid of step 100 sends every weight to 0: the loss rises to log 2 on every example
    assert _value(table, "coarse public grid", "baseline", "train_loss_increase").value > 0
    assert _value(table, "uniform 4-bit", "baseline", "standardised_distortion").value > 0
    se = _value(table, "uniform 4-bit", "baseline", "test_performance_se").value
    assert 0.0 < se < 0.1       # 400 test examples: the AUROC's standard error is a few hundredths


def test_every_model_as_target_keeps_target_zero_and_audits_the_others():
    """n_targets > 1: the rows of target 0 equal a plain audit's; the shadows as targets have their own members
    (a different half), a balanced game and their own indicator."""
    law = GaussianMixture(dim=8, k_modes=2, separation=2.0)
    X, y = law.sample(60, seed=4)
    Xt, yt = law.sample(200, seed=5)
    quantizers = {"identity": Q.get("identity"), "uniform 2-bit": Q.get("uniform", bits=2)}
    spec = audit.ModelSpec(kind="logistic", ridge=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        many = audit.run_audit(X, y, Xt, yt, quantizers, model=spec, n_shadow=6, seed=1, n_bootstrap=20, n_targets=4)
        one = audit.run_audit(X, y, Xt, yt, quantizers, model=spec, n_shadow=6, seed=1, n_bootstrap=20)
    assert sorted(many.target.unique()) == [0, 1, 2, 3] and set(one.target) == {0}
    keys = ["quantizer", "method", "measurement"]
    plain = one[one.method != "cost"].set_index(keys)["value"]
    first = many[(many.target == 0) & (many.method != "cost")].set_index(keys)["value"]
    pd.testing.assert_series_equal(first.sort_index(), plain.sort_index())
    scores = many[(many.method == "indicator") & (many.measurement == "ranking_score")
                  & (many.quantizer == "uniform 2-bit")]
    assert scores["value"].nunique() == 4      # four different trained models
    assert set(many.sample_size) == {30}       # every shadow trains on a half of the pool, like the target


def test_an_audit_split_into_targets_with_a_cached_batch_gives_the_same_rows(tmp_path):
    """``targets=`` audits a piece of the models, ``trained=`` caches the batch: the pieces, trained once, give
    the rows of the whole audit (cost rows included, the training seconds read back); a corrupt cache file is
    removed and the batch trained again."""
    law = GaussianMixture(dim=6, k_modes=2, separation=2.0)
    X, y = law.sample(60, seed=4)
    Xt, yt = law.sample(100, seed=5)
    quantizers = {"identity": Q.get("identity"), "uniform 2-bit": Q.get("uniform", bits=2)}
    kwargs = dict(model=audit.ModelSpec(kind="logistic", ridge=1e-3), n_shadow=6, seed=1, n_bootstrap=20,
                  n_targets=3)
    path = tmp_path / "batch.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = audit.run_audit(X, y, Xt, yt, quantizers, trained=path, **kwargs)
        stored = path.read_bytes()
        pieces = pd.concat([audit.run_audit(X, y, Xt, yt, quantizers, trained=path, targets=[t], **kwargs)
                            for t in (2, 0, 1)])
        assert path.read_bytes() == stored                 # read back, not trained again
        path.write_bytes(stored[:-8] + b"corrupt!")
        again = audit.run_audit(X, y, Xt, yt, quantizers, trained=path, targets=[1], **kwargs)
    keys = ["target", "quantizer", "method", "measurement"]
    timed = whole.measurement.str.endswith("seconds") & (whole.measurement != "training_seconds")
    left = whole[~timed].set_index(keys)["value"].sort_index()
    right = pieces[~pieces.measurement.str.endswith("seconds") | (pieces.measurement == "training_seconds")]
    pd.testing.assert_series_equal(right.set_index(keys)["value"].sort_index(), left)
    recomputed = again[again.method != "cost"].set_index(keys)["value"].sort_index()
    pd.testing.assert_series_equal(recomputed, left.loc[recomputed.index])
    with pytest.raises(ValueError, match="targets must name"):
        audit.run_audit(X, y, Xt, yt, quantizers, targets=[3], **kwargs)


def test_many_targets_need_enough_shadows():
    law = GaussianMixture(dim=4, k_modes=2, separation=2.0)
    X, y = law.sample(40, seed=1)
    q = {"identity": Q.get("identity")}
    with pytest.raises(ValueError, match="n_shadow >= 6"):
        audit.run_audit(X, y, X, y, q, n_shadow=4, n_targets=2)
    with pytest.raises(ValueError, match="more than the 7 trained models"):
        audit.run_audit(X, y, X, y, q, n_shadow=6, n_targets=8)
    with pytest.raises(ValueError, match="attacks_on"):
        audit.run_audit(X, y, X, y, q, n_shadow=6, n_targets=2, attacks_on=False)


def test_indicator_of_model_with_given_standard_errors_is_the_same_table():
    """The audit computes the sandwich once and passes it on (``stderr=``): same indicator to the bit."""
    from mislib import indicator
    from mislib.modules import LogisticRegression

    g = torch.Generator().manual_seed(0)
    X = torch.randn(120, 3, generator=g, dtype=torch.float64)
    y = (torch.rand(120, generator=g, dtype=torch.float64) < torch.sigmoid(2 * X[:, 0])).double()
    model = LogisticRegression(3)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=200, tolerance_grad=1e-12)

    def closure():
        opt.zero_grad()
        f = model(X)
        loss = (torch.nn.functional.softplus(f) - y * f).mean() + 0.5e-2 * (model.linear.weight ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    qs = {"grid": Q.get("fixed_grid", step=0.25), "uniform 3-bit": Q.get("uniform", bits=3)}
    se = indicator.standard_errors(model, X, y, "logistic", ridge=1e-2)
    own = indicator.indicator_of_model(model, X, y, "logistic", qs, ridge=1e-2)
    given = indicator.indicator_of_model(model, X, y, "logistic", qs, ridge=1e-2, stderr=se)
    assert set(given.standard_errors) == {"given"} and own.standard_errors[0].startswith("sandwich")
    pd.testing.assert_frame_equal(given[list(audit.INDICATOR_MEASUREMENTS)], own[list(audit.INDICATOR_MEASUREMENTS)],
                                  check_exact=True)
    assert given.ranking_score.gt(0).all()
    wider = indicator.indicator_of_model(model, X, y, "logistic", qs, ridge=1e-2,
                                         stderr={k: 2 * v for k, v in se.items()})
    assert (wider.r_min.to_numpy() < own.r_min.to_numpy()).all()     # used as given: twice the errors, lower r
    with pytest.raises(ValueError, match="same structure"):
        indicator.indicator_of_model(model, X, y, "logistic", qs, ridge=1e-2,
                                     stderr={"linear.weight": se["linear.weight"]})


@pytest.mark.parametrize("task, shape", [("classification", (50,)), ("classification", (50, 3)),
                                         ("regression", (50,))])
def test_primary_performance_is_the_primary_entry_of_performance(task, shape):
    from mislib.evaluation import audit_utility

    g = torch.Generator().manual_seed(1)
    outputs = torch.randn(*shape, generator=g, dtype=torch.float64)
    noisy = outputs + 0.7 * torch.randn(*shape, generator=g, dtype=torch.float64)
    if task == "regression":
        y = noisy
    else:
        y = (noisy > 0).double() if len(shape) == 1 else noisy.argmax(-1).double()
    arch = audit.Architecture(audit.ModelSpec(kind="mlp", task=task), 4, None if task == "regression"
                              else (shape[-1] if len(shape) == 2 else 2), "cpu")
    primary = audit_utility.primary_performance(arch, outputs, y)
    assert primary == audit_utility.performance(arch, outputs, y)[audit.PRIMARY_METRIC[task]]
    assert 0.6 < primary < 1.0      # informative but noisy outputs: AUROC (or R^2 about 1 / (1 + 0.49))
