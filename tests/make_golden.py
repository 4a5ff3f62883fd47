"""Record the statistics of fixed-seed configurations, for the bitwise regression test.

Run once, before a change to the kernels, to freeze what the package computes:
``python -m tests.make_golden`` writes ``tests/data/golden.npz``. ``tests/test_golden.py``
then holds every later version to these numbers, bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import fastgrad as fg

PATH = Path(__file__).parent / "data" / "golden.npz"

MLPS = {
    "mlp_tanh_xavier": fg.MLP(depth=6, width=12, activation="tanh", init="xavier_normal", sigma_b=0.1),
    "mlp_relu_he_probe": fg.MLP(depth=5, width=9, activation="relu", init="he_uniform", loss="probe",
                                input_width=7, output_width=3),
    "mlp_sigmoid_normal": fg.MLP(depth=4, width=8, activation="sigmoid", init="normal", bias_init="constant",
                                 bias_value=0.5),
    "mlp_orthogonal_linear_last": fg.MLP(depth=4, width=10, activation="elu", init="orthogonal", gain=1.2,
                                         last_activation="linear", sigma_b=0.05),
    "mlp_gelu_identity": fg.MLP(depth=3, width=6, activation="gelu", init="identity", output_width=4),
}
RNNS = {
    "rnn_tanh_normal": fg.RNN(steps=7, hidden=10, inputs=3, gain=1.1, sigma_b=0.1),
    "rnn_orthogonal_all": fg.RNN(steps=6, hidden=8, inputs=4, init="orthogonal", loss="all"),
    "rnn_relu_identity_probe": fg.RNN(steps=5, hidden=6, inputs=2, activation="relu", init="identity", gain=0.9,
                                      loss="probe"),
    "rnn_spectral_jacobian": fg.RNN(steps=6, hidden=7, inputs=3, init="spectral", gain=1.05, jacobian=True),
}
CHAINS = {
    "chain_sigmoid": fg.Chain(depth=12),
    "chain_centered": fg.Chain(depth=8, init="constant", value=100.0, bias_init="centered"),
    "chain_tanh_constant_bias": fg.Chain(depth=9, activation="tanh", bias_init="constant", bias_value=0.3),
}


def golden() -> dict[str, np.ndarray]:
    """Every recorded array, keyed ``config/dtype/metric``."""
    out: dict[str, np.ndarray] = {}
    for dtype in ("float64", "float32"):
        for name, spec in {**MLPS, **RNNS}.items():
            res = fg.run(spec, trials=13, batch=3, seed=7, dtype=dtype, threads=2, chunk=5)
            for metric in res.arrays:
                out[f"{name}/{dtype}/{metric}"] = getattr(res, metric)
        for name, spec in CHAINS.items():
            res = fg.run(spec, trials=300, seed=7, dtype=dtype, threads=2)
            for metric in res.arrays:
                out[f"{name}/{dtype}/{metric}"] = getattr(res, metric)
    data = fg.data.teacher(seed=1, samples=96, features=5, outputs=3)
    res = fg.train(fg.MLP(depth=3, width=6, activation="tanh"), data, optimizer="momentum", lr=0.05,
                   weight_decay=1e-3, clip_norm=1.0, epochs=3, batch=16, trials=3, seed=2)
    for field in ("loss", "test_accuracy", "grad_w", "grad_b", "final"):
        out[f"train_mlp/float64/{field}"] = getattr(res, field)
    seq = fg.data.adding(samples=64, steps=6, seed=3)
    res = fg.train(fg.RNN(steps=6, hidden=5, inputs=2), seq, optimizer="nesterov", lr=0.05, clip_norm=1.0,
                   epochs=3, batch=16, trials=3, seed=2)
    for field in ("loss", "grad_w", "grad_b", "grad_h", "final"):
        out[f"train_rnn/float64/{field}"] = getattr(res, field)
    return out


if __name__ == "__main__":
    PATH.parent.mkdir(exist_ok=True)
    np.savez_compressed(PATH, **golden())
    print(f"wrote {PATH}")
