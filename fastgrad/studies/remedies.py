"""The remedies for unstable gradients, measured during training.

The baseline is the classic hard case: a sigmoid net with N(0, 1) weights
trained by plain SGD, whose first layers barely learn. Each remedy changes
one thing (the activation, the initialisation, momentum, L2 regularisation),
and one combines several; all start from the same trials (same seed).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, cast

import numpy as np
import pandas as pd

from fastgrad import GRU, LSTM, MLP, RNN, ResMLP, TrainResult, spectrum, theory, train
from fastgrad.data import Dataset
from fastgrad.stats import markdown_table

BASELINE: dict[str, Any] = {"activation": "sigmoid", "init": "normal", "sigma_w": 1.0, "sigma_b": 1.0}

_HE: dict[str, Any] = {"activation": "relu", "init": "he_normal", "sigma_w": None, "sigma_b": 0.0}
REMEDIES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (changes to the MLP, optimiser settings); an init scaled by its gain drops the baseline's sigma_w
    "baseline: sigmoid, N(0,1), SGD": ({}, {}),
    "tanh": ({"activation": "tanh"}, {}),
    "relu + he": (_HE, {}),
    "xavier": ({"init": "xavier_normal", "sigma_w": None, "sigma_b": 0.0}, {}),
    "momentum 0.9": ({}, {"optimizer": "momentum"}),
    "L2 1e-3": ({}, {"weight_decay": 1e-3}),
    "relu + he + momentum": (_HE, {"optimizer": "momentum"}),
}


def run_remedies(data: Dataset, depth: int = 5, width: int = 30, epochs: int = 20, trials: int = 8,
                 lr: float = 0.1, batch: int = 32, seed: int = 0,
                 threshold: float = 0.5) -> tuple[pd.DataFrame, dict[str, TrainResult]]:
    """Train the baseline and every remedy; a summary table and the results.

    Parameters
    ----------
    data : Dataset
    depth, width : int
        The MLP (depth weight layers; the last is the linear read-out).
    epochs, trials, batch, seed : int
    lr : float
        SGD learning rate, the same for every configuration (momentum uses it too,
        so its effective step is larger: that is the remedy as usually applied).
    threshold : float
        Loss level for ``epochs_to_threshold``.

    Returns
    -------
    (pandas.DataFrame, dict of str to TrainResult)
        One row per configuration: median epochs to reach ``threshold`` (nan if
        most trials never do), fraction reaching it, fraction diverged, median
        final loss and test accuracy, and the first/last layer learning-speed ratio.
    """
    results: dict[str, TrainResult] = {}
    rows = []
    for name, (net, opt) in REMEDIES.items():
        spec = MLP(depth=depth, width=width, **{**BASELINE, **net})
        res = train(spec, data, lr=lr, epochs=epochs, batch=batch, trials=trials, seed=seed, **opt)
        results[name] = res
        reach = res.epochs_to(threshold)
        with np.errstate(all="ignore"):
            speed = np.nanmedian(res.grad_b[:, 0, 0] / res.grad_b[:, 0, -2]) if depth > 1 else np.nan
        most = np.mean(np.isfinite(reach)) > 0.5
        rows.append({
            "configuration": name,
            f"epochs_to_loss_{threshold:g}": float(np.nanmedian(reach)) if most else np.nan,
            "reached": float(np.mean(np.isfinite(reach))),
            "diverged": res.fraction_diverged(),
            "final_loss": float(np.nanmedian(res.loss[:, -1])),
            "final_test_accuracy": float(np.nanmedian(res.test_accuracy[:, -1])),
            "speed_first_over_last_hidden": float(speed),
            "seconds": res.seconds,
        })
    return pd.DataFrame(rows), results


RNN_REMEDIES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (changes to the RNN, optimiser settings); exploding when relu meets gain 2
    "tanh, gain 1": ({"activation": "tanh", "gain": 1.0}, {}),
    "relu, gain 2 (exploding)": ({"activation": "relu", "gain": 2.0}, {}),
    "relu, gain 2, clip 1": ({"activation": "relu", "gain": 2.0}, {"clip_norm": 1.0}),
    "relu, identity (IRNN)": ({"activation": "relu", "init": "identity", "gain": 1.0}, {}),
}


def run_rnn_remedies(data: Dataset, hidden: int = 32, epochs: int = 10, trials: int = 8, lr: float = 0.1,
                     batch: int = 32, seed: int = 0) -> tuple[pd.DataFrame, dict[str, TrainResult]]:
    """Vanilla RNNs on a memory task (e.g. the adding problem), with and without gradient clipping.

    Returns
    -------
    (pandas.DataFrame, dict of str to TrainResult)
        One row per configuration: fraction diverged, median first and final loss, and the
        median first-epoch ||dL/dh_1|| / ||dL/dh_S|| (vanishing < 1 < exploding).
    """

    steps = int(data.x_train.shape[1])
    results: dict[str, TrainResult] = {}
    rows = []
    for name, (net, opt) in RNN_REMEDIES.items():
        spec = RNN(steps=steps, hidden=hidden, inputs=data.features, **net)
        res = train(spec, data, lr=lr, epochs=epochs, batch=batch, trials=trials, seed=seed, **opt)
        results[name] = res
        assert res.grad_h is not None
        with np.errstate(all="ignore"):
            ratio = _median(res.grad_h[:, 0, 0] / res.grad_h[:, 0, -1])  # nan if every trial diverged
        rows.append({"configuration": name, "diverged": res.fraction_diverged(),
                     "first_loss": _median(res.loss[:, 0]), "final_loss": _median(res.loss[:, -1]),
                     "grad_h_first_over_last": float(ratio), "seconds": res.seconds})
    return pd.DataFrame(rows), results


def mean_predictor_loss(data: Dataset) -> float:
    """The training loss of a net that has learnt nothing: the scale a training curve is read against.

    Classification: ln k, the cross-entropy of the uniform prediction over k classes (chance).
    Regression: 0.5 sum over outputs of var(y), the mse of predicting the targets' mean.

    Parameters
    ----------
    data : Dataset

    Returns
    -------
    float
    """
    if data.task == "classification":
        return float(np.log(data.outputs))
    targets = data.y_train.reshape(-1, data.outputs)
    return 0.5 * float(np.sum(targets.var(axis=0)))


def mean_predictor_label(data: Dataset) -> str:
    """What :func:`mean_predictor_loss` is, in words, for a figure's legend."""
    return (f"chance, ln {data.outputs}" if data.task == "classification"
            else "mean predictor, 0.5 var(y)")


