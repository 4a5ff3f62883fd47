"""Training many independent small networks at once, recording how each layer learns."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from fastgrad import models
from fastgrad.checks import check_choice, check_float, check_int
from fastgrad.codes import ADAM, MOMENTUM, NESTEROV, RMSPROP, SGD
from fastgrad.data import Dataset
from fastgrad.executor import check_run, run_blocks, threads_context
from fastgrad.kernels import cpu_train
from fastgrad.version import __version__

OPTIMIZERS = {"sgd": SGD, "momentum": MOMENTUM, "nesterov": NESTEROV, "adam": ADAM, "rmsprop": RMSPROP}


@dataclass
class TrainResult:
    """Per-trial, per-epoch records of a training run.

    Attributes
    ----------
    loss : array (trials, epochs)
        Mean minibatch loss of each epoch (nan after divergence).
    accuracy, test_accuracy : array (trials, epochs)
        Training accuracy over the epoch's minibatches, and held-out accuracy at
        its end (classification; nan otherwise).
    grad_w, grad_b : array (trials, epochs, layers)
        Mean over the epoch's minibatches of ||dL/dW_l||_F and ||dL/db_l||: how
        fast each layer learns (layer 0 nearest the input).
    diverged : array (trials,)
        The index (from 0, as the epoch axis of the arrays) of the first epoch whose loss or
        weights were non-finite, -1 if none; :meth:`epochs_to` and ``to_frame`` count epochs from 1.
        Diverged trials are kept and counted, never dropped.
    initial, final : array (trials, parameters)
        Weights then biases, packed layer by layer (W_l row-major), before and after training;
        for an RNN packed [W_hh, W_xh, b, W_o, b_o], an LSTM [W_h, W_x, b, W_o, b_o], a GRU
        [W_h, W_x, b_ih, b_hh, W_o, b_o] (each row-major, gated cells' weights in the layout of
        ``kernels/cpu_lstm.py``: x @ W, gate k in columns k n .. (k + 1) n).
    grad_h : array (trials, epochs, steps) or (trials, epochs, layers), or None
        Recurrent cells: mean ||dL/dh_t|| per step (step 0 the earliest). Residual MLPs: mean
        ||dL/dh_{l-1}|| per layer, the gradient reaching layer l's input (position 0: the
        input's), what crosses the skips; None for MLPs. For recurrent cells
        ``grad_w`` holds (W_x, W_h, W_o) (the RNN's W_xh, W_hh) and ``grad_b`` (b, b_o), or the
        GRU's (b_ih, b_hh, b_o). ``accuracy`` counts every read-out step of every sequence.
        Transformers: ``grad_w`` (L + 1) holds block l's ||dL/d(W_q, W_k, W_v, W_o, W_1, W_2)||
        (the six together) and the read-out's ||dL/dW_r||, ``grad_b`` (1) ||dL/db_r||, ``grad_h``
        (L) ||dL/dx_l|| of each block's output stream; parameters packed [W_q, W_k, W_v, W_o,
        W_1, W_2 (each over all blocks, ``x @ W`` layout), W_r, b_r]; accuracies count tokens.
    spec, config : the network and the optimiser settings; seed, seconds, version.
    """

    loss: np.ndarray
    accuracy: np.ndarray
    test_accuracy: np.ndarray
    grad_w: np.ndarray
    grad_b: np.ndarray
    diverged: np.ndarray
    spec: Any
    config: dict[str, Any]
    seed: int
    seconds: float
    version: str
    initial: np.ndarray
    final: np.ndarray
    grad_h: np.ndarray | None = None

    def fraction_diverged(self) -> float:
        """Fraction of trials that diverged."""
        return float(np.mean(self.diverged >= 0))

    def epochs_to(self, threshold: float) -> np.ndarray:
        """Per trial, the first epoch (1-based) whose loss is below ``threshold``; nan if never."""
        below = self.loss < threshold
        first = np.argmax(below, axis=1).astype(float) + 1
        first[~below.any(axis=1)] = np.nan
        return first

    def to_frame(self) -> pd.DataFrame:
        """One row per trial x epoch x layer (loss and accuracies repeated per layer).

        For a recurrent cell a "layer" is a position in ``grad_w`` and ``grad_b``, the
        shorter of the two padded with nan.
        """
        t, e, layers = self.grad_w.shape
        layers = max(layers, self.grad_b.shape[2])
        pad = [np.pad(a, ((0, 0), (0, 0), (0, layers - a.shape[2])), constant_values=np.nan)
               for a in (self.grad_w, self.grad_b)]
        idx = np.indices((t, e, layers)).reshape(3, -1)
        frame = pd.DataFrame({"trial": idx[0], "epoch": idx[1] + 1, "layer": idx[2] + 1,
                              "grad_w": pad[0].ravel(), "grad_b": pad[1].ravel()})
        for name in ("loss", "accuracy", "test_accuracy"):
            frame[name] = np.repeat(getattr(self, name).ravel(), layers)
        return frame


def train(
    spec: Any,
    data: Dataset,
    optimizer: Literal["sgd", "momentum", "nesterov", "adam", "rmsprop"] = "sgd",
    lr: float = 0.1,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    alpha: float = 0.99,
    weight_decay: float = 0.0,
    clip_norm: float | None = None,
    warmup_steps: int = 0,
    epochs: int = 30,
    batch: int = 32,
    trials: int = 16,
    seed: int = 0,
    dtype: str = "float64",
    threads: int | None = None,
) -> TrainResult:
    """Train ``trials`` independent networks drawn from ``spec`` on ``data``, in parallel.

    The spec's input and output widths are set from the data; for
    classification the last layer is linear (logits of a softmax
    cross-entropy) unless the spec sets ``last_activation``; for regression
    the loss is the mse. Trial k's initial weights are trial k of
    ``fastgrad.run(spec, seed=seed)``; its minibatch order is its own. A residual MLP
    (``ResMLP``, with or without pre-LayerNorm) trains as the MLP does, from the draws of
    its plain MLP (trial k of both starts from the same weights), and also records
    ``grad_h``.

    A recurrent cell (RNN, LSTM, GRU; its ``steps`` and ``inputs`` set from the data) is
    trained by backpropagation through time with a linear read-out ``o_t = h_t W_o + b_o``,
    W_o ~ N(0, 1/hidden) from the trial's own stream, b_o = 0: on h_S for targets of shape
    (N, outputs), on each of the last K steps for sequence targets (N, K, outputs). The loss
    is the mean over those steps of the mse or softmax cross-entropy of each step (each a
    mean over the minibatch); held-out accuracy is measured for classification.

    A ``Transformer`` (its ``tokens`` and ``width`` those of the data, or refused) trains on
    sequences x (N, T, d) with a target per token y (N, T, outputs) (``fastgrad.data.sort_digits``), through a
    read-out on every token ``o = x_L W_r + b_r`` (x_L the last stream after any final norm),
    W_r ~ N(0, 1/d) from the trial's own stream, b_r = 0; the loss is the mean over the
    minibatch's tokens of each token's cross-entropy or mse (``warmup_steps`` gives the linear
    warm-up Xiong et al. 2020 study).

    Parameters
    ----------
    spec : MLP, ResMLP, RNN, LSTM, GRU, IndRNN, CNN or Transformer
    data : Dataset
    optimizer : {"sgd", "momentum", "nesterov", "adam", "rmsprop"}
        Each in PyTorch's form (``torch.optim``): ``sgd``, ``momentum`` and ``nesterov`` are
        ``SGD`` (with ``nesterov=True`` for the last); ``adam`` is ``Adam`` (amsgrad=False):
        m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, p -= lr m_hat / (sqrt(v_hat) + eps)
        with m_hat = m / (1 - b1^t), v_hat = v / (1 - b2^t) at the trial's t-th step;
        ``rmsprop`` is ``RMSprop`` (centered=False, momentum=0): v = alpha v + (1 - alpha) g^2,
        p -= lr g / (sqrt(v) + eps). State starts at zero for every trial.
    lr : float
        Learning rate (> 0). PyTorch's defaults are 1e-3 for Adam and 1e-2 for RMSprop.
    momentum : float
        Momentum coefficient for ``momentum`` and ``nesterov`` (PyTorch's form); unused otherwise.
    betas : (float, float)
        Adam's (b1, b2), each in [0, 1); unused otherwise.
    eps : float
        Added to the denominator of Adam and RMSprop (> 0: PyTorch also allows 0, which divides
        0 by 0 wherever a gradient entry is exactly zero); unused otherwise.
    alpha : float
        RMSprop's smoothing constant, in [0, 1); unused otherwise.
    weight_decay : float
        L2 penalty coefficient on the weights (not the biases): ``weight_decay * W`` is added
        to the (clipped) gradient before every optimiser's update, as PyTorch's ``weight_decay``
        does (for Adam this is L2, not AdamW's decoupled decay).
    clip_norm : float, optional
        Clip the global gradient norm (all weights and biases) to this value, before the
        optimiser's update.
    warmup_steps : int
        Linear learning-rate warm-up over this many updates (0, the default: none): update t
        (1, 2, ...) of a trial uses the rate ``lr * min(1, t / warmup_steps)``, as PyTorch's
        ``LambdaLR`` stepped after every update; every optimiser.
    epochs, batch, trials, seed : int
    dtype : {"float32", "float64"}
    threads : int, optional

    Returns
    -------
    TrainResult
    """
    model = models.of(spec)
    if not model.trainable:
        known = ", ".join(m.spec.__name__ for m in models.REGISTRY.values() if m.trainable)
        raise ValueError(f"spec: fastgrad.train trains {known}, got {type(spec).__name__}")
    if not isinstance(data, Dataset):
        raise ValueError(f"data: expected fastgrad.data.Dataset, got {type(data).__name__}")
    check_choice("optimizer", optimizer, tuple(OPTIMIZERS))
    lr = check_float("lr", lr, positive=True)
    momentum = check_float("momentum", momentum)
    beta1, beta2 = _check_betas(betas)
    eps = check_float("eps", eps, positive=True)
    alpha = check_float("alpha", alpha)
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha: must be in [0, 1), got {alpha}")
    weight_decay = check_float("weight_decay", weight_decay)
    clip = 0.0 if clip_norm is None else check_float("clip_norm", clip_norm, positive=True)
    warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0)
    epochs = check_int("epochs", epochs)
    args = check_run(trials, batch, seed, dtype, threads)
    batch, trials, seed, dt = args.batch, args.trials, args.seed, args.dtype
    if batch > data.x_train.shape[0]:
        raise ValueError(f"batch: {batch} is more than the {data.x_train.shape[0]} training samples")
    config = {"optimizer": optimizer, "lr": lr, "momentum": momentum, "betas": (beta1, beta2), "eps": eps,
              "alpha": alpha, "weight_decay": weight_decay, "clip_norm": clip_norm,
              "warmup_steps": warmup_steps, "epochs": epochs, "batch": batch,
              "trials": trials, "data": data.name, "dtype": dt.name}
    opt = cpu_train.Optimizer(OPTIMIZERS[optimizer], lr, momentum, weight_decay, clip, beta1, beta2, eps, alpha,
                              warmup_steps)
    classification = data.task == "classification"
    setup = model.train_setup(spec, data, classification, dt)
    record = _record(trials, epochs, setup.n_params, setup.layers, setup.steps, dt)
    arrays = cpu_train.Data(*setup.arrays)
    with threads_context(threads) as n_threads:
        t0 = time.perf_counter()
        run_blocks(lambda lo, hi: setup.call(seed, arrays, opt, epochs, batch, record, lo, hi), 0, trials, n_threads)
        seconds = time.perf_counter() - t0
    acc = record.accuracy
    if not classification:
        acc[:] = np.nan
    return TrainResult(record.loss, acc, record.test_accuracy, record.grad_w, record.grad_b, record.diverged,
                       setup.spec, config, seed, seconds, __version__, record.params0, record.params1,
                       record.grad_h if setup.steps else None)


def _check_betas(betas: Any) -> tuple[float, float]:
    """Adam's ``betas`` as two floats in [0, 1), or a ValueError naming ``betas``."""
    if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
        raise ValueError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
    beta1 = check_float("betas", betas[0])
    beta2 = check_float("betas", betas[1])
    for i, beta in enumerate((beta1, beta2)):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"betas: beta{i + 1} must be in [0, 1), got {beta}")
    return beta1, beta2


def _record(trials: int, epochs: int, n_params: int, layers: tuple[int, int], steps: int,
            dt: np.dtype) -> cpu_train.Record:
    """Empty output arrays of a training run (``layers``: how many weight and bias norms per epoch)."""
    return cpu_train.Record(np.empty((trials, n_params), dtype=dt), np.empty((trials, n_params), dtype=dt),
                            np.empty((trials, epochs)), np.empty((trials, epochs)), np.empty((trials, epochs)),
                            np.empty((trials, epochs, layers[0])), np.empty((trials, epochs, layers[1])),
                            np.empty((trials, epochs if steps else 0, steps)), np.empty(trials, dtype=np.int64))
