"""Input validation at the public entry points (issue 8, item 3): a catalogue of bad inputs.

Each row is (call, exception, message pattern). The pattern checks that the message names the argument and says
what is wrong with it (a bare torch or pandas error deep inside would not match). Grouped by the kind of mistake:
shapes, dtypes, NaN and infinity, empty data, impossible bits or sparsity, sample sizes too small, unknown names,
devices, membership labels that are not 0/1, and mistakes of the experiment plumbing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mislib import attacks, indicator, mis
from mislib.evaluation import audit, trainers as models
from mislib.evaluation import synthetic_data as synthetic
from mislib.infra import checks, presets, tables as experiments
from mislib.molecules import embedders
from mislib.molecules import datasets as molecules
from mislib.studies import molecular as molecular_study
from mislib import quantizers as Q

# Small, valid inputs; each case below spoils one thing.
X = torch.randn(20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
y = (torch.arange(20) % 2).to(torch.float64)
THETA = torch.tensor([0.3, -0.2], dtype=torch.float64)
STDERR = torch.tensor([0.1, 0.1], dtype=torch.float64)
W = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
SCORES = np.arange(6.0)
LABELS = np.array([0, 1, 0, 1, 0, 1])
GRID = Q.FixedGrid(0.5)
UNIFORM4 = Q.get("uniform", bits=4)
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when CUDA is absent")


def _with(tensor, index, value):
    out = tensor.clone()
    out[index] = value
    return out


def _model():
    return models.LogisticRegression.from_coefficients(models.fit_logistic(X, y, 0.1))


def _audit(**changes):
    args = dict(X_pool=X, y_pool=y, X_test=X, y_test=y, quantizers={"identity": Q.get("identity")}, n_shadow=4,
                n_bootstrap=0)
    args.update(changes)
    return audit.run_audit(args.pop("X_pool"), args.pop("y_pool"), args.pop("X_test"), args.pop("y_test"),
                       args.pop("quantizers"), **args)


def case(call, error, message, id):
    return pytest.param(call, error, message, id=id)


SHAPES = [
    case(lambda: models.fit_logistic(X[:, 0], y), ValueError, r"X must be \[n, d\].*got shape \(20,\)",
         "fit_logistic: X 1-d"),
    case(lambda: models.fit_logistic(X, y[:5]), ValueError, r"y must be \[n\] or \[B, n\] with n = 20.*\(5,\)",
         "fit_logistic: y shorter than X"),
    case(lambda: models.fit_least_squares(X, y[:5]), ValueError, r"y must be \[n\].*n = 20", "fit_least_squares: y "
         "shorter than X"),
    case(lambda: models.fit_logistic(X, y, sample_weight=torch.ones(3, 20, dtype=torch.float64),
                                     init=torch.zeros(2, 4, dtype=torch.float64)),
         ValueError, r"batch sizes disagree.*sample_weight.*3.*init.*2", "fit_logistic: batch sizes disagree"),
    case(lambda: models.fit_logistic(X, y, init=torch.zeros(5, dtype=torch.float64)), ValueError,
         r"init must be \[4\]", "fit_logistic: init of the wrong length"),
    case(lambda: indicator.indicator_from_estimates(THETA, torch.ones(3, dtype=torch.float64), GRID, 100), ValueError,
         r"stderr has shape \(3,\) but theta has \(2,\)", "indicator.estimate: stderr shape"),
    case(lambda: indicator.indicator_from_estimates({"a": THETA}, {"b": STDERR}, GRID, 100), ValueError,
         r"theta and stderr must have the same structure", "indicator.estimate: different parameter names"),
    case(lambda: indicator.standard_errors(_model(), X, y[:-1], "logistic"), ValueError,
         r"X has 20 samples but y has 19", "indicator.standard_errors: y shorter than X"),
    case(lambda: attacks.auc(SCORES.reshape(2, 3), LABELS), ValueError, r"scores must be a 1-d array.*\(2, 3\)",
         "attacks.auc: scores 2-d"),
    case(lambda: attacks.auc(SCORES, LABELS[:4]), ValueError, r"labels has length 4 but scores has length 6",
         "attacks.auc: labels shorter than scores"),
    case(lambda: attacks.lira_offline_scores(SCORES, np.ones((4, 5))), ValueError,
         r"shadow_out_stats has shape \(4, 5\); it must be \[n_shadow, m\] with m = 6",
         "attacks.lira_offline_scores: shadow statistics of the wrong width"),
    case(lambda: attacks.whitebox_gaussian_scores(np.zeros(3), np.ones(3), np.zeros(3), np.zeros((2, 4)), 1.0),
         ValueError, r"shifts has shape \(2, 4\); it must be \[m, d\] with d = 3",
         "attacks.whitebox_gaussian_scores: shifts shape"),
    case(lambda: attacks.whitebox_gaussian_scores(np.ones(3), np.zeros(3), np.zeros(3), np.zeros((2, 3)), 1.0),
         ValueError, r"cell_low > cell_high", "attacks.whitebox_gaussian_scores: cell upside down"),
    case(lambda: Q.get("uniform", bits=4, per_channel=True, channel_dim=3)(W), ValueError,
         r"channel_dim=3 is out of range for w with 2 dimension", "quantizer: channel_dim out of range"),
    case(lambda: _audit(X_test=X[:, :2]), ValueError, r"X_pool has 3 features but X_test has 2",
         "audit: X_test with other features"),
    case(lambda: _audit(y_pool=y[:10]), ValueError, r"y_pool must be 1-d with one target per row of X \(20\)",
         "audit: y_pool shorter than X_pool"),
]

DTYPES = [
    case(lambda: UNIFORM4(torch.arange(6)), TypeError, r"w must be a floating-point tensor, got dtype torch.int64",
         "quantizer: integer weights"),
    case(lambda: UNIFORM4(np.ones(3)), TypeError, r"w must be a torch.Tensor, got ndarray",
         "quantizer: numpy weights"),
    case(lambda: models.fit_logistic(X, y, dtype=torch.int64), TypeError,
         r"dtype must be a floating torch dtype, got torch.int64", "fit_logistic: integer dtype"),
    case(lambda: models.fit_logistic(X.numpy(), y), TypeError, r"X must be a torch.Tensor, got ndarray",
         "fit_logistic: numpy X"),
    case(lambda: indicator.standard_errors(_model(), X.numpy(), y, "logistic"), TypeError,
         r"X must be a torch.Tensor, got ndarray", "indicator.standard_errors: numpy X"),
    case(lambda: indicator.standard_errors("model", X, y, "logistic"), TypeError,
         r"model must be a torch.nn.Module, got str", "indicator.standard_errors: not a module"),
    case(lambda: indicator.indicator_from_estimates(THETA, STDERR.numpy(), GRID, 100), TypeError,
         r"stderr must be a torch.Tensor or a dict of tensors", "indicator.estimate: numpy stderr"),
    case(lambda: indicator.indicator_from_estimates(THETA, STDERR, "uniform", 100), TypeError,
         r"quantizer must be a mislib.quantizers.Quantizer, got str", "indicator.estimate: quantizer by name"),
    case(lambda: indicator.indicator_from_estimates(THETA, STDERR, GRID, "100"), TypeError,
         r"n must be a number \(the training-set size\), got str", "indicator.estimate: n as a string"),
    case(lambda: attacks.auc(["a", "b"], [0, 1]), TypeError, r"scores must be an array of numbers",
         "attacks.auc: string scores"),
    case(lambda: attacks.lira_offline_scores(SCORES, np.ones((4, 6)), out_mask=np.ones((4, 6))), TypeError,
         r"out_mask must be a boolean array, got dtype float64", "attacks.lira_offline_scores: mask of floats"),
    case(lambda: Q.get("uniform", bits=4.5), TypeError, r"bits must be an integer, got float \(4.5\)",
         "quantizers.get: fractional bits"),
    case(lambda: Q.get("uniform", bits=4, symmetric="yes"), TypeError, r"symmetric must be True or False",
         "quantizers.get: symmetric not a bool"),
    case(lambda: mis.exact_bernoulli_mean(10.5, 0.3), TypeError, r"n must be an integer, got float \(10.5\)",
         "mis.exact_bernoulli_mean: fractional n"),
    case(lambda: mis.exact_gaussian_mean(10, 0.0, 1.0, quantizer=UNIFORM4), TypeError,
         r"quantizer must be None, Identity, FixedGrid, SizeAdaptiveGrid or StochasticRounding.*got Uniform",
         "mis.exact_gaussian_mean: a data-dependent quantizer"),
    case(lambda: _audit(X_pool=X.numpy()), TypeError, r"X_pool must be a torch.Tensor, got ndarray",
         "audit: numpy X_pool"),
    case(lambda: _audit(quantizers={"a": "uniform"}), TypeError,
         r"quantizers\['a'\] must be a mislib.quantizers.Quantizer, got str", "audit: quantizer by name"),
    case(lambda: embedders.get_embedder("ecfp4").embed("CCO"), TypeError,
         r"smiles must be a list of SMILES strings, got a single string", "embedder: one SMILES string"),
]

NOT_FINITE = [
    case(lambda: UNIFORM4(_with(W, (0, 0), float("nan"))), ValueError, r"w contains 1 NaN or infinite entries",
         "quantizer: NaN weight"),
    case(lambda: Q.get("sign")(_with(W, (1, 1), float("inf"))), ValueError, r"w contains 1 NaN or infinite",
         "quantizer: infinite weight"),
    case(lambda: GRID.margins(_with(W, (2, 0), float("-inf"))), ValueError, r"w contains 1 NaN or infinite",
         "quantizer.margins: infinite weight"),
    case(lambda: Q.get("fixed_grid", step=float("nan")), ValueError, r"step must be finite, got nan",
         "quantizers.get: NaN step"),
    case(lambda: mis.exact_gaussian_mean(10, float("nan"), 1.0), ValueError, r"mu must be finite, got nan",
         "mis.exact_gaussian_mean: NaN mu"),
    case(lambda: mis.exact_gaussian_mean(10, float("inf"), 1.0), ValueError, r"mu must be finite, got inf",
         "mis.exact_gaussian_mean: infinite mu"),
    case(lambda: models.fit_logistic(_with(X, (3, 1), float("nan")), y), ValueError,
         r"X contains 1 NaN or infinite entries", "fit_logistic: NaN in X"),
    case(lambda: models.fit_logistic(X, y, ridge=float("nan")), ValueError, r"ridge must be finite, got nan",
         "fit_logistic: NaN ridge"),
    case(lambda: indicator.indicator_from_estimates(_with(THETA, 0, float("nan")), STDERR, GRID, 100), ValueError,
         r"theta contains 1 NaN or infinite entries", "indicator.estimate: NaN parameter"),
    case(lambda: indicator.standard_errors(_model(), _with(X, (0, 0), float("inf")), y, "logistic"), ValueError,
         r"X contains 1 NaN or infinite entries", "indicator.standard_errors: infinite X"),
    case(lambda: attacks.auc(np.r_[np.nan, SCORES[1:]], LABELS), ValueError, r"scores contains 1 NaN entries",
         "attacks.auc: NaN score"),
    case(lambda: _audit(X_pool=_with(X, (5, 2), float("nan"))), ValueError, r"X_pool contains 1 NaN or infinite",
         "audit: NaN in X_pool"),
]

EMPTY = [
    case(lambda: UNIFORM4(torch.empty(0)), ValueError, r"w is empty \(shape \(0,\)\)", "quantizer: empty weights"),
    case(lambda: models.fit_logistic(X[:0], y[:0]), ValueError, r"X is empty \(shape \(0, 3\)\)",
         "fit_logistic: no data"),
    case(lambda: attacks.auc(np.array([]), np.array([])), ValueError, r"scores is empty", "attacks.auc: no scores"),
    case(lambda: indicator.indicator_of_model(_model(), X, y, "logistic", []), ValueError, r"quantizers is empty",
         "indicator.indicator_of_model: no quantizers"),
    case(lambda: _audit(quantizers={}), ValueError, r"quantizers is empty", "audit: no quantizers"),
    case(lambda: embedders.embed_cached([], "ecfp4"), ValueError, r"no molecules to embed",
         "embed_cached: no molecules"),
    case(lambda: embedders.get_embedder("ecfp4").embed(["CCO", ""]), ValueError,
         r"smiles must be non-empty strings; entries \[1\]", "embedder: empty SMILES"),
]

BITS_AND_SPARSITY = [
    case(lambda: Q.get("uniform", bits=0), ValueError, r"bits must be >= 1, got 0", "uniform: 0 bits"),
    case(lambda: Q.get("uniform", bits=17), ValueError, r"bits must be <= 16, got 17", "uniform: 17 bits"),
    case(lambda: Q.get("kmeans", bits=0), ValueError, r"bits must be >= 1, got 0", "kmeans: 0 bits"),
    case(lambda: Q.get("prune_then_quantize", sparsity=0.5, bits=0), ValueError, r"bits must be >= 1, got 0",
         "prune_then_quantize: 0 bits"),
    case(lambda: Q.get("magnitude_pruning", sparsity=1.0), ValueError, r"sparsity must be < 1.0, got 1.0",
         "magnitude_pruning: sparsity 1"),
    case(lambda: Q.get("ternary_sparsity", sparsity=-0.1), ValueError, r"sparsity must be >= 0.0, got -0.1",
         "ternary_sparsity: negative sparsity"),
    case(lambda: Q.get("magnitude_pruning", sparsity="half"), TypeError, r"sparsity must be a real number",
         "magnitude_pruning: sparsity as a word"),
    case(lambda: Q.get("fixed_grid", step=0), ValueError, r"step must be > 0.0, got 0.0", "fixed_grid: step 0"),
    case(lambda: Q.get("size_adaptive", h0=1.0, alpha=0.5), ValueError, r"alpha must be < 0.5, got 0.5",
         "size_adaptive: alpha 1/2"),
    case(lambda: Q.get("uniform", bits=4, symmetric=False, scale_format="public", scale=0.1, zero_point=16),
         ValueError, r"zero_point must be <= 15, got 16", "uniform: zero point off the 4-bit range"),
    case(lambda: Q.get("uniform", bits=4, scale_format="public"), ValueError,
         r"scale_format='public' needs the public scale", "uniform: public scale missing"),
    case(lambda: Q.get("uniform", bits=8, scale_format="float16")(torch.full((3,), 1e7)), ValueError,
         r"overflows or underflows scale_format='float16'", "uniform: scale beyond float16"),
    case(lambda: Q.get("size_adaptive", h0=1.0, alpha=0.25)(W), ValueError,
         r"SizeAdaptiveGrid needs the sample size: pass n=", "size_adaptive: applied without n"),
]

SAMPLE_SIZES = [
    case(lambda: mis.exact_gaussian_mean(0, 0.0, 1.0), ValueError, r"n must be >= 1, got 0",
         "mis.exact_gaussian_mean: n = 0"),
    case(lambda: mis.exact_gaussian_mean(10, 0.0, 0.0), ValueError, r"sigma must be > 0.0, got 0.0",
         "mis.exact_gaussian_mean: sigma = 0"),
    case(lambda: mis.exact_bernoulli_mean(10, 1.0), ValueError, r"p must be < 1.0, got 1.0",
         "mis.exact_bernoulli_mean: p = 1"),
    case(lambda: indicator.indicator_from_estimates(THETA, STDERR, GRID, 1), ValueError, r"n must be >= 2.0, got 1.0",
         "indicator.estimate: n = 1"),
    case(lambda: indicator.standard_errors(_model(), X[:1], y[:1], "logistic"), ValueError,
         r"need at least 2 samples, got 1", "indicator.standard_errors: one sample"),
    case(lambda: indicator.standard_errors(_model(), X, y, "logistic", method="bootstrap", n_bootstrap=1),
         ValueError, r"n_bootstrap must be >= 2, got 1", "indicator.standard_errors: one bootstrap replicate"),
    case(lambda: indicator.indicator_of_model(_model(), X, y, "logistic", [GRID], n_bootstrap_ci=1), ValueError,
         r"n_bootstrap_ci must be 0 \(no intervals\) or >= 2", "indicator.indicator_of_model: one replicate"),
    case(lambda: indicator.indicator_from_estimates(THETA, torch.zeros(2, dtype=torch.float64), GRID, 100), ValueError,
         r"stderr must be > 0 everywhere \(2 entries are not", "indicator.estimate: zero standard errors"),
    case(lambda: attacks.membership_split(1), ValueError, r"n_total must be >= 2, got 1",
         "attacks.membership_split: one example"),
    case(lambda: attacks.lira_online_scores(SCORES, np.ones((1, 6)), np.ones((1, 6))), ValueError,
         r"shadow_in_stats: 6 examples have fewer than two shadow statistics",
         "attacks.lira_online_scores: one shadow model"),
    case(lambda: _audit(X_pool=X[:5], y_pool=y[:5]), ValueError, r"X_pool has 5 examples; the audit needs at "
         r"least 8", "audit: pool of 5"),
    case(lambda: _audit(n_shadow=5), ValueError, r"n_shadow must be even", "audit: odd number of shadows"),
    case(lambda: _audit(n_shadow=2), ValueError, r"n_shadow must be >= 4, got 2", "audit: two shadows"),
    case(lambda: molecular_study.split_molecules(np.zeros(10), "regression"), ValueError,
         r"10 molecules are too few", "split_molecules: 10 molecules"),
    case(lambda: molecules.load("freesolv", n_molecules=0), ValueError, r"n_molecules must be >= 1, got 0",
         "molecules.load: zero molecules"),
    case(lambda: molecules.load("freesolv", n_molecules=10 ** 6), ValueError,
         r"n_molecules=1000000 is more than the \d+ molecules of 'freesolv'", "molecules.load: more than exist"),
    case(lambda: models.fit_logistic(X, y, sample_weight=torch.zeros(20, dtype=torch.float64)), ValueError,
         r"every model needs a positive total sample_weight", "fit_logistic: all-zero weights"),
    case(lambda: models.fit_logistic(X, y, sample_weight=-torch.ones(20, dtype=torch.float64)), ValueError,
         r"sample_weight must be >= 0", "fit_logistic: negative weights"),
    case(lambda: models.fit_least_squares(torch.zeros(20, 3, dtype=torch.float64), y), ValueError,
         r"fit_least_squares: the Hessian of 1 model\(s\) is not positive definite.*use ridge > 0",
         "fit_least_squares: rank-deficient data without a ridge"),
]

UNKNOWN_NAMES = [
    case(lambda: Q.get("banana"), ValueError, r"unknown quantizer 'banana'; available: .*uniform",
         "quantizers.get: unknown name"),
    case(lambda: Q.get(3), TypeError, r"quantizer name must be a string, got int", "quantizers.get: not a name"),
    case(lambda: Q.get("fixed_grid"), TypeError, r"bad parameters for quantizer 'fixed_grid'.*'step'",
         "quantizers.get: missing parameter"),
    case(lambda: Q.get("uniform", bits=4, banana=1), TypeError,
         r"bad parameters for quantizer 'uniform'.*unexpected keyword argument 'banana'",
         "quantizers.get: unknown parameter"),
    case(lambda: Q.get("uniform", bits=4, scale_format="float8"), ValueError,
         r"unknown scale_format 'float8'; choose one of", "uniform: unknown scale format"),
    case(lambda: indicator.standard_errors(_model(), X, y, "hinge"), ValueError,
         r"unknown loss 'hinge'; choose one of", "indicator.standard_errors: unknown loss"),
    case(lambda: indicator.standard_errors(_model(), X, y, "logistic", method="jackknife"), ValueError,
         r"unknown method 'jackknife'", "indicator.standard_errors: unknown method"),
    case(lambda: indicator.standard_errors(_model(), X, y, "logistic", hessian="diag"), ValueError,
         r"unknown hessian 'diag'", "indicator.standard_errors: unknown Hessian mode"),
    case(lambda: indicator.indicator_of_model(torch.nn.Linear(3, 1).double(), X, y, None, [GRID]), ValueError,
         r"loss is None and the model has no default_loss", "indicator.indicator_of_model: no loss"),
    case(lambda: models.fit_mlp_head(X, y, 4, task="ranking"), ValueError, r"unknown task 'ranking'",
         "fit_mlp_head: unknown task"),
    case(lambda: models.fit_mlp_head(X, y, 4, activation="sigmoid"), ValueError, r"unknown activation 'sigmoid'",
         "fit_mlp_head: unknown activation"),
    case(lambda: _audit(model="svm"), ValueError, r"unknown model 'svm'; choose one of", "audit: unknown model"),
    case(lambda: molecules.load("tox21"), ValueError, r"unknown task 'tox21'; choose one of",
         "molecules.load: unknown task"),
    case(lambda: molecules.load("freesolv", n_molecules="some"), ValueError,
         r"n_molecules must be None, 'all' or a positive integer, got 'some'", "molecules.load: unknown size word"),
    case(lambda: embedders.get_embedder("bert"), ValueError, r"unknown embedder 'bert'; choose one of",
         "get_embedder: unknown name"),
    case(lambda: presets.preset_config("fast", smoke={}, paper={}), ValueError, r"unknown preset 'fast'",
         "preset_config: unknown preset"),
    case(lambda: presets.preset_config("smoke", smoke={"a": 1}, paper={"b": 1}), ValueError,
         r"smoke and paper presets name different keys: \['a', 'b'\]", "preset_config: keys differ"),
    case(lambda: molecular_study.run_study({"n_molecules": 10}), ValueError, r"settings: missing \[.*'data_seed'",
         "molecular_study.run_study: settings incomplete"),
]

LABELS_NOT_01 = [
    case(lambda: attacks.auc(SCORES, LABELS * 2), ValueError,
         r"labels must contain only 0 \(non-member\) and 1 \(member\); found \[2\]", "attacks.auc: labels 0/2"),
    case(lambda: attacks.auc(SCORES, LABELS * 2 - 1), ValueError, r"labels must contain only 0.*found \[-1\]",
         "attacks.auc: labels -1/+1"),
    case(lambda: attacks.auc(SCORES, np.ones(6)), ValueError, r"labels has only one class: no non-member",
         "attacks.auc: members only"),
    case(lambda: attacks.attack_metrics(SCORES, np.array([0, 1, 1, 1, 0, 1])), ValueError,
         r"labels are unbalanced \(4 members, 2 non-members\)", "attacks.attack_metrics: unbalanced game"),
    case(lambda: models.fit_logistic(X, 2 * y), ValueError, r"y must contain only 0 and 1",
         "fit_logistic: labels 0/2"),
    case(lambda: models.fit_mlp_head(X, 0.5 * y, 4), ValueError, r"classification needs y to hold class indices",
         "fit_mlp_head: fractional labels"),
    case(lambda: models.fit_mlp_head(X, 3 * y, 4, n_classes=2), ValueError, r"y holds class 3 but n_classes is 2",
         "fit_mlp_head: label beyond n_classes"),
    case(lambda: _audit(y_pool=0.5 * y), ValueError, r"y_pool must hold class indices",
         "audit: fractional labels"),
    case(lambda: _audit(y_pool=torch.ones(20, dtype=torch.float64)), ValueError, r"y_pool holds a single class",
         "audit: one class"),
    case(lambda: attacks.logit_confidence(np.array([0.5, 2.0])), ValueError, r"p_true must lie in \[0, 1\]",
         "attacks.logit_confidence: probability above 1"),
]

RANGES = [
    case(lambda: models.fit_logistic(X, y, ridge=-1.0), ValueError, r"ridge must be >= 0.0, got -1.0",
         "fit_logistic: negative ridge"),
    case(lambda: models.fit_mlp_head(X, y, 0), ValueError, r"hidden must be >= 1, got 0", "fit_mlp_head: no units"),
    case(lambda: models.fit_mlp_head(X, y, 4, lr=0.0), ValueError, r"lr must be > 0.0, got 0.0",
         "fit_mlp_head: zero learning rate"),
    case(lambda: indicator.indicator_of_model(_model(), X, y, "logistic", [GRID], confidence=1.0), ValueError,
         r"confidence must be < 1.0, got 1.0", "indicator.indicator_of_model: confidence 1"),
    case(lambda: attacks.attack_metrics(SCORES, LABELS, confidence=95), ValueError,
         r"confidence must be < 1.0, got 95.0", "attacks.attack_metrics: confidence in percent"),
    case(lambda: attacks.tpr_at_fpr(SCORES, LABELS, 0.0), ValueError, r"fpr must be > 0.0, got 0.0",
         "attacks.tpr_at_fpr: FPR 0"),
    case(lambda: attacks.whitebox_gaussian_scores(np.zeros(3), np.ones(3), np.zeros(3), np.zeros((2, 3)), -1.0),
         ValueError, r"std must be > 0 everywhere", "attacks.whitebox_gaussian_scores: negative std"),
    case(lambda: attacks.membership_split(10, seed=-1), ValueError, r"seed must be >= 0, got -1",
         "attacks.membership_split: negative seed"),
    case(lambda: molecular_study.split_molecules(np.zeros(40), "regression", reference_fraction=0.6,
                                                 test_fraction=0.5),
         ValueError, r"reference_fraction \+ test_fraction must be < 1", "split_molecules: fractions above 1"),
    case(lambda: synthetic.gaussian_mixture(10, 2, k_modes=1), ValueError, r"k_modes \(1\) must be >= n_classes",
         "gaussian_mixture: fewer modes than classes"),
]

DEVICES = [
    pytest.param(lambda: checks.resolve_device("cuda"), RuntimeError,
                 r"device 'cuda' was requested but no CUDA device is available", id="resolve_device: cuda absent",
                 marks=NO_CUDA),
    pytest.param(lambda: models.fit_logistic(X, y, device="cuda"), RuntimeError,
                 r"device 'cuda' was requested but no CUDA device", id="fit_logistic: cuda absent", marks=NO_CUDA),
    pytest.param(lambda: _audit(device="cuda:0"), RuntimeError, r"device 'cuda' was requested but no CUDA device",
                 id="audit: cuda absent", marks=NO_CUDA),
    pytest.param(lambda: synthetic.gaussian_mixture(10, 2, device="cuda"), RuntimeError,
                 r"device 'cuda' was requested but no CUDA device", id="gaussian_mixture: cuda absent",
                 marks=NO_CUDA),
    case(lambda: checks.resolve_device("banana"), ValueError, r"unknown device 'banana'", "resolve_device: banana"),
    case(lambda: checks.resolve_device("mps"), ValueError, r"device 'mps' is not supported", "resolve_device: mps"),
    case(lambda: checks.resolve_device(3), TypeError, r"device must be 'cpu', 'cuda'.*got int",
         "resolve_device: an integer"),
]

LABELS_NOT_01 += [
    case(lambda: indicator.standard_errors(_model(), X, y * 2, "logistic", ridge=0.1), ValueError,
         r"y must contain only 0 and 1 for the 'logistic' loss", "standard_errors: labels 0/2 with logistic loss"),
]
SHAPES += [
    case(lambda: indicator.standard_errors(_model(), X[:, :2], y, "logistic", ridge=0.1), ValueError,
         r"cannot be applied to X of shape \(20, 2\)", "standard_errors: X with too few features"),
]

PLUMBING = [
    case(lambda: experiments.parallel_map(abs, [1, 2], n_jobs=0), ValueError, r"n_jobs == 0",
         "parallel_map: zero workers"),
    case(lambda: experiments.write_table("t", {"a": [1]}, {}), TypeError, r"table must be a pandas DataFrame, got dict",
         "write_table: not a DataFrame"),
    case(lambda: experiments.write_table("../escape", None, {}), ValueError, r"name must be a plain file name",
         "write_table: path in the name"),
    case(lambda: experiments.cached_table("t", {"f": abs}, lambda: None), TypeError,
         r"config must be JSON-serialisable", "cached_table: config not JSON"),
    case(lambda: experiments.cached_grid("g", [], abs), ValueError, r"configs must be a non-empty list",
         "cached_grid: empty grid"),
    case(lambda: experiments.cached_grid("g", [1, 2], abs), TypeError, r"each entry of configs must be a dict",
         "cached_grid: entries not dicts"),
]

CATALOGUE = (SHAPES + DTYPES + NOT_FINITE + EMPTY + BITS_AND_SPARSITY + SAMPLE_SIZES + UNKNOWN_NAMES
             + LABELS_NOT_01 + RANGES + DEVICES + PLUMBING)


@pytest.mark.parametrize("call, error, message", CATALOGUE)
def test_bad_input_is_refused_with_a_message_naming_it(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_catalogue_is_broad():
    """At least 30 distinct bad inputs, over every kind of mistake and every public module listed in the issue."""
    ids = [p.id for p in CATALOGUE]
    assert len(ids) == len(set(ids)) >= 30
    covered = {i.split(":")[0].split(".")[0] for i in ids}
    for entry in ("quantizers", "quantizer", "mis", "indicator", "fit_logistic", "fit_mlp_head", "attacks",
                  "molecules", "get_embedder", "audit", "preset_config", "resolve_device"):
        assert entry in covered, entry


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mixed_devices_are_moved_not_crashed():
    """Inputs on different devices are moved to the device of the model or of the computation (documented
    behaviour): the numbers equal the all-CPU ones instead of a torch device error deep inside."""
    cuda = torch.device("cuda")
    model = _model()
    cpu_se = indicator.standard_errors(model, X, y, "logistic", ridge=0.1)
    mixed_se = indicator.standard_errors(model.to(cuda), X, y, "logistic", ridge=0.1)   # model on GPU, data on CPU
    for name in cpu_se:
        torch.testing.assert_close(mixed_se[name].cpu(), cpu_se[name])
    cpu = indicator.indicator_from_estimates(THETA, STDERR, GRID, 100)
    mixed = indicator.indicator_from_estimates(THETA.to(cuda), STDERR, GRID, 100)                         # theta GPU, stderr CPU
    assert mixed.r_min == pytest.approx(cpu.r_min) and mixed.r_soft == pytest.approx(cpu.r_soft)
    coef = models.fit_logistic(X.to(cuda), y, 0.1, device="cuda")                         # X GPU, y CPU
    torch.testing.assert_close(coef.cpu(), models.fit_logistic(X, y, 0.1))