CURES: dict[str, tuple[str, dict[str, Any]]] = {
    # name: (cell, its spec's settings); every recurrent block orthogonal, gain 1
    "RNN tanh, orthogonal": ("rnn", {"activation": "tanh", "init": "orthogonal", "gain": 1.0}),
    "LSTM, forget bias 0": ("lstm", {"init": "orthogonal", "forget_bias": 0.0}),
    "LSTM, forget bias 1": ("lstm", {"init": "orthogonal", "forget_bias": 1.0}),
    "GRU, update bias 0": ("gru", {"init": "orthogonal", "update_bias": 0.0}),
}
SOLVED_FRACTION = 0.1
"""Regression is solved when the loss is below this share of the mean predictor's."""
SOLVED_KAPPA = 0.9
"""Classification is solved when held-out accuracy, chance-corrected ((acc - 1/k) / (1 - 1/k)), reaches this."""


def run_cures_training(data: Dataset, hidden: int = 64, epochs: int = 15, trials: int = 8, lr: float = 1e-2,
                       batch: int = 32, clip_norm: float | None = 1.0, seed: int = 0,
                       threads: int | None = None) -> tuple[pd.DataFrame, dict[str, TrainResult]]:
    """The vanilla RNN, the LSTM (forget bias 0 and 1) and the GRU trained on one memory task.

    Every cell has ``hidden`` units, orthogonal recurrent blocks (gain 1, one per gate),
    N(0, 1/d) input weights, zero biases but the memory gate's, and trains with Adam
    (``lr``, PyTorch's betas), global-norm clipping at ``clip_norm``, from the same seed
    and minibatch orders (trial k of each cell sees the same data in the same order).

    A trial solves a regression task (the adding problem) when its last epoch's training
    loss is below ``SOLVED_FRACTION`` (0.1) of the mean predictor's, ``0.5 var(y)`` summed
    over the outputs (mse below a tenth of the mean predictor's mse); a classification task
    (the copy task) when its held-out accuracy at the last epoch, chance-corrected as
    ``(acc - 1/k) / (1 - 1/k)`` for k classes, is at least ``SOLVED_KAPPA`` (0.9; accuracy
    >= 0.9125 for 8 symbols).

    Parameters
    ----------
    data : Dataset
        Sequences (N, steps, features); targets (N, outputs) or (N, K, outputs).
    hidden : int
    epochs, trials, batch, seed : int
    lr : float
        Adam's learning rate, the same for every cell.
    clip_norm : float, optional
        Global-norm clipping threshold, the same for every cell (None: none).
    threads : int, optional

    Returns
    -------
    (pandas.DataFrame, dict of str to TrainResult)
        One row per cell: the fraction of trials that solve the task, the median
        epoch at which the solved ones first met the criterion, the median final loss
        (and, for classification, held-out accuracy), the mean predictor's loss, the
        fraction diverged, and seconds of training.
    """

    cells = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
    steps = int(data.x_train.shape[1])
    classification = data.task == "classification"
    chance = 1.0 / data.outputs
    baseline = mean_predictor_loss(data)
    results: dict[str, TrainResult] = {}
    rows = []
    for name, (cell, net) in CURES.items():
        spec = cells[cell](steps=steps, hidden=hidden, inputs=data.features, **net)
        res = train(spec, data, optimizer="adam", lr=lr, clip_norm=clip_norm, epochs=epochs, batch=batch,
                    trials=trials, seed=seed, threads=threads)
        results[name] = res
        if classification:
            with np.errstate(invalid="ignore"):
                met = (res.test_accuracy - chance) / (1.0 - chance) >= SOLVED_KAPPA
        else:
            met = res.loss < SOLVED_FRACTION * baseline
        solved = met[:, -1]
        first = np.argmax(met, axis=1) + 1.0
        row = {"task": data.name, "configuration": name, "solved": float(np.mean(solved)),
               "epoch_solved": _median(first[solved]), "final_loss": _median(res.loss[:, -1]),
               "mean_predictor_loss": baseline}
        if classification:
            row["final_test_accuracy"] = _median(res.test_accuracy[:, -1])
        row.update({"diverged": res.fraction_diverged(), "seconds": res.seconds})
        rows.append(row)
    return pd.DataFrame(rows), results


