"""The deep fully connected network (MLP): its spec, lowering, runs, given arrays, trial arrays, spectra, training.

Definitions in docs/architecture.md ("MLP"); kernels in ``kernels/cpu_mlp.py`` (and
``kernels/cuda_mlp.py``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastgrad.activations import NAMES, loop
from fastgrad.codes import CONSTANT, FACTORED_KINDS, MLP_MSE, MLP_PROBE, NORMAL, TRAIN_MSE, TRAIN_XENT
from fastgrad.executor import Block, run_blocks, run_chunks, threads_context
from fastgrad.explicit import check_array, layers
from fastgrad.initializers import BIAS_INITS, WEIGHT_INITS, bias_kind, weight_kind
from fastgrad.kernels import cpu_mlp, cpu_spectrum, cpu_train
from fastgrad.kernels.draw import draw_choice
from fastgrad.lowering import activation_code
from fastgrad.models.base import Model, Plan, TrainSetup, register
from fastgrad.results import Result
from fastgrad.specs import LOSSES, _Scales, activation_params, check_alpha, check_choice, check_float, check_int
from fastgrad.trials import trial_args
from fastgrad.version import __version__


@dataclass(frozen=True)
class MLP(_Scales):
    """A deep fully connected network, drawn afresh for every trial.

    Parameters
    ----------
    depth : int
        Number of weight layers L (>= 1).
    width : int
        Width of the hidden layers.
    activation : str
        Activation of every layer (see ``fastgrad.activations.NAMES``).
    init : str
        Weight initialiser (see ``fastgrad.initializers.WEIGHT_INITS``); each is scaled by one
        argument, and a scale argument it does not use is refused (see Notes).
    sigma_w : float, optional
        ``normal``: weights N(0, sigma_w^2); ``scaled_normal``: N(0, sigma_w^2 / fan_in);
        ``orthogonal``: sqrt(sigma_w^2) Q; ``identity``: sigma_w I. Default 1.
    sigma_w2 : float, optional
        The same as a variance, sigma_w^2 (the mean-field literature's parameter); give one of the two.
    gain : float, optional
        The scale of the Xavier, He and LeCun inits (times their fan formula; default 1), and a
        synonym of ``sigma_w`` for ``orthogonal`` and ``identity``.
    value : float, optional
        Every weight under ``init="constant"`` (default 0); refused with any other init.
    bias_init : str, optional
        ``zeros``, ``normal`` or ``constant``; default ``normal`` if ``sigma_b > 0`` else ``zeros``.
    sigma_b : float, optional
        Bias standard deviation under ``bias_init="normal"``. Default 0; refused with
        ``bias_init="zeros"`` or ``"constant"``.
    sigma_b2 : float, optional
        The same as a variance; give one of the two.
    bias_value : float, optional
        Every bias under ``bias_init="constant"`` (default 0); refused with any other bias init.
    input_width, output_width : int, optional
        n_0 and n_L; default ``width``.
    loss : str
        ``mse`` against N(0, 1) targets or ``probe`` (a random back-projection g ~ N(0, I)).
    last_activation : str, optional
        Activation of the last layer (``linear`` for a linear read-out); default ``activation``.
    alpha : float, optional
        Parameter of ``leaky_relu`` (slope) or ``elu``; their default if None.

    Notes
    -----
    Which argument scales which init (W is (fan_in, fan_out)); any other scale argument is
    refused, with a message naming the one that counts:

    - ``normal``: N(0, sigma_w^2), by ``sigma_w`` or ``sigma_w2`` (default 1);
    - ``scaled_normal``: N(0, sigma_w^2 / fan_in), by ``sigma_w`` or ``sigma_w2``;
    - ``xavier_normal``: N(0, gain^2 2 / (fan_in + fan_out)), ``xavier_uniform``:
      U(-a, a) with a = gain sqrt(6 / (fan_in + fan_out)), ``he_normal``: N(0, gain^2 2 / fan_in),
      ``he_uniform``: a = gain sqrt(6 / fan_in), ``lecun_normal``: N(0, gain^2 / fan_in); by ``gain``
      (default 1);
    - ``orthogonal``: sqrt(sigma_w^2) Q, Q Haar-orthogonal (semi-orthogonal when not square),
      by ``sigma_w`` or ``sigma_w2``, or ``gain`` as a synonym of ``sigma_w`` (one of them);
    - ``identity``: sigma_w I, as ``orthogonal``;
    - ``constant``: every weight = ``value`` (default 0).

    Q's entries have variance 1/n, so orthogonal weights at sigma_w^2 sit on the same
    axis as ``scaled_normal``'s (Pennington et al. 2017; Xiao et al. 2018): mean-field
    theory's chi_1 is the same. For N(0, sigma_w^2 / fan_in) weights use ``scaled_normal``;
    the Xavier, He and LeCun inits refuse ``sigma_w``. Biases: ``sigma_b``/``sigma_b2``
    count under ``bias_init="normal"`` only, ``bias_value`` under ``"constant"`` only.
    """

    depth: int
    width: int
    activation: str = "tanh"
    init: str = "xavier_normal"
    sigma_w: float | None = None
    gain: float | None = None
    value: float | None = None
    bias_init: str | None = None
    sigma_b: float | None = None
    bias_value: float | None = None
    input_width: int | None = None
    output_width: int | None = None
    loss: str = "mse"
    last_activation: str | None = None
    alpha: float | None = None
    sigma_w2: float | None = None
    sigma_b2: float | None = None
    model: str = field(default="mlp", init=False)

    def __post_init__(self) -> None:
        check_int("depth", self.depth)
        check_int("width", self.width)
        for name in ("input_width", "output_width"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name))
        check_choice("activation", self.activation, NAMES)
        if self.last_activation is not None:
            check_choice("last_activation", self.last_activation, NAMES)
        check_choice("init", self.init, WEIGHT_INITS)
        check_choice("loss", self.loss, LOSSES)
        if self.bias_init is not None:
            check_choice("bias_init", self.bias_init, BIAS_INITS)
        for name in ("gain", "value", "bias_value"):
            if getattr(self, name) is not None:
                check_float(name, getattr(self, name))
        self.init_scale, self.bias_init_scale  # noqa: B018  # refuse a scale argument the inits do not use
        check_alpha(self.alpha, self.activation, getattr(self, "last_activation", None))

    @property
    def dims(self) -> np.ndarray:
        """Layer widths n_0 .. n_L as an int64 array."""
        n0 = self.width if self.input_width is None else self.input_width
        nl = self.width if self.output_width is None else self.output_width
        return np.array([n0] + [self.width] * (self.depth - 1) + [nl], dtype=np.int64)

    def layer_inits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per-layer (weight kind, weight scale, bias kind, bias scale) arrays."""
        dims = self.dims
        scale = self.init_scale
        w = [weight_kind(self.init, int(dims[l]), int(dims[l + 1]), scale) for l in range(self.depth)]
        b = [bias_kind(*self.bias_init_scale)] * self.depth
        return (np.array([k for k, _ in w], dtype=np.int64), np.array([s for _, s in w]),
                np.array([k for k, _ in b], dtype=np.int64), np.array([s for _, s in b]))


MLP_LOSSES = {"mse": MLP_MSE, "probe": MLP_PROBE}


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


def mlp_stats(trials: int, depth: int, dtype: np.dtype) -> cpu_mlp.Stats:
    """Empty output rows of the MLP kernels: four (trials, depth) arrays of ``dtype``."""
    return cpu_mlp.Stats(*(np.empty((trials, depth), dtype=dtype) for _ in range(4)))


SCALE_FIELDS = ("sigma_w", "sigma_w2", "sigma_b", "sigma_b2")
"""The MLP fields that set only the scales of the draws: cells differing in nothing else share them."""


def _mlp_arrays(W: np.ndarray | Sequence[np.ndarray], b: np.ndarray | Sequence[np.ndarray], x: np.ndarray,
                y: np.ndarray, activation: str, loss: str, last_activation: str | None,
                alpha: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate the arguments of :func:`mlp_backprop`; return the widths, the packed w and b, and x and y."""
    check_choice("loss", loss, ("mse", "probe"))
    activation_params("activation", activation, alpha)
    if last_activation is not None:
        activation_params("last_activation", last_activation, alpha)
    check_alpha(alpha, activation, last_activation)
    x = check_array("x", x, 3)
    dt = x.dtype
    ws, w_flat = layers("W", W, False, dt)
    bs, b_flat = layers("b", b, True, dt)
    y = check_array("y", y, 3, dt)
    trials, batch, n0 = x.shape
    depth = len(ws)
    if len(bs) != depth:
        raise ValueError(f"b: {len(bs)} layers, but W has {depth}")
    dims = [n0]
    for l, (w, v) in enumerate(zip(ws, bs, strict=False)):
        if w.shape[0] != trials or v.shape[0] != trials:
            raise ValueError(f"W[{l}], b[{l}]: expected {trials} trials (from x), got {w.shape[0]} and {v.shape[0]}")
        if w.shape[1] != dims[-1] and l == 0:
            raise ValueError(f"x, W[0]: x has {dims[0]} features per row but W[0] has {w.shape[1]} rows "
                             f"(shape {w.shape[1:]}); they must agree")
        if w.shape[1] != dims[-1]:
            raise ValueError(f"W[{l}]: expected {dims[-1]} rows (the previous width), got shape {w.shape[1:]}")
        if v.shape[1] != w.shape[2]:
            raise ValueError(f"b[{l}]: expected width {w.shape[2]}, got {v.shape[1]}")
        dims.append(w.shape[2])
    if y.shape != (trials, batch, dims[-1]):
        raise ValueError(f"y: expected shape {(trials, batch, dims[-1])}, got {y.shape}")
    return np.array(dims, dtype=np.int64), w_flat, b_flat, x, y


def mlp_backprop(
    W: np.ndarray | Sequence[np.ndarray],
    b: np.ndarray | Sequence[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    activation: str = "tanh",
    loss: str = "mse",
    last_activation: str | None = None,
    alpha: float | None = None,
    threads: int | None = None,
) -> Result:
    """Per-layer gradient statistics of given MLPs, one per trial.

    Parameters
    ----------
    W : array (T, L, n, n) or list of L arrays (T, n_{l-1}, n_l)
        Weights; ``z_l = h_{l-1} @ W_l + b_l``.
    b : array (T, L, n) or list of L arrays (T, n_l)
        Biases.
    x : array (T, B, n_0)
        Inputs.
    y : array (T, B, n_L)
        Targets (``mse``) or the back-projection g (``probe``).
    activation : str
        Activation of every layer.
    loss : {"mse", "probe"}
    last_activation : str, optional
        Activation of the last layer; default ``activation``.
    alpha : float, optional
        Parameter of ``leaky_relu`` or ``elu``.
    threads : int, optional
        CPU threads; default all.

    Returns
    -------
    Result
        ``grad_w``, ``grad_b``, ``delta``, ``q``, each (T, L), in the input dtype.
    """
    dims, w_flat, b_flat, x, y = _mlp_arrays(W, b, x, y, activation, loss, last_activation, alpha)
    trials, batch, _ = x.shape
    depth = dims.size - 1
    dt = x.dtype
    net = mlp_net(dims, activation, last_activation, alpha, loss, dt.name)
    stats = mlp_stats(trials, depth, dt)
    with threads_context(threads) as n_threads:
        t0 = time.perf_counter()
        run_blocks(lambda lo, hi: cpu_mlp.explicit(net, w_flat, b_flat, x, y, stats, lo, hi), 0, trials, n_threads)
        seconds = time.perf_counter() - t0
    return Result(dict(stats._asdict()), trials=trials, batch=batch, dtype=dt.name, version=__version__,
                  threads=n_threads, run_seconds=seconds)


def mlp_trial_arrays(
    spec: Any, seed: int, trials: int | np.ndarray, batch: int, dtype: str = "float64"
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Draw the weights, biases, inputs and targets of MLP (or residual MLP) trials.

    Parameters
    ----------
    spec : MLP or ResMLP
        A ResMLP's trial k is drawn as its plain MLP's (``spec.plain()``): the same arrays.
    seed : int
    trials : int or array of int
        A number of trials (0 .. trials - 1) or the trial indices to draw.
    batch : int
    dtype : {"float32", "float64"}

    Returns
    -------
    W : list of L arrays (T, n_{l-1}, n_l)
    b : list of L arrays (T, n_l)
    x : array (T, B, n_0)
    y : array (T, B, n_L)
        Targets for ``mse``, the back-projection g for ``probe``.
    """
    idx, batch, seed, dt = trial_args(seed, trials, batch, dtype)
    plain = getattr(spec, "plain", None)  # a ResMLP draws its plain MLP's arrays
    _, init = mlp(plain() if plain is not None else spec, dt.name)
    dims = spec.dims
    t = idx.size
    woff = np.concatenate([[0], np.cumsum(dims[:-1] * dims[1:])])
    boff = np.concatenate([[0], np.cumsum(dims[1:])])
    w = np.empty((t, woff[-1]), dtype=dt)
    b = np.empty((t, boff[-1]), dtype=dt)
    x = np.empty((t, batch, dims[0]), dtype=dt)
    y = np.empty((t, batch, dims[-1]), dtype=dt)
    cpu_mlp.draw_arrays(init, dims, seed, idx, w, b, x, y)
    W = [np.ascontiguousarray(w[:, woff[l]:woff[l + 1]].reshape(t, dims[l], dims[l + 1])) for l in range(spec.depth)]
    B = [np.ascontiguousarray(b[:, boff[l]:boff[l + 1]]) for l in range(spec.depth)]
    return W, B, x, y


def _run_cuda(spec: MLP, trials: int, batch: int, seed: int, dt: np.dtype, chunk: int | None,
              first: int = 0) -> dict[str, np.ndarray]:
    """Trials ``first ..`` on the GPU; statistics copied back once per chunk of trials."""
    from numba import cuda

    from fastgrad.gpu import THREADS_PER_BLOCK, chunk_size
    from fastgrad.kernels import cuda_mlp

    net, init = mlp(spec)
    w_kind, w_scale, b_kind, b_scale = init.w_kind, init.w_scale, init.b_kind, init.b_scale
    if np.any(np.isin(w_kind, FACTORED_KINDS)):
        raise ValueError("init: 'orthogonal' is not available on backend='cuda' (it needs a QR per layer); "
                         "use backend='cpu'")
    dims = net.dims
    alpha = net.alpha
    act = np.full(spec.depth, activation_code(net.hidden), dtype=np.int64)
    act[-1] = activation_code(net.last)
    woff = np.concatenate([[0], np.cumsum(dims[:-1] * dims[1:])]).astype(np.int64)
    boff = np.concatenate([[0], np.cumsum(dims[1:])]).astype(np.int64)
    hoff = np.concatenate([[0], np.cumsum(batch * dims)]).astype(np.int64)
    half = batch * int(dims.max())
    sizes = (int(woff[-1]), int(boff[-1]), int(hoff[-1]), int(hoff[-1] - hoff[1]), 2 * half)
    n = chunk_size(sum(sizes) * dt.itemsize, trials, chunk)
    consts = [cuda.to_device(a) for a in (dims, woff, boff, hoff, w_kind, w_scale, b_kind, b_scale, act, alpha)]
    slabs = [cuda.device_array((n, s), dtype=dt) for s in sizes]
    out = {m: np.empty((trials, spec.depth), dtype=dt) for m in ("grad_w", "grad_b", "delta", "q")}
    dev_out = {m: cuda.device_array((n, spec.depth), dtype=dt) for m in out}
    loss = net.loss
    for lo in range(0, trials, n):
        m = min(n, trials - lo)
        cuda_mlp.mlp_generated[m, THREADS_PER_BLOCK](
            seed, first + lo, batch, *consts, loss, *slabs, dev_out["grad_w"], dev_out["grad_b"], dev_out["delta"],
            dev_out["q"])
        for key in out:
            out[key][lo:lo + m] = dev_out[key][:m].copy_to_host()
    return out


def mlp_jacobian(W: np.ndarray | Sequence[np.ndarray], b: np.ndarray | Sequence[np.ndarray], x: np.ndarray,
                 activation: str = "tanh", last_activation: str | None = None, alpha: float | None = None,
                 threads: int | None = None) -> np.ndarray:
    """J = dh_L/dh_0 of given MLPs at the first row of each trial's x, as row-vector Jacobians (T, n_0, n_L).

    ``J[t][i, k] = dh_L[k] / dh_0[i]``; its transpose is the usual (n_L, n_0) Jacobian.

    Parameters
    ----------
    W, b, x, activation, last_activation, alpha, threads
        As for :func:`fastgrad.mlp_backprop` (no targets needed).

    Returns
    -------
    numpy.ndarray
        Float64 (T, n_0, n_L).
    """
    x = np.asarray(x)
    dims, w_flat, b_flat, x, _ = _mlp_arrays(W, b, x, np.zeros(x.shape[:2] + (np.asarray(W[-1]).shape[-1],),
                                                                 dtype=x.dtype),
                                             activation, "mse", last_activation, alpha)
    net = mlp_net(dims, activation, last_activation, alpha, "mse", x.dtype.name)
    jac = np.empty((x.shape[0], int(dims[0]), int(dims[-1])))
    with threads_context(threads) as n_threads:
        run_blocks(lambda lo, hi: cpu_spectrum.mlp_explicit(net, w_flat, b_flat, x, jac, lo, hi), 0, x.shape[0],
                   n_threads)
    return jac


class MLPModel(Model):
    """The MLP's entry in the model table."""

    name = "mlp"
    spec = MLP
    order = 0
    main_metric = "delta"
    statistics = 4
    spectrum = True
    trainable = True
    mean_field = True
    scale_fields = SCALE_FIELDS

    def plan(self, spec: MLP, trials: int, batch: int, seed: int, dt: np.dtype, first: int) -> Plan:
        net, init = mlp(spec, dt.name)
        stats = mlp_stats(trials, spec.depth, dt)

        def block(lo: int, hi: int) -> None:
            cpu_mlp.generated(net, init, seed, first, batch, stats, lo, hi)

        return dict(stats._asdict()), block, (cpu_mlp.generated, dt.name, net.hidden, net.last, init.draw)

    def working(self, spec: MLP, batch: int) -> int:
        dims = [int(d) for d in spec.dims]
        return sum(a * b + b for a, b in zip(dims[:-1], dims[1:], strict=True)) + 4 * batch * sum(dims)

    def trial_arrays(self, spec: MLP, seed: int, trials: int | np.ndarray, batch: int,
                     dtype: str) -> tuple[Any, ...]:
        return mlp_trial_arrays(spec, seed, trials, batch, dtype)

    def run_cuda(self, spec: MLP, trials: int, batch: int, seed: int, dt: np.dtype, chunk: int | None,
                 first: int) -> dict[str, np.ndarray]:
        return _run_cuda(spec, trials, batch, seed, dt, chunk, first)

    def spectrum_block(self, spec: MLP, trials: int, batch: int, seed: int, dtype: str, step: int,
                       first: int) -> tuple[Block, np.ndarray, Any]:
        if step != 1:
            raise ValueError("step: applies to recurrent models (RNN, LSTM, GRU); an MLP's J is dh_L/dh_0")
        net, init = mlp(spec, dtype)
        sv = np.empty((trials, int(min(spec.dims[0], spec.dims[-1]))), dtype=dtype)

        def block(lo: int, hi: int) -> None:
            cpu_spectrum.mlp_generated(net, init, seed, first, batch, sv, lo, hi)

        return block, sv, (cpu_spectrum.mlp_generated, dtype, net.hidden, net.last, init.draw)

    def train_setup(self, spec: MLP, data: Any, classification: bool, dt: np.dtype) -> TrainSetup:
        return dense_training(self, spec, data, classification, dt, mlp_training, record_grad_h=False)

    def warmup_specs(self, activation: str) -> list[MLP]:
        return [MLP(depth=2, width=2, activation=activation)]

    def shares_draws(self, specs: list[Any]) -> bool:
        """MLPs equal in every field but :data:`SCALE_FIELDS`, whose weights and biases are all drawn as NORMAL
        (normal, scaled_normal, the Xavier, He and LeCun normals) or CONSTANT (zero biases) tensors."""
        if len(specs) < 2 or not all(type(s) is MLP for s in specs):
            return False
        rest = [{k: v for k, v in dataclasses.asdict(s).items() if k not in SCALE_FIELDS} for s in specs]
        if any(r != rest[0] for r in rest[1:]):
            return False
        for s in specs:
            w_kind, _, b_kind, _ = s.layer_inits()
            if not (np.isin(w_kind, (NORMAL, CONSTANT)).all() and np.isin(b_kind, (NORMAL, CONSTANT)).all()):
                return False
        return True

    def run_cells(self, specs: list[MLP], trials: int, batch: int, seed: int, dt: np.dtype, threads: int | None,
                  chunk: int, first_trial: int) -> list[Result]:
        """Trial k's standard normals, inputs and targets are drawn once and scaled for every spec, as
        ``fill_normal`` scales them in a run of the spec alone (so each result is bitwise that run's);
        working memory is one trial's draws and activations per thread."""
        net, init = mlp(specs[0], dt.name)
        inits = [s.layer_inits() for s in specs]
        w_kind, w_scale, b_kind, b_scale = (np.ascontiguousarray(np.stack([i[k] for i in inits])) for k in range(4))
        depth = specs[0].depth
        out = [np.empty((len(specs), trials, depth), dtype=dt) for _ in range(4)]

        def block(lo: int, hi: int) -> None:
            cpu_mlp.generated_cells(net, init, w_kind, w_scale, b_kind, b_scale, seed, first_trial, batch, *out,
                                    lo, hi)

        key = (cpu_mlp.generated_cells, dt.name, net.hidden, net.last, init.draw)
        n_threads, compile_seconds, run_seconds = run_chunks(block, key, trials, chunk, threads)
        names = ("grad_w", "grad_b", "delta", "q")
        return [Result({name: np.ascontiguousarray(arr[c]) for name, arr in zip(names, out, strict=True)},
                       spec=spec, seed=seed, trials=trials, batch=batch, dtype=dt.name, backend="cpu",
                       version=__version__, threads=n_threads, compile_seconds=compile_seconds / len(specs),
                       run_seconds=run_seconds / len(specs))
                for c, spec in enumerate(specs)]


def dense_training(model: Model, spec: Any, data: Any, classification: bool, dt: np.dtype, lower: Any,
                   record_grad_h: bool) -> TrainSetup:
    """The MLP training kernel's set-up for an MLP or a residual MLP (``lower``: its training lowering)."""
    if data.x_train.ndim != 2:
        raise ValueError(f"data: an MLP or ResMLP needs inputs of shape (N, features), got {data.x_train.shape}")
    spec = dataclasses.replace(spec, input_width=data.features, output_width=data.outputs,
                               last_activation=spec.last_activation or ("linear" if classification else None))
    net, init = lower(spec, classification, dt.name)
    dims = spec.dims
    arrays = cpu_train.Data(*(np.ascontiguousarray(a, dtype=dt)
                              for a in (data.x_train, data.y_train, data.x_test, data.y_test)))

    def call(seed: int, arrays: Any, opt: Any, epochs: int, batch: int, record: Any, lo: int, hi: int) -> None:
        cpu_train.train_mlp(net, init, seed, 0, arrays, opt, epochs, batch, record, lo, hi)

    steps = spec.depth if record_grad_h else 0
    return TrainSetup(spec, tuple(arrays), int(np.sum(dims[:-1] * dims[1:]) + np.sum(dims[1:])),
                      (spec.depth, spec.depth), steps, call)


PUBLIC = ("MLP", "mlp_backprop", "mlp_trial_arrays", "mlp_jacobian")
"""What ``import fastgrad`` exports of this module."""
MODEL = register(MLPModel())
