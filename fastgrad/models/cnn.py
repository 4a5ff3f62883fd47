"""The deep convolutional network (CNN, Xiao et al. 2018): spec, lowering, runs, given arrays, trial arrays, spectra.

``z_l = conv(h_{l-1}, W_l) + b_l``, ``h_l = phi(z_l)``, stride 1, "same" padding (circular,
as Xiao et al., or zeros), in 1-D or 2-D, the cross-correlation of PyTorch's ``conv1d``/``conv2d``.
With circular padding and weights of variance sigma_w^2 / (c k^D) the second moment q_l
follows the fully connected mean-field map, with the same critical line chi_1 = 1 (Xiao et al.,
section 2); the delta-orthogonal init (an orthogonal c x c matrix at the centre tap, zeros
elsewhere) makes the network, position by position, an orthogonal MLP on a batch of B N^D
rows: dynamical isometry at the critical point. Kernels in ``kernels/cpu_cnn.py``.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastgrad.activations import NAMES, loop
from fastgrad.codes import MLP_MSE, MLP_PROBE, NORMAL, ORTHOGONAL, TRAIN_MSE, TRAIN_XENT
from fastgrad.executor import Block, run_blocks, threads_context
from fastgrad.explicit import check_array, layers
from fastgrad.initializers import BIAS_INITS, FAN_INITS, bias_kind, weight_kind, weight_scale
from fastgrad.kernels import cpu_cnn
from fastgrad.kernels.draw import draw_choice
from fastgrad.models.base import Model, Plan, TrainSetup, register
from fastgrad.results import Result
from fastgrad.specs import (
    LOSSES,
    _Scales,
    activation_params,
    check_alpha,
    check_choice,
    check_float,
    check_int,
    given_scale,
)
from fastgrad.trials import trial_args
from fastgrad.version import __version__

CNN_INITS = ("scaled_normal", "normal", *FAN_INITS, "delta_orthogonal")
"""Weight inits of a CNN; the fan-in of the Xavier, He and LeCun inits is PyTorch's for convolutions, c_in k^D."""
PADDINGS = ("circular", "zeros")
STATISTICS = ("grad_w", "grad_b", "delta", "q", "corr")
LOSS_CODES = {"mse": MLP_MSE, "probe": MLP_PROBE}
_NO_IDS = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class CNN(_Scales):
    """A deep convolutional network of stride 1 and "same" padding, drawn afresh for every trial.

    Parameters
    ----------
    depth : int
        Number of convolutions L.
    channels : int
        c, the channels of every layer's output.
    size : int
        N: inputs are N (``ndim=1``) or N x N (``ndim=2``) positions; a tuple (N,) or (N, N) is accepted.
    ndim : {1, 2}
        D, the spatial dimensions (default 2).
    in_channels : int, optional
        The input's channels; default ``channels``.
    kernel_size : int
        k, odd (default 3): kernels are k or k x k.
    padding : {"circular", "zeros"}
        Circular (Xiao et al.: the mean-field theory holds exactly) or zero padding.
    activation : str
        Every layer's activation (``fastgrad.activations.NAMES``).
    init : str
        ``scaled_normal`` (N(0, sigma_w^2 / (c_in k^D)), the default), ``normal`` (N(0, sigma_w^2)), the
        Xavier, He and LeCun inits with PyTorch's fans for convolutions (fan_in = c_in k^D, fan_out =
        c_out k^D; scaled by ``gain``), or ``delta_orthogonal`` (sqrt(sigma_w^2) Q at the centre tap, Q a
        Haar (semi-)orthogonal c_in x c_out matrix, zeros elsewhere; ``gain`` a synonym of ``sigma_w``).
    sigma_w, sigma_w2, gain : float, optional
        The weights' scale: one of them, as the init takes it (default 1).
    bias_init, sigma_b, sigma_b2, bias_value
        As for :class:`fastgrad.MLP`.
    loss : {"mse", "probe"}
        mse against N(0, 1) targets of the output's shape (B, c, N[, N]), or the probe.
    alpha : float, optional
        Parameter of ``leaky_relu`` or ``elu``.

    Notes
    -----
    Inputs are N(0, 1) of shape (B, in_channels, N[, N]). Every layer, the last included, has the
    activation. Trial k draws the MLP's streams: W_l from the MLP's tensor of layer l (delta-orthogonal:
    exactly the MLP's orthogonal W_l of widths c_in x c_out), b_l, x and y from the MLP's.
    """

    depth: int
    channels: int
    size: Any
    ndim: int = 2
    in_channels: int | None = None
    kernel_size: int = 3
    padding: str = "circular"
    activation: str = "tanh"
    init: str = "scaled_normal"
    sigma_w: float | None = None
    gain: float | None = None
    bias_init: str | None = None
    sigma_b: float | None = None
    bias_value: float | None = None
    loss: str = "mse"
    alpha: float | None = None
    sigma_w2: float | None = None
    sigma_b2: float | None = None
    model: str = field(default="cnn", init=False)

    def __post_init__(self) -> None:
        check_int("depth", self.depth)
        check_int("channels", self.channels)
        if isinstance(self.ndim, bool) or self.ndim not in (1, 2):
            raise ValueError(f"ndim: expected 1 or 2 spatial dimensions, got {self.ndim!r}")
        size = self.size
        if isinstance(size, (tuple, list)):
            if len(size) != self.ndim or len(set(size)) != 1:
                raise ValueError(f"size: expected N or a tuple of {self.ndim} equal sizes (ndim={self.ndim}), "
                                 f"got {size!r}")
            size = size[0]
        object.__setattr__(self, "size", check_int("size", size))
        if self.in_channels is not None:
            check_int("in_channels", self.in_channels)
        k = check_int("kernel_size", self.kernel_size)
        if k % 2 == 0:
            raise ValueError(f"kernel_size: must be odd (same padding at stride 1), got {k}")
        check_choice("padding", self.padding, PADDINGS)
        check_choice("activation", self.activation, NAMES)
        if self.init in ("orthogonal", "identity", "constant"):
            raise ValueError(f"init: {self.init!r} is not a CNN init; for orthogonal convolutions use "
                             "'delta_orthogonal'; choose one of " + ", ".join(CNN_INITS))
        check_choice("init", self.init, CNN_INITS)
        check_choice("loss", self.loss, LOSSES)
        if self.bias_init is not None:
            check_choice("bias_init", self.bias_init, BIAS_INITS)
        for name in ("gain", "bias_value"):
            if getattr(self, name) is not None:
                check_float(name, getattr(self, name))
        self.init_scale, self.bias_init_scale  # noqa: B018  # refuse a scale argument the inits do not use
        check_alpha(self.alpha, self.activation)

    @property
    def init_scale(self) -> float:
        """The one number that scales the weights (``delta_orthogonal`` is scaled as ``orthogonal``)."""
        std, name = given_scale("sigma_w", self.sigma_w, self.sigma_w2)
        init = "orthogonal" if self.init == "delta_orthogonal" else self.init
        return weight_scale(init, std, self.gain, None, name)

    @property
    def dims(self) -> np.ndarray:
        """Channels c_0 .. c_L as an int64 array."""
        c0 = self.channels if self.in_channels is None else self.in_channels
        return np.array([c0] + [self.channels] * self.depth, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        """The spatial shape, (N,) or (N, N)."""
        return (self.size,) * self.ndim

    @property
    def taps(self) -> int:
        """K = k^D, the taps of a kernel."""
        return int(self.kernel_size ** self.ndim)

    def layer_inits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-layer (weight kind, weight scale, bias kind, bias scale) arrays (ORTHOGONAL: delta-orthogonal)."""
        dims, taps, scale = self.dims, self.taps, self.init_scale
        if self.init == "delta_orthogonal":
            w = [(ORTHOGONAL, scale)] * self.depth
        else:
            w = [weight_kind(self.init, int(dims[l]) * taps, int(dims[l + 1]) * taps, scale)
                 for l in range(self.depth)]
        b = [bias_kind(*self.bias_init_scale)] * self.depth
        return (np.array([k for k, _ in w], dtype=np.int64), np.array([s for _, s in w], dtype=np.float64),
                np.array([k for k, _ in b], dtype=np.int64), np.array([s for _, s in b], dtype=np.float64))


def geometry(shape: tuple[int, ...], kernel_size: int, padding: str) -> tuple[np.ndarray, np.ndarray]:
    """The kernels' position tables: ``src`` (P, K) and the neighbour ``pairs`` (M, 2).

    Parameters
    ----------
    shape : (N,) or (N, N)
    kernel_size : int
    padding : {"circular", "zeros"}

    Returns
    -------
    src : int64 array (P, K)
        Input position read by output position p under tap t (t in PyTorch's kernel order), -1 for a zero pad.
    pairs : int64 array (M, 2)
        (p, p') with p' the next position along one axis, not wrapping.
    """
    r = kernel_size // 2
    grid = list(itertools.product(*(range(n) for n in shape)))
    strides = [int(np.prod(shape[a + 1:])) for a in range(len(shape))]
    offsets = list(itertools.product(range(-r, r + 1), repeat=len(shape)))
    src = np.empty((len(grid), len(offsets)), dtype=np.int64)
    pairs = []
    for p, pos in enumerate(grid):
        for t, off in enumerate(offsets):
            q = [i + o for i, o in zip(pos, off, strict=True)]
            if padding == "zeros" and any(not 0 <= v < n for v, n in zip(q, shape, strict=True)):
                src[p, t] = -1
            else:
                src[p, t] = sum((v % n) * s for v, n, s in zip(q, shape, strides, strict=True))
        for a, n in enumerate(shape):
            if pos[a] + 1 < n:
                pairs.append((p, p + strides[a]))
    return src, np.array(pairs, dtype=np.int64).reshape(-1, 2)


def cnn_net(dims: np.ndarray, shape: tuple[int, ...], kernel_size: int, padding: str, activation: str,
            alpha: float | None, loss: str, dtype: str) -> cpu_cnn.Net:
    """The CNN kernels' :class:`~fastgrad.kernels.cpu_cnn.Net`."""
    _, a = activation_params("activation", activation, alpha)
    src, pairs = geometry(shape, kernel_size, padding)
    return cpu_cnn.Net(np.asarray(dims, dtype=np.int64), src, pairs, loop(activation, dtype), a, LOSS_CODES[loss])


def cnn(spec: CNN, dtype: str = "float64") -> tuple[cpu_cnn.Net, cpu_cnn.Init]:
    """A CNN spec's kernel arguments."""
    net = cnn_net(spec.dims, spec.shape, spec.kernel_size, spec.padding, spec.activation, spec.alpha, spec.loss,
                  dtype)
    w_kind, w_scale, b_kind, b_scale = spec.layer_inits()
    return net, cpu_cnn.Init(draw_choice(w_kind, dtype), w_kind, w_scale, b_kind, b_scale, (spec.taps - 1) // 2)


def cnn_stats(trials: int, depth: int, dtype: np.dtype) -> cpu_cnn.Stats:
    """Empty output rows: five (trials, depth) arrays."""
    return cpu_cnn.Stats(*(np.empty((trials, depth), dtype=dtype) for _ in STATISTICS))


def to_kernel(W: np.ndarray) -> np.ndarray:
    """PyTorch's weights (T, c_out, c_in, k[, k]) as the kernel's (T, K c_in c_out), tap-major."""
    t, c_out, c_in = W.shape[:3]
    return np.ascontiguousarray(W.reshape(t, c_out, c_in, -1).transpose(0, 3, 2, 1)).reshape(t, -1)


def from_kernel(w: np.ndarray, c_in: int, c_out: int, kernel: tuple[int, ...]) -> np.ndarray:
    """The kernel's weights (T, K c_in c_out) as PyTorch's (T, c_out, c_in, k[, k])."""
    t = w.shape[0]
    taps = int(np.prod(kernel))
    return np.ascontiguousarray(w.reshape(t, taps, c_in, c_out).transpose(0, 3, 2, 1)).reshape(t, c_out, c_in,
                                                                                                   *kernel)


def maps_to_kernel(x: np.ndarray) -> np.ndarray:
    """Maps (T, B, c, N[, N]) as the kernel's (T, B, P, c)."""
    t, batch, c = x.shape[:3]
    return np.ascontiguousarray(x.reshape(t, batch, c, -1).transpose(0, 1, 3, 2))


def maps_from_kernel(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The kernel's maps (T, B, P, c) as (T, B, c, N[, N])."""
    t, batch, _, c = x.shape
    return np.ascontiguousarray(x.transpose(0, 1, 3, 2)).reshape(t, batch, c, *shape)


def _cnn_arrays(W: Any, b: Any, x: Any, y: Any, padding: str) -> tuple[np.ndarray, int, tuple[int, ...],
                                                                         np.ndarray, np.ndarray, np.ndarray,
                                                                         np.ndarray]:
    """Validate :func:`cnn_backprop`'s arrays: channels, kernel size, spatial shape, packed w and b, x and y."""
    check_choice("padding", padding, PADDINGS)
    x = np.asarray(x)
    if x.ndim not in (4, 5):
        raise ValueError(f"x: expected (T, B, c_in, N) or (T, B, c_in, N, N), got shape {x.shape}")
    x = check_array("x", x, x.ndim)
    dt = x.dtype
    nd = x.ndim - 3
    trials, batch, c_in = x.shape[:3]
    shape = tuple(int(n) for n in x.shape[3:])
    if nd == 2 and shape[0] != shape[1]:
        raise ValueError(f"x: 2-D inputs must be N x N, got {shape}")
    if isinstance(W, np.ndarray) and W.ndim == nd + 4:
        w_list = [check_array("W", W, nd + 4, dt)[:, l] for l in range(W.shape[1])]
    elif isinstance(W, Sequence) and not isinstance(W, np.ndarray) and len(W) > 0:
        w_list = [check_array(f"W[{l}]", v, nd + 3, dt) for l, v in enumerate(W)]
    else:
        raise ValueError(f"W: expected an array (T, L, c, c, k[, k]) or a list of L arrays (T, c_out, c_in, k[, k]) "
                         f"for {nd}-D inputs")
    bs, b_flat = layers("b", b, True, dt)
    if len(bs) != len(w_list):
        raise ValueError(f"b: {len(bs)} layers, but W has {len(w_list)}")
    kernel = tuple(int(n) for n in w_list[0].shape[3:])
    k = kernel[0]
    if len(set(kernel)) != 1 or k % 2 == 0:
        raise ValueError(f"W: kernels must be k or k x k with k odd, got {kernel}")
    dims = [c_in]
    for l, (w, v) in enumerate(zip(w_list, bs, strict=True)):
        if w.shape[0] != trials or w.shape[2] != dims[-1] or tuple(w.shape[3:]) != kernel:
            raise ValueError(f"W[{l}]: expected shape ({trials}, c_out, {dims[-1]}, {', '.join(map(str, kernel))}), "
                             f"got {w.shape}")
        if v.shape != (trials, w.shape[1]):
            raise ValueError(f"b[{l}]: expected shape {(trials, w.shape[1])}, got {v.shape}")
        dims.append(int(w.shape[1]))
    y = check_array("y", y, x.ndim, dt)
    if y.shape != (trials, batch, dims[-1], *shape):
        raise ValueError(f"y: expected shape {(trials, batch, dims[-1], *shape)}, got {y.shape}")
    w_flat = np.concatenate([to_kernel(w) for w in w_list], axis=1)
    return (np.array(dims, dtype=np.int64), k, shape, w_flat, np.ascontiguousarray(b_flat), maps_to_kernel(x),
            maps_to_kernel(y))


def cnn_backprop(W: np.ndarray | Sequence[np.ndarray], b: np.ndarray | Sequence[np.ndarray], x: np.ndarray,
                 y: np.ndarray, activation: str = "tanh", loss: str = "mse", padding: str = "circular",
                 alpha: float | None = None, threads: int | None = None) -> Result:
    """Per-layer gradient statistics of given CNNs, one per trial.

    Parameters
    ----------
    W : list of L arrays (T, c_out, c_in, k) / (T, c_out, c_in, k, k), or one array (T, L, c, c, k[, k])
        PyTorch's layout (``conv1d``/``conv2d`` weights), cross-correlation.
    b : list of L arrays (T, c_out), or one array (T, L, c)
    x : array (T, B, c_in, N) or (T, B, c_in, N, N)
    y : array (T, B, c_L, N[, N])
        Targets (``mse``) or the back-projection g (``probe``).
    activation : str
    loss : {"mse", "probe"}
    padding : {"circular", "zeros"}
    alpha : float, optional
    threads : int, optional

    Returns
    -------
    Result
        ``grad_w``, ``grad_b``, ``delta``, ``q``, ``corr``, each (T, L).
    """
    check_choice("loss", loss, LOSSES)
    activation_params("activation", activation, alpha)
    check_alpha(alpha, activation)
    dims, k, shape, w, bf, xk, yk = _cnn_arrays(W, b, x, y, padding)
    trials, batch = xk.shape[:2]
    dt = xk.dtype
    net = cnn_net(dims, shape, k, padding, activation, alpha, loss, dt.name)
    depth = dims.size - 1
    none = np.zeros(depth, dtype=np.int64)  # no draws: given arrays
    init = cpu_cnn.Init(draw_choice([NORMAL], dt.name), none, np.zeros(depth), none, np.zeros(depth), 0)
    stats = cnn_stats(trials, depth, dt)
    with threads_context(threads) as n_threads:
        t0 = time.perf_counter()
        run_blocks(lambda lo, hi: cpu_cnn.trials(net, init, 0, _NO_IDS, batch, stats, w, bf, xk, yk,
                                                 cpu_cnn.GIVEN_RUN, lo, hi), 0, trials, n_threads)
        seconds = time.perf_counter() - t0
    return Result(dict(stats._asdict()), trials=trials, batch=batch, dtype=dt.name, version=__version__,
                  threads=n_threads, run_seconds=seconds)


def cnn_trial_arrays(spec: CNN, seed: int, trials: int | np.ndarray, batch: int,
                     dtype: str = "float64") -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Draw the weights, biases, inputs and targets of CNN trials, as :func:`fastgrad.run` does.

    Returns
    -------
    W : list of L arrays (T, c_out, c_in, k[, k])
        PyTorch's layout.
    b : list of L arrays (T, c_out)
    x : array (T, B, c_in, N[, N])
    y : array (T, B, c, N[, N])
        Targets for ``mse``, the back-projection g for ``probe``.
    """
    idx, batch, seed, dt = trial_args(seed, trials, batch, dtype)
    dims, taps, t = spec.dims, spec.taps, idx.size
    positions = spec.size ** spec.ndim
    n_w, n_b = (int(v) for v in cpu_cnn.sizes(dims, taps))
    w = np.empty((t, n_w), dtype=dt)
    b = np.empty((t, n_b), dtype=dt)
    x = np.empty((t, batch, positions, int(dims[0])), dtype=dt)
    y = np.empty((t, batch, positions, int(dims[-1])), dtype=dt)
    net, init = cnn(spec, dt.name)
    cpu_cnn.trials(net, init, seed, idx, batch, cnn_stats(0, spec.depth, dt), w, b, x, y, cpu_cnn.DRAW_KEEP, 0, t)
    kernel = (spec.kernel_size,) * spec.ndim
    W, B = [], []
    woff = boff = 0
    for l in range(spec.depth):
        c_in, c_out = int(dims[l]), int(dims[l + 1])
        W.append(from_kernel(w[:, woff:woff + taps * c_in * c_out], c_in, c_out, kernel))
        B.append(np.ascontiguousarray(b[:, boff:boff + c_out]))
        woff += taps * c_in * c_out
        boff += c_out
    return W, B, maps_from_kernel(x, spec.shape), maps_from_kernel(y, spec.shape)


class CNNModel(Model):
    """The CNN's entry in the model table."""

    name = "cnn"
    spec = CNN
    order = 7
    main_metric = "delta"
    cpu_only = "no CUDA kernel for the CNN yet (its im2col and products are written for the CPU)"
    statistics = 5
    default_chunk = 256
    spectrum = True
    trainable = True
    mean_field = True

    def plan(self, spec: CNN, trials: int, batch: int, seed: int, dt: np.dtype, first: int) -> Plan:
        net, init = cnn(spec, dt.name)
        stats = cnn_stats(trials, spec.depth, dt)
        ids = np.arange(first, first + trials, dtype=np.int64)
        w, b, x, y = (np.empty((0,) * n, dtype=dt) for n in (2, 2, 4, 4))

        def block(lo: int, hi: int) -> None:
            cpu_cnn.trials(net, init, seed, ids, batch, stats, w, b, x, y, cpu_cnn.DRAW_RUN, lo, hi)

        return dict(stats._asdict()), block, (cpu_cnn.trials, dt.name, net.act, init.draw)

    def working(self, spec: CNN, batch: int) -> int:
        positions = spec.size ** spec.ndim
        n_w, n_b = cpu_cnn.sizes(spec.dims, spec.taps)
        widest = int(spec.dims.max())
        return int(n_w + n_b + batch * positions * (spec.depth * spec.channels + (6 + spec.taps) * widest))

    def trial_arrays(self, spec: CNN, seed: int, trials: int | np.ndarray, batch: int,
                     dtype: str) -> tuple[Any, ...]:
        return cnn_trial_arrays(spec, seed, trials, batch, dtype)

    def spectrum_block(self, spec: CNN, trials: int, batch: int, seed: int, dtype: str, step: int,
                       first: int) -> tuple[Block, np.ndarray, Any]:
        if step != 1:
            raise ValueError("step: applies to recurrent models (RNN, LSTM, GRU); a CNN's J is dh_L/dh_0")
        net, init = cnn(spec, dtype)
        positions = spec.size ** spec.ndim
        sv = np.empty((trials, positions * int(min(spec.dims[0], spec.dims[-1]))), dtype=dtype)

        def block(lo: int, hi: int) -> None:
            cpu_cnn.spectrum_generated(net, init, seed, first, batch, sv, lo, hi)

        return block, sv, (cpu_cnn.spectrum_generated, dtype, net.act, init.draw)

    def train_setup(self, spec: CNN, data: Any, classification: bool, dt: np.dtype) -> TrainSetup:
        positions = spec.size ** spec.ndim
        if data.x_train.ndim != 2 or data.features % positions:
            raise ValueError(f"data: a CNN of {spec.shape} positions needs inputs (N, in_channels * {positions}), "
                             f"channel-major maps flattened (the 8x8 digits: (N, 64)); got {data.x_train.shape}")
        spec = dataclasses.replace(spec, in_channels=data.features // positions)
        net, init = cnn(spec, dt.name)
        net = net._replace(loss=TRAIN_XENT if classification else TRAIN_MSE)
        c0 = int(spec.dims[0])

        def maps(a: np.ndarray) -> np.ndarray:  # (N, c_0 P) channel-major to the kernel's (N, P c_0)
            return np.ascontiguousarray(a.reshape(a.shape[0], c0, positions).transpose(0, 2, 1), dtype=dt).reshape(
                a.shape[0], c0 * positions)

        arrays = (maps(data.x_train), np.ascontiguousarray(data.y_train, dtype=dt), maps(data.x_test),
                  np.ascontiguousarray(data.y_test, dtype=dt))
        n_w, n_b = cpu_cnn.sizes(spec.dims, spec.taps)
        c, n_out = int(spec.dims[-1]), int(data.outputs)

        def call(seed: int, arrays: Any, opt: Any, epochs: int, batch: int, record: Any, lo: int, hi: int) -> None:
            cpu_cnn.train(net, init, seed, 0, arrays, opt, epochs, batch, record, lo, hi)

        return TrainSetup(spec, arrays, int(n_w + n_b + c * n_out + n_out), (spec.depth + 1, spec.depth + 1), 0, call)

    def warmup_specs(self, activation: str) -> list[CNN]:
        return [CNN(depth=2, channels=2, size=3, ndim=1, activation=activation)]


PUBLIC = ("CNN", "cnn_backprop", "cnn_trial_arrays")
"""What ``import fastgrad`` exports of this module."""
MODEL = register(CNNModel())