def cures_markdown(tables: list[pd.DataFrame], command: str, settings: str) -> str:
    """The training experiment of the cures as a Markdown section.

    Parameters
    ----------
    tables : list of pandas.DataFrame
        :func:`run_cures_training`'s tables, one per task.
    command : str
        The command line that made them.
    settings : str
        One line stating the data, sizes and optimiser.

    Returns
    -------
    str
    """

    lines = ["## The cures during training", "", settings, "",
             f"Solved: the last epoch's training loss below {SOLVED_FRACTION:g} of the mean predictor's "
             f"(regression), or held-out accuracy, chance-corrected, at least {SOLVED_KAPPA:g} (classification). "
             "`epoch_solved`: median first epoch meeting it, over the trials solved at the end; losses are "
             "medians over the trials.", ""]
    for table in tables:
        lines += [*markdown_table(table), ""]
    lines += [f"Command: `{command}`", ""]
    return "\n".join(lines)


DEEP_NETS: dict[str, tuple[str, dict[str, Any]]] = {
    # name: (model, its spec's settings beside depth, width and tanh); plain nets at the edge of chaos
    "plain tanh, xavier": ("mlp", {"init": "xavier_normal"}),
    "plain tanh, edge of chaos (sigma_b^2 0.05)": ("mlp", {"init": "scaled_normal", "sigma_b2": 0.05}),
    "residual, a = 1/sqrt(L)": ("resmlp", {"init": "xavier_normal", "residual": "1/sqrt(L)"}),
    "residual + LayerNorm, a = 1/sqrt(L)": ("resmlp", {"init": "xavier_normal", "residual": "1/sqrt(L)",
                                                        "norm": "layer"}),
}


