"""How private is a quantized release of *your* model? The indicator r_Q^n on any torch.nn.Module.

    python examples/your_own_model.py

The indicator needs the trained model, its training data, the per-sample loss and the ridge used in training:
the model must sit at a minimum of  mean loss + ridge/2 * ||weights||^2  (biases free), as here.
README, section "Use on your own model", explains every column of the table printed.
"""

import torch
from sklearn.datasets import load_breast_cancer

from mislib import quantizers as Q
from mislib.indicator import indicator_of_model

RIDGE = 0.1   # the penalty used in training: the indicator's Hessian includes it


def train(model, X, y, ridge=RIDGE):
    """Full-batch L-BFGS to the minimum of the objective (the indicator assumes a trained model)."""
    optimiser = torch.optim.LBFGS(model.parameters(), max_iter=2000, tolerance_grad=1e-12, tolerance_change=0,
                                  history_size=50, line_search_fn="strong_wolfe")

    def objective():
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(X).squeeze(-1), y)
        weights = [p for name, p in model.named_parameters() if name.endswith("weight")]   # biases not penalised
        loss = loss + ridge / 2 * sum(w.square().sum() for w in weights)
        loss.backward()
        return loss

    optimiser.step(objective)
    return model


def main(seed: int = 0, n_bootstrap_ci: int = 20):
    torch.manual_seed(seed)                                              # the initialisation of the MLP
    features, labels = load_breast_cancer(return_X_y=True)               # 569 tumours, 30 features (offline)
    X = torch.tensor((features - features.mean(0)) / features.std(0))    # standardised, float64
    y = torch.tensor(labels, dtype=torch.float64)
    model = train(torch.nn.Sequential(torch.nn.Linear(30, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double(), X, y)

    quantizers = {
        "no quantization": Q.get("identity"),
        "uniform 8-bit": Q.get("uniform", bits=8),                           # absmax scale published as float32
        "uniform 4-bit": Q.get("uniform", bits=4),
        "uniform 4-bit, pow2 scale": Q.get("uniform", bits=4, scale_format="pow2"),
        "ternary (BitNet b1.58)": Q.get("ternary_absmean"),
        "public grid, step 0.5": Q.get("fixed_grid", step=0.5),              # fixed in advance: nothing data-dependent
    }
    table = indicator_of_model(model, X, y, "logistic", quantizers, ridge=RIDGE, n_bootstrap_ci=n_bootstrap_ci, seed=seed)

    columns = ["quantizer", "scale_channel", "ranking_score", "ranking_score_low", "ranking_score_high",
               "ranking_score_averaged", "expected_exits_with_scale", "delta_estimate", "r_min", "r_min_with_scale"]
    print(f"n = {len(y)} training examples, {sum(p.numel() for p in model.parameters())} parameters")
    print(table[[c for c in columns if c in table]].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return table


if __name__ == "__main__":
    main()
