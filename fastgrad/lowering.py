"""A spec becomes a kernel's arguments here, and nowhere else.

Every caller that runs a model, on any backend, lowers it through these
functions: the CPU engine (:mod:`fastgrad.engine`), the CUDA launches
(:mod:`fastgrad.gpu`), the trial arrays (:mod:`fastgrad.trials`), training
(:mod:`fastgrad.train`) and the explicit-array routines (:mod:`fastgrad.explicit`).
The results are the documented structures of each kernel file (``Net``,
``Init``), holding integer codes from :mod:`fastgrad.codes` and compile-time
choices (:class:`fastgrad._numba.Choice`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from fastgrad.activations import CODES, loop
from fastgrad.codes import (
    CHAIN_CENTERED,
    CHAIN_CONSTANT,
    CHAIN_NORMAL,
    MEMORY_CHRONO,
    MEMORY_CONSTANT,
    MLP_MSE,
    MLP_PROBE,
    RNN_ALL,
    RNN_LAST,
    RNN_PROBE,
    TRAIN_MSE,
    TRAIN_XENT,
)
from fastgrad.initializers import recurrent_kind
from fastgrad.kernels import cpu_chain, cpu_gru, cpu_lstm, cpu_mlp, cpu_resmlp, cpu_rnn, gates
from fastgrad.kernels.draw import draw_choice
from fastgrad.specs import GRU, LAYER_NORM_EPS, LSTM, MLP, RNN, Chain, ResMLP, activation_params

MLP_LOSSES = {"mse": MLP_MSE, "probe": MLP_PROBE}
RNN_LOSSES = {"last": RNN_LAST, "all": RNN_ALL, "probe": RNN_PROBE}
CHAIN_BIAS = {"normal": CHAIN_NORMAL, "constant": CHAIN_CONSTANT, "centered": CHAIN_CENTERED}


def mlp_net(dims: np.ndarray, activation: str, last_activation: str | None, alpha: float | None,
            loss: str, dtype: str = "float64") -> cpu_mlp.Net:
    """The MLP kernels' :class:`~fastgrad.kernels.cpu_mlp.Net`.

    Parameters
    ----------
    dims : int array (L + 1,)
        Widths n_0 .. n_L.
    activation : str
        Activation of every layer.
    last_activation : str, optional
        Activation of the last layer; default ``activation``.
    alpha : float, optional
        Activation parameter; each activation's default if None.
    loss : {"mse", "probe"}
    dtype : {"float32", "float64"}

    Returns
    -------
    cpu_mlp.Net
    """
    _, a = activation_params("activation", activation, alpha)
    last = activation if last_activation is None else last_activation
    _, last_a = activation_params("last_activation", last, alpha)
    depth = len(dims) - 1
    alphas = np.full(depth, a, dtype=np.float64)
    alphas[-1] = last_a
    return cpu_mlp.Net(np.asarray(dims, dtype=np.int64), loop(activation, dtype), loop(last, dtype), alphas,
                       MLP_LOSSES[loss])


def mlp(spec: MLP, dtype: str = "float64", loss: str | None = None) -> tuple[cpu_mlp.Net, cpu_mlp.Init]:
    """An MLP spec's kernel arguments.

    Parameters
    ----------
    spec : MLP
    dtype : {"float32", "float64"}
    loss : str, optional
        Overrides ``spec.loss`` (training lowers its own losses).

    Returns
    -------
    (cpu_mlp.Net, cpu_mlp.Init)
    """
    net = mlp_net(spec.dims, spec.activation, spec.last_activation, spec.alpha, spec.loss if loss is None else loss,
                  dtype)
    w_kind, w_scale, b_kind, b_scale = spec.layer_inits()
    return net, cpu_mlp.Init(draw_choice(w_kind, dtype), w_kind, w_scale, b_kind, b_scale)


def mlp_training(spec: MLP, classification: bool, dtype: str = "float64") -> tuple[cpu_mlp.Net, cpu_mlp.Init]:
    """An MLP spec's arguments for the training kernel: softmax cross-entropy or mse.

    Parameters
    ----------
    spec : MLP
        With the data's input and output widths.
    classification : bool
    dtype : {"float32", "float64"}

    Returns
    -------
    (cpu_mlp.Net, cpu_mlp.Init)
    """
    net, init = mlp(spec, dtype, loss="mse")
    return net._replace(loss=TRAIN_XENT if classification else TRAIN_MSE), init


def resmlp_training(spec: ResMLP, classification: bool, dtype: str = "float64"
                    ) -> tuple[cpu_resmlp.Net, cpu_mlp.Init]:
    """A residual-MLP spec's arguments for the training kernel (``cpu_train.train_mlp``).

    Parameters
    ----------
    spec : ResMLP
        With the data's input and output widths.
    classification : bool
        Softmax cross-entropy (else mse).
    dtype : {"float32", "float64"}

    Returns
    -------
    (cpu_resmlp.Net, cpu_mlp.Init)
        The draws are those of ``spec.plain()``, as :func:`resmlp`'s.
    """
    net, init = resmlp(dataclasses.replace(spec, loss="mse"), dtype)
    return net._replace(loss=TRAIN_XENT if classification else TRAIN_MSE), init


def sequence_training(spec: RNN | LSTM | GRU, classification: bool, dtype: str = "float64"
                      ) -> tuple[cpu_rnn.Net | cpu_lstm.Net | cpu_gru.Net, cpu_rnn.Init | gates.Init]:
    """A recurrent spec's arguments for its training kernel (``kernels/cpu_train_seq``).

    Parameters
    ----------
    spec : RNN, LSTM or GRU
        With the data's inputs and steps.
    classification : bool
        Softmax cross-entropy on the read-out (else mse).
    dtype : {"float32", "float64"}

    Returns
    -------
    (Net, Init)
        The cell's ``Net`` with a training loss code and no Jacobian, and its ``Init``.
    """
    net, init = rnn(spec, dtype) if isinstance(spec, RNN) else gated(spec, dtype)
    return net._replace(loss=TRAIN_XENT if classification else TRAIN_MSE, jacobian=cpu_rnn.NO_JACOBIAN), init


def resmlp_net(dims: np.ndarray, activation: str, last_activation: str | None, alpha: float | None, loss: str,
               residual: float, norm: str | None, dtype: str = "float64") -> cpu_resmlp.Net:
    """The residual-MLP kernels' :class:`~fastgrad.kernels.cpu_resmlp.Net`.

    Parameters
    ----------
    dims : int array (L + 1,)
        Widths n_0 .. n_L.
    activation, last_activation, alpha, loss
        As for :func:`mlp_net`.
    residual : float
        The branch scale a (resolved: a number).
    norm : {"layer"} or None
        Pre-LayerNorm in the residual blocks.
    dtype : {"float32", "float64"}

    Returns
    -------
    cpu_resmlp.Net
    """
    net = mlp_net(dims, activation, last_activation, alpha, loss, dtype)
    return cpu_resmlp.Net(net.dims, net.hidden, net.last, net.alpha, net.loss, float(residual), norm == "layer",
                          LAYER_NORM_EPS)


def resmlp(spec: ResMLP, dtype: str = "float64") -> tuple[cpu_resmlp.Net, cpu_mlp.Init]:
    """A residual-MLP spec's kernel arguments; the draws are those of ``spec.plain()`` (common random numbers).

    Parameters
    ----------
    spec : ResMLP
    dtype : {"float32", "float64"}

    Returns
    -------
    (cpu_resmlp.Net, cpu_mlp.Init)
    """
    _, init = mlp(spec.plain(), dtype)
    return resmlp_net(spec.dims, spec.activation, spec.last_activation, spec.alpha, spec.loss, spec.residual_scale,
                      spec.norm, dtype), init


def rnn_net(activation: str, alpha: float | None, loss: str, jacobian: bool, dtype: str = "float64") -> cpu_rnn.Net:
    """The RNN kernels' :class:`~fastgrad.kernels.cpu_rnn.Net`.

    Parameters
    ----------
    activation : str
    alpha : float, optional
    loss : {"last", "all", "probe"}
    jacobian : bool
    dtype : {"float32", "float64"}

    Returns
    -------
    cpu_rnn.Net
    """
    _, a = activation_params("activation", activation, alpha)
    return cpu_rnn.Net(loop(activation, dtype), a, RNN_LOSSES[loss],
                       cpu_rnn.JACOBIAN if jacobian else cpu_rnn.NO_JACOBIAN)


def rnn(spec: RNN, dtype: str = "float64") -> tuple[cpu_rnn.Net, cpu_rnn.Init]:
    """An RNN spec's kernel arguments.

    Parameters
    ----------
    spec : RNN
    dtype : {"float32", "float64"}

    Returns
    -------
    (cpu_rnn.Net, cpu_rnn.Init)
    """
    w_kind, w_scale = recurrent_kind(spec.init, spec.hidden, spec.gain)
    b_kind, b_scale = spec.bias()
    init = cpu_rnn.Init(draw_choice(w_kind, dtype), spec.hidden, spec.inputs, w_kind, w_scale,
                        spec.input_scale / math.sqrt(spec.inputs), b_kind, b_scale)
    return rnn_net(spec.activation, spec.alpha, spec.loss, spec.jacobian, dtype), init


def chain(spec: Chain, dtype: str = "float64") -> tuple[cpu_chain.Net, cpu_chain.Init]:
    """A chain spec's kernel arguments.

    Parameters
    ----------
    spec : Chain
    dtype : {"float32", "float64"}

    Returns
    -------
    (cpu_chain.Net, cpu_chain.Init)
    """
    w_const = spec.init == "constant"
    _, b_scale = spec.bias_init_scale  # centered: 0, unused
    init = cpu_chain.Init(w_const, spec.init_scale, CHAIN_BIAS[spec.bias_init], b_scale)
    return chain_net(spec.activation, spec.alpha, dtype), init


def chain_net(activation: str, alpha: float | None, dtype: str = "float64") -> cpu_chain.Net:
    """The chain kernels' :class:`~fastgrad.kernels.cpu_chain.Net`.

    Parameters
    ----------
    activation : str
    alpha : float, optional
    dtype : {"float32", "float64"}

    Returns
    -------
    cpu_chain.Net
    """
    _, a = activation_params("activation", activation, alpha)
    return cpu_chain.Net(loop(activation, dtype), a)


def mlp_stats(trials: int, depth: int, dtype: np.dtype) -> cpu_mlp.Stats:
    """Empty output rows of the MLP kernels: four (trials, depth) arrays of ``dtype``."""
    return cpu_mlp.Stats(*(np.empty((trials, depth), dtype=dtype) for _ in range(4)))


def resmlp_stats(trials: int, depth: int, dtype: np.dtype) -> cpu_resmlp.Stats:
    """Empty output rows of the residual-MLP kernels: five (trials, depth) arrays of ``dtype``."""
    return cpu_resmlp.Stats(*(np.empty((trials, depth), dtype=dtype) for _ in range(5)))


def chain_stats(trials: int, depth: int, dtype: np.dtype) -> cpu_chain.Stats:
    """Empty output rows of the chain kernels: four (trials, depth) arrays of ``dtype``."""
    return cpu_chain.Stats(*(np.empty((trials, depth), dtype=dtype) for _ in range(4)))


def rnn_stats(trials: int, steps: int, jacobian: bool, dtype: np.dtype) -> cpu_rnn.Stats:
    """Empty output rows of the RNN kernels: (trials, steps) statistics, (trials, 3) totals, the Jacobian norms."""
    return cpu_rnn.Stats(np.empty((trials, steps), dtype=dtype), np.empty((trials, steps), dtype=dtype),
                         np.empty((trials, steps), dtype=dtype), np.empty((trials, 3), dtype=dtype),
                         np.empty((trials, steps if jacobian else 0), dtype=dtype))


def activation_code(act: object) -> int:
    """The integer code (CUDA kernels) of an activation loop of a lowered ``Net``.

    Parameters
    ----------
    act : FirstClass

    Returns
    -------
    int
    """
    name = getattr(act, "name", None)
    if name not in CODES:
        raise ValueError(f"not an activation loop: {act!r}")
    return CODES[name]


def gated(spec: LSTM | GRU, dtype: str = "float64") -> tuple[cpu_lstm.Net | cpu_gru.Net, gates.Init]:
    """An LSTM or GRU spec's kernel arguments.

    Parameters
    ----------
    spec : LSTM or GRU
    dtype : {"float32", "float64"}

    Returns
    -------
    (cpu_lstm.Net or cpu_gru.Net, gates.Init)
    """
    w_kind, w_scale = recurrent_kind(spec.init, spec.hidden, spec.gain)
    x_kind, x_scale = spec.input_kind()
    b_kind, b_scale = spec.bias()
    chrono, memory = spec.memory()
    init = gates.Init(draw_choice([w_kind, x_kind], dtype), spec.hidden, spec.inputs, spec.GATES, w_kind, w_scale,
                      x_kind, x_scale, b_kind, b_scale, 1, MEMORY_CHRONO if chrono else MEMORY_CONSTANT, memory)
    return gated_net("lstm" if isinstance(spec, LSTM) else "gru", spec.loss, spec.jacobian, dtype), init


def gated_net(cell: str, loss: str, jacobian: bool = False, dtype: str = "float64") -> cpu_lstm.Net | cpu_gru.Net:
    """The LSTM's or GRU's kernel :class:`Net`: the sigmoid and tanh loops and the loss code.

    Parameters
    ----------
    cell : {"lstm", "gru"}
    loss : {"last", "all", "probe"}
    jacobian : bool
    dtype : {"float32", "float64"}

    Returns
    -------
    cpu_lstm.Net or cpu_gru.Net
    """
    net_type = cpu_lstm.Net if cell == "lstm" else cpu_gru.Net
    return net_type(loop("sigmoid", dtype), loop("tanh", dtype), RNN_LOSSES[loss],
                    cpu_rnn.JACOBIAN if jacobian else cpu_rnn.NO_JACOBIAN)


def lstm_stats(trials: int, steps: int, jacobian: bool, dtype: np.dtype) -> cpu_lstm.Stats:
    """Empty output rows of the LSTM kernels: (T, S) grad_h, grad_c, q; (T, S, 5) per-step norms; (T, 7) totals;
    the two Jacobian norms (T, S), or (T, 0) without them."""
    jac = steps if jacobian else 0
    return cpu_lstm.Stats(np.empty((trials, steps), dtype=dtype), np.empty((trials, steps), dtype=dtype),
                          np.empty((trials, steps), dtype=dtype), np.empty((trials, steps, 5), dtype=dtype),
                          np.empty((trials, 7), dtype=dtype), np.empty((trials, jac), dtype=dtype),
                          np.empty((trials, jac), dtype=dtype))


def gru_stats(trials: int, steps: int, jacobian: bool, dtype: np.dtype) -> cpu_gru.Stats:
    """Empty output rows of the GRU kernels: (T, S) grad_h, q; (T, S, 4) per-step norms; (T, 7) totals;
    the Jacobian norms (T, S), or (T, 0) without them."""
    return cpu_gru.Stats(np.empty((trials, steps), dtype=dtype), np.empty((trials, steps), dtype=dtype),
                         np.empty((trials, steps, 4), dtype=dtype), np.empty((trials, 7), dtype=dtype),
                         np.empty((trials, steps if jacobian else 0), dtype=dtype))