def run_depth_training(data: Dataset, depth: int = 50, width: int = 64, epochs: int = 30, trials: int = 16,
                       optimizer: str = "adam", lr: float = 1e-3, batch: int = 32, threshold: float = 0.1,
                       seed: int = 0, threads: int | None = None) -> tuple[pd.DataFrame, dict[str, TrainResult]]:
    """Plain and residual tanh MLPs of one depth trained on one task: which ones learn.

    The nets (:data:`DEEP_NETS`), all tanh with ``width`` hidden units and a linear read-out for
    classification: the plain MLP with Xavier weights (sigma_w^2 = 1, zero biases: the edge of
    chaos at sigma_b^2 = 0), the plain MLP at the edge of chaos with sigma_b^2 = 0.05 and
    sigma_w^2 = ``theory.critical_sigma_w2("tanh", 0.05)`` (1.76, ``scaled_normal``), the residual
    MLP with branch scale a = 1/sqrt(L), and the same with pre-LayerNorm. The residual nets start
    from the Xavier plain net's draws (trial k of each is trial k of that MLP). Every net trains
    with the same optimiser, learning rate, batch, seed and minibatch orders.

    Parameters
    ----------
    data : Dataset
        Inputs (N, features).
    depth, width : int
        Weight layers L (>= 3) and hidden width.
    epochs, trials, batch, seed : int
    optimizer : str
        As for :func:`fastgrad.train` (PyTorch's defaults for the others: Adam's betas, momentum 0.9).
    lr : float
    threshold : float
        The training-loss level a trial must reach (its mean minibatch loss of an epoch below it).
    threads : int, optional

    Returns
    -------
    (pandas.DataFrame, dict of str to TrainResult)
        One row per net: ``reached`` (fraction of trials whose epoch loss falls below ``threshold``),
        ``epochs_to_threshold`` (median over the trials that reach it), ``final_loss`` and
        ``final_test_accuracy`` (medians over trials of the last epoch), ``grad_w_first_over_last``
        (median over trials of the first epoch's ||dL/dW_1|| / ||dL/dW_L||), ``diverged`` and
        ``seconds`` of training (compilation excluded: each net first trains one trial for one epoch).
    """

    edge = theory.critical_sigma_w2("tanh", 0.05)
    results: dict[str, TrainResult] = {}
    rows = []
    for name, (model, settings) in DEEP_NETS.items():
        kw = {**settings, "sigma_w2": edge} if settings.get("init") == "scaled_normal" else settings
        spec = (ResMLP if model == "resmlp" else MLP)(depth=depth, width=width, activation="tanh", **kw)
        options: dict[str, Any] = {"optimizer": optimizer, "lr": lr, "batch": batch, "seed": seed,
                                   "threads": threads}
        train(spec, data, epochs=1, trials=1, **options)  # compiles (or loads) the kernel: timed apart
        res = train(spec, data, epochs=epochs, trials=trials, **options)
        results[name] = res
        reach = res.epochs_to(threshold)
        with np.errstate(all="ignore"):
            ratio = res.grad_w[:, 0, 0] / res.grad_w[:, 0, -1]
        rows.append({"configuration": name, "reached": float(np.mean(np.isfinite(reach))),
                     "epochs_to_threshold": _median(reach), "final_loss": _median(res.loss[:, -1]),
                     "final_test_accuracy": _median(res.test_accuracy[:, -1]),
                     "grad_w_first_over_last": _median(ratio), "diverged": res.fraction_diverged(),
                     "seconds": res.seconds})
    return pd.DataFrame(rows), results


