"""The models the library trains and audits, as ``torch.nn.Module``s, and their parameters as dicts and flat vectors.

``LogisticRegression`` / ``LinearRegression`` (logits or predictions ``x . coef + intercept``) and ``MLPHead`` (one
hidden layer) carry a ``default_loss``; ``mlp_forward`` evaluates a batch of MLPs at once. Parameters move between
modules, dicts ``{name: tensor}`` (batched along a leading axis) and flat vectors with ``params_of``,
``stack_params``, ``load_params``, ``flatten_params`` and ``unflatten_params``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from mislib.infra.checks import check_choice, check_int, check_tensor

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "gelu": nn.functional.gelu}
MLP_TASKS = ("classification", "regression")


def mlp_forward(params: dict, X: torch.Tensor, activation=torch.tanh) -> torch.Tensor:
    """Batched MLP outputs [B, n, k] for batched params (``X`` [n, d] shared or [B, n, d])."""
    if isinstance(activation, str):
        activation = ACTIVATIONS[check_choice("activation", activation, ACTIVATIONS)]
    W1, b1, W2, b2 = (params[k] for k in ("hidden.weight", "hidden.bias", "output.weight", "output.bias"))
    B, h, d = W1.shape
    if X.dim() == 2:
        # Shared data: one GEMM [n, d] x [d, B*h] instead of B small ones.
        pre = (X @ W1.reshape(B * h, d).T).reshape(X.shape[0], B, h).transpose(0, 1)
    else:
        pre = torch.bmm(X, W1.transpose(1, 2))
    H = activation(pre + b1.unsqueeze(1))
    return torch.baddbmm(b2.unsqueeze(1), H, W2.transpose(1, 2))


# ------------------------------------------------------------------------------------------------- modules

class LogisticRegression(nn.Module):
    """``f(x) = x . coef + intercept`` returning logits [n]; default loss "logistic"."""

    default_loss = "logistic"

    def __init__(self, n_features: int, fit_intercept: bool = True, dtype=torch.float64):
        super().__init__()
        self.n_features = check_int("n_features", n_features, minimum=1)
        self.fit_intercept = bool(fit_intercept)
        self.linear = nn.Linear(self.n_features, 1, bias=self.fit_intercept, dtype=dtype)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.linear(X).squeeze(-1)

    @classmethod
    def from_coefficients(cls, coef: torch.Tensor, fit_intercept: bool = True):
        """Module from a coefficient vector in the trainers' layout ([d + 1], intercept last; [d] without)."""
        coef = check_tensor("coef", coef)
        if coef.dim() != 1:
            raise ValueError(f"coef must be one model's vector [d(+1)], got shape {tuple(coef.shape)}; "
                             "index the batch first")
        d = coef.numel() - int(bool(fit_intercept))
        if d < 1:
            raise ValueError("coef is too short for the requested intercept")
        module = cls(d, fit_intercept, dtype=coef.dtype).to(coef.device)
        with torch.no_grad():
            for name, value in coefficients_to_params(coef, fit_intercept).items():
                module.get_parameter(name).copy_(value)
        return module

    def coefficients(self) -> torch.Tensor:
        """The trainers' layout: [d + 1] (intercept last) or [d]."""
        return params_to_coefficients(dict(self.named_parameters()))


class LinearRegression(LogisticRegression):
    """``f(x) = x . coef + intercept`` returning predictions [n]; default loss "squared" ((y - f)^2 / 2)."""

    default_loss = "squared"


