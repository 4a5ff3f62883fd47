"""Transformers at initialisation: spec, lowering, runs, explicit and trial arrays.

A stack of L encoder blocks on T tokens of width d (``kernels/cpu_transformer.py`` holds the
definitions and passes; docs/transformers.md the measurements). Norm placement (pre, post, none)
and kind (LayerNorm, RMSNorm), the residual branch scale, the causal mask and the init of the
query/key, value/output and MLP matrices are the axes of Xiong et al. (2020), Dong et al. (2021)
and Noci et al. (2022).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fastgrad.activations import NAMES, loop
from fastgrad.codes import MLP_MSE, MLP_PROBE, NORM_NONE, NORM_POST, NORM_PRE, NORMAL, ORTHOGONAL, TRAIN_MSE, TRAIN_XENT
from fastgrad.executor import run_blocks, threads_context
from fastgrad.explicit import check_array
from fastgrad.kernels import cpu_transformer
from fastgrad.kernels.cpu_transformer import STATISTICS
from fastgrad.kernels.draw import draw_choice
from fastgrad.models.base import Model, Plan, TrainSetup, register
from fastgrad.results import Result
from fastgrad.specs import (
    LAYER_NORM_EPS,
    LOSSES,
    activation_params,
    check_alpha,
    check_choice,
    check_float,
    check_int,
    residual_scale,
)
from fastgrad.trials import trial_args
from fastgrad.version import __version__

NORM_PLACES = {"none": NORM_NONE, "pre": NORM_PRE, "post": NORM_POST}
NORM_KINDS = ("layer", "rms")
INITS = ("normal", "xavier_normal", "orthogonal")
SIGMAS = ("sigma_qk2", "sigma_vo2", "sigma_mlp2")


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def norm_eps(kind: str, dtype: str) -> float:
    """The norm's eps, PyTorch's defaults: LayerNorm 1e-5; RMSNorm (``eps=None``) the dtype's machine epsilon.

    Parameters
    ----------
    kind : {"layer", "rms"}
    dtype : {"float32", "float64"}

    Returns
    -------
    float
    """
    return LAYER_NORM_EPS if kind == "layer" else float(np.finfo(dtype).eps)


@dataclass(frozen=True)
class Transformer:
    """L encoder blocks on T tokens of width d: attention with H heads, then an MLP, each a residual branch.

    Parameters
    ----------
    depth, tokens, width, heads : int
        L, T, d and H (d divisible by H; each head has d / H dimensions, scores scaled by sqrt(d / H)).
    ratio : int, optional
        The MLP's hidden width is ``ratio * width`` (default 4). Refused with ``mlp=False``.
    activation : str
        The MLP's activation (default gelu, the exact erf form; relu, or any of fastgrad's).
    norm : {"pre", "post", "none"}
        Where the norms sit: inside each branch (``x + a F(N(x))``), after each residual sum
        (``N(x + a F(x))``, the 2017 wiring), or nowhere.
    norm_kind : {"layer", "rms"}, optional
        LayerNorm (eps 1e-5) or RMSNorm (eps = the dtype's machine epsilon: PyTorch's ``eps=None``),
        without affine parameters (default layer). Refused where no norm is applied.
    final_norm : bool, optional
        A norm on the last stream before the loss (default True for ``norm="pre"``, Xiong et al.'s
        pre-LN network; else False). Refused with ``norm="post"``, whose last block ends with one.
    residual : float or "1/sqrt(L)"
        The branch scale a (default 1).
    skip : bool
        The residual connections (default True). Without them a block is ``a F(x)`` (post: ``N(a F(x))``):
        pure attention is ``skip=False, mlp=False, norm="none"``.
    mlp : bool
        The MLP sublayers (default True).
    causal : bool
        Mask keys after the query (default False).
    init : {"normal", "xavier_normal", "orthogonal"}
        ``normal``: W ~ N(0, sigma^2 / fan_in) with sigma^2 ``sigma_qk2`` for W_q, W_k, ``sigma_vo2`` for
        W_v, W_o and ``sigma_mlp2`` for W_1, W_2 (each default 1); ``xavier_normal``: std
        ``gain sqrt(2 / (fan_in + fan_out))``; ``orthogonal``: ``gain`` times a Haar (semi-)orthogonal matrix.
    sigma_qk2, sigma_vo2, sigma_mlp2 : float, optional
        ``normal``'s variances (>= 0); ``sigma_qk2=0`` makes every attention uniform.
    gain : float, optional
        ``xavier_normal``'s and ``orthogonal``'s scale (default 1).
    loss : {"mse", "probe"}
        mse against N(0, 1) targets on every token, or the probe, per sequence, averaged over the batch.
    alpha : float, optional
        The activation's parameter, for those that take one.

    Notes
    -----
    Trial k draws x ~ N(0, 1) (B, T, d) and targets or probes y from tensors 0 and 1, and block l's
    W_q, W_k, W_v, W_o, W_1, W_2 from tensors ``2 + 6 (l - 1) + 0 .. 5`` (``codes.TRANSFORMER_*``):
    the same standard normals under every scale (paired comparisons), and trial k of a deeper net
    shares its first blocks with a shallower one.
    """

    depth: int
    tokens: int
    width: int
    heads: int
    ratio: int | None = None
    activation: str = "gelu"
    norm: str = "pre"
    norm_kind: str | None = None
    final_norm: bool | None = None
    residual: float | str = 1.0
    skip: bool = True
    mlp: bool = True
    causal: bool = False
    init: str = "normal"
    sigma_qk2: float | None = None
    sigma_vo2: float | None = None
    sigma_mlp2: float | None = None
    gain: float | None = None
    loss: str = "mse"
    alpha: float | None = None
    model: str = field(default="transformer", init=False)

    def __post_init__(self) -> None:
        for name in ("depth", "tokens", "width", "heads"):
            check_int(name, getattr(self, name))
        if self.width % self.heads:
            raise ValueError(f"heads: must divide width {self.width}, got {self.heads}")
        for name in ("skip", "mlp", "causal"):
            _check_bool(name, getattr(self, name))
        if self.ratio is not None:
            check_int("ratio", self.ratio)
            if not self.mlp:
                raise ValueError("ratio: not used with mlp=False (no MLP sublayers)")
        check_choice("activation", self.activation, NAMES)
        check_alpha(self.alpha, self.activation)
        if self.alpha is not None and not self.mlp:
            raise ValueError("alpha: not used with mlp=False (no MLP sublayers)")
        check_choice("norm", self.norm, tuple(NORM_PLACES))
        if self.final_norm is not None:
            _check_bool("final_norm", self.final_norm)
            if self.final_norm and self.norm == "post":
                raise ValueError("final_norm: norm='post' already ends each block with a norm")
        if self.norm_kind is not None:
            check_choice("norm_kind", self.norm_kind, NORM_KINDS)
            if self.norm == "none" and not self.final_norm:
                raise ValueError("norm_kind: not used with norm='none' and no final_norm (no norm is applied)")
        residual_scale(self.residual, self.depth)
        check_choice("init", self.init, INITS)
        for name in SIGMAS:
            value = getattr(self, name)
            if value is None:
                continue
            if self.init != "normal":
                raise ValueError(f"{name}: not used by init={self.init!r}, which is scaled by gain")
            if check_float(name, value) < 0:
                raise ValueError(f"{name}: must be >= 0, got {value}")
        if self.sigma_mlp2 is not None and not self.mlp:
            raise ValueError("sigma_mlp2: not used with mlp=False (no MLP sublayers)")
        if self.gain is not None:
            if self.init == "normal":
                raise ValueError("gain: not used by init='normal', which is scaled by sigma_qk2, sigma_vo2, sigma_mlp2")
            if check_float("gain", self.gain) < 0:
                raise ValueError(f"gain: must be >= 0, got {self.gain}")
        check_choice("loss", self.loss, LOSSES)

    @property
    def hidden(self) -> int:
        """The MLP's hidden width m (0 without MLP sublayers)."""
        return (4 if self.ratio is None else self.ratio) * self.width if self.mlp else 0

    @property
    def kind(self) -> str:
        """The norm kind (``layer`` unless given)."""
        return self.norm_kind or "layer"

    @property
    def closing_norm(self) -> bool:
        """Whether a norm acts on the last stream (``final_norm`` resolved)."""
        return self.norm == "pre" if self.final_norm is None else bool(self.final_norm)

    def scales(self) -> np.ndarray:
        """The standard deviations (or orthogonal gains) of W_q, W_k, W_v, W_o, W_1, W_2."""
        d, m = self.width, self.hidden
        fans = [(d, d)] * 4 + [(d, m), (m, d)]
        if self.init == "normal":
            var = [1.0 if v is None else float(v) for v in (self.sigma_qk2, self.sigma_vo2, self.sigma_mlp2)]
            return np.array([math.sqrt(var[k // 2] / max(fi, 1)) for k, (fi, _) in enumerate(fans)])
        gain = 1.0 if self.gain is None else float(self.gain)
        if self.init == "orthogonal":
            return np.full(6, gain)
        return np.array([gain * math.sqrt(2.0 / max(fi + fo, 1)) for fi, fo in fans])


def transformer_net(spec: Transformer, dtype: str = "float64") -> cpu_transformer.Net:
    """A spec's :class:`~fastgrad.kernels.cpu_transformer.Net` (what a trial computes)."""
    _, a = activation_params("activation", spec.activation, spec.alpha)
    return cpu_transformer.Net(loop(spec.activation, dtype), a, spec.heads, NORM_PLACES[spec.norm],
                               spec.kind == "rms", norm_eps(spec.kind, dtype),
                               residual_scale(spec.residual, spec.depth),
                               spec.skip, spec.mlp, spec.closing_norm, spec.causal,
                               MLP_PROBE if spec.loss == "probe" else MLP_MSE)


def transformer(spec: Transformer, dtype: str = "float64") -> tuple[cpu_transformer.Net, cpu_transformer.Init]:
    """A spec's kernel arguments."""
    kind = ORTHOGONAL if spec.init == "orthogonal" else NORMAL
    init = cpu_transformer.Init(draw_choice([kind], dtype), spec.depth, spec.tokens, spec.width, spec.hidden, kind,
                                spec.scales())
    return transformer_net(spec, dtype), init


def transformer_arrays(stats: np.ndarray, mlp: bool) -> dict[str, np.ndarray]:
    """The result arrays, each (T, L): views of the kernel's (K, T, L) rows (grad_w1, grad_w2 only with an MLP)."""
    return {name: stats[k] for k, name in enumerate(STATISTICS) if mlp or name not in ("grad_w1", "grad_w2")}


def transformer_backprop(W_q: np.ndarray, W_k: np.ndarray, W_v: np.ndarray, W_o: np.ndarray, W_1: np.ndarray | None,
                         W_2: np.ndarray | None, x: np.ndarray, y: np.ndarray, heads: int, activation: str = "gelu",
                         norm: str = "pre", norm_kind: str | None = None, final_norm: bool | None = None,
                         residual: float | str = 1.0, skip: bool = True, causal: bool = False, loss: str = "mse",
                         alpha: float | None = None, threads: int | None = None) -> Result:
    """Per-block gradient statistics of given transformers (:class:`fastgrad.Transformer`), one per trial.

    Parameters
    ----------
    W_q, W_k, W_v, W_o : array (T, L, d, d)
        Trial t's block l acts on rows: ``Q = u @ W_q[t, l]`` (PyTorch's ``weight.T``).
    W_1 : array (T, L, d, m) or None
    W_2 : array (T, L, m, d) or None
        The MLPs; both None for attention-only blocks.
    x, y : array (T, B, T_tok, d)
        Inputs, and targets (mse) or probes.
    heads : int
    activation, norm, norm_kind, final_norm, residual, skip, causal, loss, alpha
        As for :class:`fastgrad.Transformer`.
    threads : int, optional

    Returns
    -------
    Result
        Each (T, L): ``grad_wq``, ``grad_wk``, ``grad_wv``, ``grad_wo``, ``grad_w1``, ``grad_w2``
        (||dLoss/dW||_F), ``grad_x`` (||dLoss/dx_l||_F of block l's output stream), ``q`` (mean(x_l^2)),
        ``entropy`` (mean attention entropy, nats), ``res`` (res(X_l), averaged over sequences).
    """
    W_q = check_array("W_q", W_q, 4)
    dt = W_q.dtype
    trials, depth, d, _ = W_q.shape
    mats = {"W_k": check_array("W_k", W_k, 4, dt), "W_v": check_array("W_v", W_v, 4, dt),
            "W_o": check_array("W_o", W_o, 4, dt)}
    for name, arr in mats.items():
        if arr.shape != W_q.shape:
            raise ValueError(f"{name}: expected shape {W_q.shape} (as W_q), got {arr.shape}")
    if W_q.shape[3] != d:
        raise ValueError(f"W_q: expected (trials, L, d, d), got {W_q.shape}")
    if (W_1 is None) != (W_2 is None):
        raise ValueError("W_1, W_2: give both (MLP sublayers) or neither (attention only)")
    x = check_array("x", x, 4, dt)
    y = check_array("y", y, 4, dt)
    _, batch, tokens, _ = x.shape
    if x.shape != (trials, batch, tokens, d):
        raise ValueError(f"x: expected shape (trials {trials}, B, T, d {d}), got {x.shape}")
    if y.shape != x.shape:
        raise ValueError(f"y: expected shape {x.shape} (as x), got {y.shape}")
    mlp = W_1 is not None
    if W_1 is not None and W_2 is not None:
        W_1 = check_array("W_1", W_1, 4, dt)
        m = W_1.shape[3]
        if W_1.shape != (trials, depth, d, m):
            raise ValueError(f"W_1: expected shape (trials {trials}, L {depth}, d {d}, m), got {W_1.shape}")
        W_2 = check_array("W_2", W_2, 4, dt)
        if W_2.shape != (trials, depth, m, d):
            raise ValueError(f"W_2: expected shape {(trials, depth, m, d)}, got {W_2.shape}")
    else:
        W_1 = np.empty((trials, depth, d, 0), dtype=dt)
        W_2 = np.empty((trials, depth, 0, d), dtype=dt)
    spec = Transformer(depth=depth, tokens=tokens, width=d, heads=heads, activation=activation, norm=norm,
                       norm_kind=norm_kind, final_norm=final_norm, residual=residual, skip=skip, mlp=mlp,
                       causal=causal, loss=loss, alpha=alpha)
    net = transformer_net(spec, dt.name)
    stats = np.empty((len(STATISTICS), trials, depth), dtype=dt)
    with threads_context(threads) as n_threads:
        t0 = time.perf_counter()
        run_blocks(lambda lo, hi: cpu_transformer.explicit(net, W_q, mats["W_k"], mats["W_v"], mats["W_o"], W_1, W_2,
                                                           x, y, stats, lo, hi), 0, trials, n_threads)
        seconds = time.perf_counter() - t0
    out = {k: np.ascontiguousarray(v) for k, v in transformer_arrays(stats, mlp).items()}
    return Result(out, trials=trials, batch=batch, dtype=dt.name, version=__version__, threads=n_threads,
                  run_seconds=seconds)


def transformer_trial_arrays(spec: Transformer, seed: int, trials: int | np.ndarray, batch: int,
                             dtype: str = "float64") -> tuple[Any, ...]:
    """Draw W_q, W_k, W_v, W_o (T, L, d, d), W_1 (T, L, d, m), W_2 (T, L, m, d), x, y (T, B, T_tok, d) as a run does.

    W_1 and W_2 are None with ``mlp=False``; the tuple is :func:`transformer_backprop`'s first eight arguments.
    """
    idx, batch, seed, dt = trial_args(seed, trials, batch, dtype)
    t, depth, d, m, tok = idx.size, spec.depth, spec.width, spec.hidden, spec.tokens
    _, init = transformer(spec, dt.name)
    ws = [np.empty((t, depth, d, d), dtype=dt) for _ in range(4)]
    ws += [np.empty((t, depth, d, m), dtype=dt), np.empty((t, depth, m, d), dtype=dt)]
    x = np.empty((t, batch, tok, d), dtype=dt)
    y = np.empty((t, batch, tok, d), dtype=dt)
    cpu_transformer.draw_arrays(init, seed, idx, *ws, x, y)
    return (*ws[:4], ws[4] if spec.mlp else None, ws[5] if spec.mlp else None, x, y)


class TransformerModel(Model):
    """The transformer's entry in the model table."""

    name = "transformer"
    spec = Transformer
    order = 7
    main_metric = "grad_x"  # the gradient of the residual stream, block by block
    cpu_only = "no CUDA kernel for the transformer yet"
    statistics = len(STATISTICS)
    trainable = True
    default_chunk = 256  # a trial is ~1e6-1e8 flops: chunks of 4096 would hold progress for minutes

    def plan(self, spec: Transformer, trials: int, batch: int, seed: int, dt: np.dtype, first: int) -> Plan:
        net, init = transformer(spec, dt.name)
        stats = np.empty((len(STATISTICS), trials, spec.depth), dtype=dt)

        def block(lo: int, hi: int) -> None:
            cpu_transformer.generated(net, init, seed, first, batch, stats, lo, hi)

        return transformer_arrays(stats, spec.mlp), block, (cpu_transformer.generated, dt.name, net.act, init.draw)

    def working(self, spec: Transformer, batch: int) -> int:
        n, d, m, depth = batch * spec.tokens, spec.width, spec.hidden, spec.depth
        return (depth * (4 * d * d + 2 * d * m + n * (9 * d + 2 * m + 4) + batch * spec.heads * spec.tokens ** 2)
                + n * (10 * d + 2 * m) + 2 * d * m)

    def trial_arrays(self, spec: Transformer, seed: int, trials: int | np.ndarray, batch: int,
                     dtype: str) -> tuple[Any, ...]:
        return transformer_trial_arrays(spec, seed, trials, batch, dtype)

    def train_setup(self, spec: Transformer, data: Any, classification: bool, dt: np.dtype) -> TrainSetup:
        x, y = data.x_train, data.y_train
        if x.ndim != 3 or y.ndim != 3 or y.shape[:2] != x.shape[:2]:
            raise ValueError(f"data: a Transformer trains on sequences x (N, T, d) with a target per token y "
                             f"(N, T, outputs) (fastgrad.data.sort_digits); got x {x.shape}, y {y.shape}")
        tokens, width = int(x.shape[1]), int(x.shape[2])
        if (tokens, width) != (spec.tokens, spec.width):  # the whole stream's width: never changed silently
            raise ValueError(f"data: sequences of {tokens} tokens of width {width}, but the spec has tokens="
                             f"{spec.tokens}, width={spec.width}; give the spec the data's sizes")
        if spec.loss != "mse":
            raise ValueError(f"spec: loss={spec.loss!r} is not used in training, where the data's task sets the loss")
        net, init = transformer(spec, dt.name)
        net = net._replace(loss=TRAIN_XENT if classification else TRAIN_MSE)
        arrays = tuple(np.ascontiguousarray(a, dtype=dt) for a in (x, y, data.x_test, data.y_test))
        n_params = int(spec.depth * (4 * width * width + 2 * width * spec.hidden) + (width + 1) * data.outputs)

        def call(seed: int, arrays: Any, opt: Any, epochs: int, batch: int, record: Any, lo: int, hi: int) -> None:
            cpu_transformer.train(net, init, seed, 0, arrays, opt, epochs, batch, record, lo, hi)

        return TrainSetup(spec, arrays, n_params, (spec.depth + 1, 1), spec.depth, call)

    def warmup_specs(self, activation: str) -> list[Transformer]:
        return [Transformer(depth=1, tokens=2, width=2, heads=1, activation=activation)]


PUBLIC = ("Transformer", "transformer_backprop", "transformer_trial_arrays")
"""What ``import fastgrad`` exports of this module."""
MODEL = register(TransformerModel())