ISOMETRY_WEIGHTS = ("gaussian", "orthogonal")
"""The two initialisations of the training link of dynamical isometry, at one edge of chaos."""


def isometry_specs(depth: int, width: int, sigma_b2: float, weights: str) -> MLP:
    """The tanh MLP at the edge of chaos with Gaussian or orthogonal weights (Pennington et al. 2017).

    sigma_w^2 = ``theory.critical_sigma_w2("tanh", sigma_b2)``; ``gaussian``: ``scaled_normal``
    weights of variance sigma_w^2 / fan_in; ``orthogonal``: orthogonal weights of gain sigma_w.

    Parameters
    ----------
    depth, width : int
    sigma_b2 : float
    weights : {"gaussian", "orthogonal"}

    Returns
    -------
    MLP
    """

    w2 = theory.critical_sigma_w2("tanh", sigma_b2)
    kw: dict[str, Any] = ({"init": "scaled_normal", "sigma_w2": w2} if weights == "gaussian"
                          else {"init": "orthogonal", "gain": float(np.sqrt(w2))})
    return MLP(depth=depth, width=width, activation="tanh", sigma_b2=sigma_b2, **kw)


def run_isometry_training(data: Dataset, depth: int = 32, width: int = 64, sigma_b2: float = 1e-4,
                          trials: int = 32, epochs: int = 20, lr: float = 0.05, batch: int = 32,
                          at_epoch: int = 3, threshold: float = 0.5, spectrum_batch: int = 1, seed: int = 0,
                          threads: int | None = None
                          ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, TrainResult]]:
    """Does a trial's initial Jacobian spectrum predict how fast it learns? Gaussian against orthogonal weights.

    Both inits (:func:`isometry_specs`) are trained by plain SGD (``lr``) from the same seed;
    for every trial the spectrum of its *initial* network comes from :func:`fastgrad.spectrum`
    with the trained spec (the data's input and output widths and the linear read-out), whose
    trial k draws exactly training's initial weights of trial k (tested): the whole net's
    J = dh_L/dh_0 (n_0 x outputs) and its body's, J_body = dh_{L-1}/dh_0 (n_0 x width: the
    first L - 1 layers, the same draws), both at the first N(0, 1) input of a batch of
    ``spectrum_batch``. Spread: var(lambda) / E[lambda]^2 over a trial's lambda = s^2.

    Learning speed: the training loss after epoch ``at_epoch`` (lower is faster), and the first
    epoch whose loss is below ``threshold``. The rank correlations (Spearman) are over all
    trials and within each init; a trial that never reaches ``threshold`` or diverges ranks as
    the slowest (its epochs and loss taken as +inf).

    Parameters
    ----------
    data : Dataset
        Inputs (N, features).
    depth, width : int
    sigma_b2 : float
        The bias variance; sigma_w^2 is its edge of chaos.
    trials, epochs, batch, seed : int
    lr : float
        Plain SGD's learning rate, the same for both inits.
    at_epoch : int
        The epoch (1-based) whose training loss measures speed.
    threshold : float
    spectrum_batch : int
        The batch :func:`fastgrad.spectrum` draws (J at its first input).
    threads : int, optional

    Returns
    -------
    trials_frame : pandas.DataFrame
        One row per trial: ``weights``, ``trial``, ``spread``, ``spread_body`` (var/E^2 of J
        and of J_body), ``mean_squared_body`` (E[lambda] of J_body), ``condition_body``,
        ``loss_at_epoch``, ``epochs_to_threshold`` (nan if never), ``final_loss``,
        ``final_test_accuracy``, ``diverged`` (bool).
    summary : pandas.DataFrame
        One row per init: the medians of ``spread``, ``spread_body``, ``mean_squared_body``,
        ``loss_at_epoch``, ``epochs_to_threshold`` (over the trials that reach it),
        ``final_loss``, ``final_test_accuracy``, the fraction ``reached``, ``seconds`` of training.
    correlations : pandas.DataFrame
        One row per (spread measure, speed measure): Spearman's rho and its two-sided p-value over
        all trials (``rho_all``, ``p_all``) and within each init (``rho_gaussian``, ``p_gaussian``,
        ``rho_orthogonal``, ``p_orthogonal``).
    results : dict of str to TrainResult
    """
    from scipy.stats import spearmanr


    if not 1 <= at_epoch <= epochs:
        raise ValueError(f"at_epoch: must be 1..{epochs} (the epochs), got {at_epoch}")
    results: dict[str, TrainResult] = {}
    frames, rows = [], []
    for weights in ISOMETRY_WEIGHTS:
        spec = isometry_specs(depth, width, sigma_b2, weights)
        train(spec, data, lr=lr, batch=batch, epochs=1, trials=1, seed=seed, threads=threads)  # compiles
        res = train(spec, data, lr=lr, batch=batch, epochs=epochs, trials=trials, seed=seed, threads=threads)
        results[weights] = res
        trained = cast(MLP, res.spec)  # the spec with the data's widths and the linear read-out: training's draws
        full = spectrum(trained, trials, batch=spectrum_batch, seed=seed, threads=threads)
        body = spectrum(dataclasses.replace(trained, depth=depth - 1, output_width=width, last_activation=None),
                        trials, batch=spectrum_batch, seed=seed, threads=threads)
        with np.errstate(all="ignore"):
            frame = pd.DataFrame({
                "weights": weights, "trial": np.arange(trials),
                "spread": full.var_squared / full.mean_squared**2,
                "spread_body": body.var_squared / body.mean_squared**2,
                "mean_squared_body": body.mean_squared, "condition_body": body.condition,
                "loss_at_epoch": res.loss[:, at_epoch - 1], "epochs_to_threshold": res.epochs_to(threshold),
                "final_loss": res.loss[:, -1], "final_test_accuracy": res.test_accuracy[:, -1],
                "diverged": res.diverged >= 0})
        frames.append(frame)
        reach = frame["epochs_to_threshold"].to_numpy()
        rows.append({"weights": weights, "sigma_w2": theory.critical_sigma_w2("tanh", sigma_b2), "sigma_b2": sigma_b2,
                     "spread": _median(frame["spread"].to_numpy()),
                     "spread_body": _median(frame["spread_body"].to_numpy()),
                     "mean_squared_body": _median(frame["mean_squared_body"].to_numpy()),
                     "loss_at_epoch": _median(frame["loss_at_epoch"].to_numpy()),
                     "reached": float(np.mean(np.isfinite(reach))), "epochs_to_threshold": _median(reach),
                     "final_loss": _median(frame["final_loss"].to_numpy()),
                     "final_test_accuracy": _median(frame["final_test_accuracy"].to_numpy()),
                     "seconds": res.seconds})
    per_trial = pd.concat(frames, ignore_index=True)
    correlations = []
    for spread in ("spread", "spread_body"):
        for speed in ("loss_at_epoch", "epochs_to_threshold"):
            row: dict[str, Any] = {"spread": spread, "speed": speed}
            for group, part in (("all", per_trial), *((w, per_trial[per_trial.weights == w])
                                                       for w in ISOMETRY_WEIGHTS)):
                slow = np.nan_to_num(part[speed].to_numpy(dtype=float), nan=np.inf)  # never / diverged: slowest
                with warnings.catch_warnings():  # a constant column (tiny runs) gives nan, as it should
                    warnings.simplefilter("ignore")
                    rho, p = spearmanr(part[spread].to_numpy(dtype=float), slow)
                row[f"rho_{group}"], row[f"p_{group}"] = float(rho), float(p)
            correlations.append(row)
    return per_trial, pd.DataFrame(rows), pd.DataFrame(correlations), results


def _median(values: np.ndarray) -> float:
    """Median over the finite values (nan when every trial diverged)."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")