class MLPHead(nn.Module):
    """One hidden layer: ``output(act(hidden(x)))``; [n] when there is one output, else [n, n_outputs].

    Parameter names match ``fit_mlp_head``'s dict: hidden.weight, hidden.bias, output.weight, output.bias.
    """

    def __init__(self, n_features: int, hidden: int, n_outputs: int = 1, activation: str = "tanh",
                 task: str = "classification", dtype=torch.float64):
        super().__init__()
        check_int("n_features", n_features, minimum=1)
        check_int("hidden", hidden, minimum=1)
        self.n_outputs = check_int("n_outputs", n_outputs, minimum=1)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.task = check_choice("task", task, MLP_TASKS)
        self.hidden = nn.Linear(n_features, hidden, dtype=dtype)
        self.output = nn.Linear(hidden, n_outputs, dtype=dtype)

    @property
    def default_loss(self) -> str:
        if self.task == "regression":
            return "squared"
        return "logistic" if self.n_outputs == 1 else "cross_entropy"

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        out = self.output(ACTIVATIONS[self.activation](self.hidden(X)))
        return out.squeeze(-1) if self.n_outputs == 1 else out

    @classmethod
    def from_params(cls, params: dict, activation: str = "tanh", task: str = "classification", index=None):
        """Module from ``fit_mlp_head``'s dict (``index`` picks one model of a batch)."""
        W1, W2 = params["hidden.weight"], params["output.weight"]
        if index is not None:
            W1, W2 = W1[index], W2[index]
        module = cls(W1.shape[-1], W1.shape[-2], W2.shape[-2], activation, task, dtype=W1.dtype).to(W1.device)
        return load_params(module, params, index=index)


# ------------------------------------------------------------------------------- parameters <-> modules

def coefficients_to_params(coef: torch.Tensor, fit_intercept: bool = True) -> dict:
    """[..., d(+1)] coefficients (intercept last) -> {"linear.weight": [..., 1, d], "linear.bias": [..., 1]}."""
    if fit_intercept:
        return {"linear.weight": coef[..., :-1].unsqueeze(-2), "linear.bias": coef[..., -1:]}
    return {"linear.weight": coef.unsqueeze(-2)}


def params_to_coefficients(params: dict) -> torch.Tensor:
    """Inverse of ``coefficients_to_params`` (works with or without a leading batch dimension)."""
    weight = params["linear.weight"].squeeze(-2)
    if "linear.bias" in params:
        return torch.cat([weight, params["linear.bias"]], dim=-1)
    return weight


def params_of(module: nn.Module) -> dict:
    """Detached copy of a module's parameters, named as ``named_parameters()``."""
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def stack_params(modules) -> dict:
    """Batched dict [B, ...] from a list of modules of the same architecture."""
    modules = list(modules)
    if not modules:
        raise ValueError("stack_params needs at least one module")
    names = [name for name, _ in modules[0].named_parameters()]
    return {name: torch.stack([m.get_parameter(name).detach() for m in modules]) for name in names}


def load_params(module: nn.Module, params: dict, index=None, copy_module: bool = True) -> nn.Module:
    """A copy of ``module`` with its parameters replaced by ``params`` (``params[name][index]`` if batched)."""
    target = copy.deepcopy(module) if copy_module else module
    own = dict(target.named_parameters())
    missing = set(own) - set(params)
    extra = set(params) - set(own)
    if missing or extra:
        raise ValueError(f"params do not match the module: missing {sorted(missing)}, unexpected {sorted(extra)}")
    with torch.no_grad():
        for name, p in own.items():
            value = params[name] if index is None else params[name][index]
            if value.shape != p.shape:
                raise ValueError(f"params[{name!r}] has shape {tuple(value.shape)}, the module needs "
                                 f"{tuple(p.shape)}")
            p.copy_(value)
    return target


def flatten_params(params: dict, batch_dims: int = 0) -> torch.Tensor:
    """Concatenate named tensors into one vector (per model when ``batch_dims=1``), in dict order."""
    return torch.cat([v.reshape(v.shape[:batch_dims] + (-1,)) for v in params.values()], dim=-1)


def unflatten_params(flat: torch.Tensor, like: dict) -> dict:
    """Split a vector [..., P] back into tensors shaped like ``like``'s values (leading dims kept)."""
    out, start = {}, 0
    lead = flat.shape[:-1]
    total = sum(v.numel() for v in like.values())
    if flat.shape[-1] != total:
        raise ValueError(f"flat vector has {flat.shape[-1]} entries, the parameters need {total}")
    for name, value in like.items():
        out[name] = flat[..., start:start + value.numel()].reshape(lead + tuple(value.shape))
        start += value.numel()
    return out
