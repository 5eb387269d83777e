"""The training objective: the analytic batched tanh-MLP derivatives (what the audit's Newton polish uses) equal
Objective's autodiff."""

import pytest
import torch

from mislib.modules import MLPHead
from mislib.objective import Objective, tanh_mlp_derivatives


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_batched_tanh_mlp_derivatives_equal_the_objective(task):
    g = torch.Generator().manual_seed(0)
    B, N, d, h, ridge = 3, 40, 4, 5, 1e-2
    X = torch.randn(N, d, generator=g, dtype=torch.float64)
    y = (torch.rand(N, generator=g, dtype=torch.float64) < 0.5).double() if task == "classification" \
        else torch.randn(N, generator=g, dtype=torch.float64)
    params = {"hidden.weight": torch.randn(B, h, d, generator=g, dtype=torch.float64),
              "hidden.bias": torch.randn(B, h, generator=g, dtype=torch.float64),
              "output.weight": torch.randn(B, 1, h, generator=g, dtype=torch.float64),
              "output.bias": torch.randn(B, 1, generator=g, dtype=torch.float64)}
    raw = torch.rand(B, N, generator=g, dtype=torch.float64)
    w = raw / raw.sum(1, keepdim=True)
    ours = tanh_mlp_derivatives(params, X, y, w, task, ridge)
    # the general autodiff path of Objective, model by model (its parameter order is hidden.weight,
    # hidden.bias, output.weight, output.bias: permute the analytic layout [W_j, b_j] per unit, v, c)
    k = d + 1
    order = [j * k + i for j in range(h) for i in range(d)] + [j * k + d for j in range(h)] + \
        list(range(h * k, h * k + h + 1))
    for b in range(B):
        module = MLPHead.from_params(params, activation="tanh", task=task, index=b)
        objective = Objective(module, X, y, "logistic" if task == "classification" else "squared", ridge, w[b])
        H = objective.hessian(objective.theta)
        torch.testing.assert_close(ours[2][b][order][:, order], H, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(ours[1][b][order], objective.gradient(objective.theta), rtol=1e-10, atol=1e-12)
