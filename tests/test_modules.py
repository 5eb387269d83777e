"""mislib.modules: the nn.Modules the library trains and audits, and parameters as dicts and flat vectors."""

from __future__ import annotations

import pytest
import torch

from mislib.modules import (LinearRegression, LogisticRegression, MLPHead, coefficients_to_params, flatten_params,
                            load_params, mlp_forward, params_of, params_to_coefficients, stack_params,
                            unflatten_params)


def _heads(count: int, seed: int = 0) -> list[MLPHead]:
    torch.manual_seed(seed)
    return [MLPHead(3, 4, n_outputs=2) for _ in range(count)]


def test_mlp_forward_is_each_module_batched():
    heads = _heads(3)
    X = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    batch = stack_params(heads)
    shared = mlp_forward(batch, X)
    per_model = mlp_forward(batch, X.expand(3, -1, -1).contiguous())
    assert shared.shape == (3, 5, 2)
    for b, head in enumerate(heads):
        torch.testing.assert_close(shared[b], head(X), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(per_model[b], head(X), rtol=1e-12, atol=1e-12)
    relu = mlp_forward(batch, X, activation="relu")
    hidden = torch.relu(X @ heads[0].hidden.weight.T + heads[0].hidden.bias)
    torch.testing.assert_close(relu[0], heads[0].output(hidden), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="unknown activation 'sigmoid'"):
        mlp_forward(batch, X, activation="sigmoid")


def test_linear_modules_from_coefficients_round_trip():
    coef = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)  # two weights, intercept last
    model = LogisticRegression.from_coefficients(coef)
    X = torch.tensor([[1.0, 1.0], [0.0, 2.0]], dtype=torch.float64)
    assert model(X).tolist() == [1.5, 0.0]
    assert torch.equal(model.coefficients(), coef)
    no_intercept = LinearRegression.from_coefficients(coef, fit_intercept=False)
    assert no_intercept(torch.ones(1, 3, dtype=torch.float64)).tolist() == [1.5]
    assert (model.default_loss, no_intercept.default_loss) == ("logistic", "squared")
    batched = torch.stack([coef, 2 * coef])
    assert torch.equal(params_to_coefficients(coefficients_to_params(batched)), batched)
    with pytest.raises(ValueError, match="coef must be one model's vector"):
        LogisticRegression.from_coefficients(batched)
    with pytest.raises(ValueError, match="coef is too short"):
        LogisticRegression.from_coefficients(torch.ones(1, dtype=torch.float64))


def test_mlp_head_losses_and_from_params():
    assert MLPHead(2, 3).default_loss == "logistic"
    assert MLPHead(2, 3, n_outputs=4).default_loss == "cross_entropy"
    assert MLPHead(2, 3, task="regression").default_loss == "squared"
    heads = _heads(2, seed=3)
    second = MLPHead.from_params(stack_params(heads), index=1)
    X = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(second(X), heads[1](X), rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        MLPHead(2, 3, task="ranking")


def test_parameters_as_dicts_and_flat_vectors():
    head = _heads(1)[0]
    params = params_of(head)
    flat = flatten_params(params)
    assert flat.shape == (3 * 4 + 4 + 4 * 2 + 2,)
    back = unflatten_params(flat, params)
    assert all(torch.equal(back[name], value) for name, value in params.items())
    moved = load_params(head, unflatten_params(flat + 1, params))
    assert torch.equal(flatten_params(params_of(moved)), flat + 1)
    assert torch.equal(flatten_params(params_of(head)), flat)  # the original is copied, not changed
    batch = stack_params([head, moved])
    assert torch.equal(flatten_params(batch, batch_dims=1)[1], flat + 1)
    with pytest.raises(ValueError, match="flat vector has 3 entries, the parameters need 26"):
        unflatten_params(torch.ones(3), params)
    with pytest.raises(ValueError, match="missing \\['output.bias'\\]"):
        load_params(head, {k: v for k, v in params.items() if k != "output.bias"})
    with pytest.raises(ValueError, match="params\\['hidden.bias'\\] has shape \\(5,\\)"):
        load_params(head, {**params, "hidden.bias": torch.zeros(5, dtype=torch.float64)})
    with pytest.raises(ValueError, match="at least one module"):
        stack_params([])
