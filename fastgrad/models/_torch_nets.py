"""fastgrad's families as PyTorch modules, both ways: :func:`to_torch` and :func:`from_torch`.

Imported only when called (``fastgrad.to_torch``, ``fastgrad.from_torch``): PyTorch is an
optional extra (``fastgrad[torch]``), and ``import fastgrad`` never imports it.

``to_torch(spec, seed, trial=k)`` is trial k of ``fastgrad.run(spec, seed=seed)``: the module
holds exactly the arrays the family's ``*_trial_arrays`` draws, and the batch is that trial's
(docs/architecture.md gives the equations each module computes). ``from_torch(module)`` reads a
module a family covers back into the family's spec and explicit arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from fastgrad.models import named, of
from fastgrad.models.cnn import CNN, cnn_backprop
from fastgrad.models.gru import GRU, gru_backprop
from fastgrad.models.indrnn import IndRNN, indrnn_backprop
from fastgrad.models.lstm import LSTM, lstm_backprop
from fastgrad.models.mlp import MLP, mlp_backprop
from fastgrad.models.resmlp import ResMLP, resmlp_backprop
from fastgrad.models.rnn import RNN, rnn_backprop
from fastgrad.models.transformer import Transformer, transformer_backprop
from fastgrad.results import Result
from fastgrad.specs import LAYER_NORM_EPS, residual_scale

SOFTPLUS_THRESHOLD = 40.0
"""torch's Softplus returns z above its threshold (default 20, an error of e^-20 ~ 2e-9 relative);
fastgrad's is exact: at 40 the difference, e^-40 ~ 4e-18, is below float64's eps."""


class TorchTrial(NamedTuple):
    """One trial as PyTorch objects (:func:`to_torch`).

    Attributes
    ----------
    module : torch.nn.Module
        The network with the trial's weights.
    x : torch.Tensor
        The trial's batch, (B, n_0); for recurrent cells (B, S, d) (``batch_first``); for a CNN
        (B, c_0, N[, N]); for a transformer (B, T, d).
    y : torch.Tensor
        Its targets (``mse``) or back-projection g (``probe``), the shape of ``module(x)``.
    loss : callable
        ``loss(module(x), y)``: the scalar fastgrad back-propagates.
    """

    module: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class FromTorch(NamedTuple):
    """A PyTorch module as a fastgrad family (:func:`from_torch`).

    Attributes
    ----------
    spec : object
        The family's spec (:class:`fastgrad.MLP`, :class:`fastgrad.RNN`, ...) of the module's sizes.
    arrays : dict of str to numpy.ndarray
        The module's current weights as the family's explicit routine takes them, with a leading
        trial axis of length 1 (``W`` and ``b`` of an MLP are lists of L arrays).
    backprop : callable
        ``backprop(x, y)``: the family's explicit routine (:func:`fastgrad.mlp_backprop`, ...) on these
        weights and one batch ``x`` laid out as the module takes it, ``y`` shaped as its loss's
        target; returns a one-trial :class:`fastgrad.Result`.
    """

    spec: Any
    arrays: dict[str, Any]
    backprop: Callable[[Any, Any], Result]


def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """fastgrad's ``mse``: ``(1/B) sum_b 0.5 ||out[b] - y[b]||^2`` (summed over steps and units)."""
    return 0.5 * ((out - y) ** 2).sum() / out.shape[0]


def probe(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """fastgrad's ``probe``: ``(1/B) sum_b <y[b], out[b]>``, a random back-projection."""
    return (out * y).sum() / out.shape[0]


LOSSES = {"mse": mse, "probe": probe, "last": mse, "all": mse}
"""fastgrad's loss names and the function each is on the module's output (``last`` and ``all`` are the
recurrent cells' mse, on h_S or on every step: the modules return what the loss sees)."""


def activation_module(name: str, alpha: float | None) -> nn.Module:
    """The torch module of a fastgrad activation (``alpha``: leaky_relu's slope, elu's alpha)."""
    simple: dict[str, Callable[[], nn.Module]] = {
        "linear": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "selu": nn.SELU,
        "gelu": nn.GELU, "softplus": lambda: nn.Softplus(threshold=SOFTPLUS_THRESHOLD)}
    if name in simple:
        return simple[name]()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01 if alpha is None else alpha)
    if name == "elu":
        return nn.ELU(1.0 if alpha is None else alpha)
    raise ValueError(f"activation: {name!r} has no PyTorch module here")


class Residual(nn.Module):
    """A residual block ``h + a phi(linear(h))``, or with pre-LayerNorm ``h + a phi(linear(LN(h)))``.

    LN is :func:`torch.nn.functional.layer_norm` without affine parameters (fastgrad's ResMLP).
    """

    def __init__(self, linear: nn.Linear, act: nn.Module, scale: float, layer_norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(linear.in_features, eps=LAYER_NORM_EPS, elementwise_affine=False) if layer_norm \
            else nn.Identity()
        self.linear = linear
        self.act = act
        self.scale = scale

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.scale * self.act(self.linear(self.norm(h)))


class IndRNNCell(nn.Module):
    """fastgrad's IndRNN as a batch-first PyTorch cell: ``h_t = phi(x_t W_x + u * h_{t-1} + b)``.

    ``weight_ih`` is W_x's transpose (n, d), as ``nn.RNN``'s; ``forward(x, h0)`` returns every step's h
    (B, S, n) and the last (1, B, n), as ``nn.RNN`` does.
    """

    def __init__(self, inputs: int, hidden: int, act: nn.Module, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.weight_ih = nn.Parameter(torch.zeros(hidden, inputs, dtype=dtype))
        self.u = nn.Parameter(torch.zeros(hidden, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(hidden, dtype=dtype))
        self.act = act

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.zeros(x.shape[0], self.u.shape[0], dtype=x.dtype) if h0 is None else h0[0]
        outs = []
        for t in range(x.shape[1]):
            h = self.act(x[:, t] @ self.weight_ih.T + self.u * h + self.bias)
            outs.append(h)
        return torch.stack(outs, dim=1), h[None]


class LastStep(nn.Module):
    """A batch-first recurrent cell's output at its last step (loss ``last``, ``probe``) or at every step."""

    def __init__(self, cell: nn.Module, every_step: bool = False) -> None:
        super().__init__()
        self.cell = cell
        self.every_step = every_step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.cell(x)[0]
        return out if self.every_step else out[:, -1]


def _normalise(h: torch.Tensor, kind: str, width: int) -> torch.Tensor:
    """LayerNorm (eps 1e-5) or RMSNorm (eps None: the dtype's machine epsilon) over the last axis, no affine."""
    if kind == "rms":
        return nn.functional.rms_norm(h, (width,))
    return nn.functional.layer_norm(h, (width,), eps=LAYER_NORM_EPS)


class TransformerBlock(nn.Module):
    """One encoder block of :class:`TransformerNet`: attention, then (with ``w_1``) an MLP, each a residual branch.

    ``w_q``, ``w_k``, ``w_v``, ``w_o``, ``w_1``, ``w_2`` are ``nn.Linear`` without bias: ``Q = u @ W_q`` with
    ``W_q = w_q.weight.T`` (fastgrad's row layout, :func:`fastgrad.transformer_backprop`).
    """

    def __init__(self, net: TransformerNet, width: int, hidden: int, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.w_q, self.w_k, self.w_v, self.w_o = (nn.Linear(width, width, bias=False, dtype=dtype) for _ in range(4))
        self.w_1 = nn.Linear(width, hidden, bias=False, dtype=dtype) if hidden else None
        self.act = activation_module(net.activation, net.alpha) if hidden else None
        self.w_2 = nn.Linear(hidden, width, bias=False, dtype=dtype) if hidden else None
        self.config = net.config
        self.width = width

    def normalise(self, h: torch.Tensor) -> torch.Tensor:
        """The block's norm over the last axis, without affine parameters (:meth:`TransformerNet.normalise`)."""
        return _normalise(h, self.config["norm_kind"], self.width)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        c = self.config
        batch, tokens, d = h.shape
        heads = c["heads"]
        dh = d // heads
        a = c["scale"]
        u = self.normalise(h) if c["norm"] == "pre" else h
        q, k, v = (m(u).view(batch, tokens, heads, dh).transpose(1, 2) for m in (self.w_q, self.w_k, self.w_v))
        s = q @ k.transpose(-1, -2) / math.sqrt(dh)
        if c["causal"]:
            s = s.masked_fill(torch.ones(tokens, tokens, dtype=torch.bool, device=h.device).triu(1), float("-inf"))
        o = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(batch, tokens, d)
        t = (h if c["skip"] else 0) + a * self.w_o(o)
        t = self.normalise(t) if c["norm"] == "post" else t
        if self.w_1 is not None and self.w_2 is not None and self.act is not None:
            v_in = self.normalise(t) if c["norm"] == "pre" else t
            t2 = (t if c["skip"] else 0) + a * self.w_2(self.act(self.w_1(v_in)))
            t = self.normalise(t2) if c["norm"] == "post" else t2
        return t


class TransformerNet(nn.Module):
    """fastgrad's :class:`~fastgrad.Transformer` in PyTorch: L :class:`TransformerBlock` on (B, T, d), then the
    final norm if any.

    Norms have no affine parameters: ``F.layer_norm`` (eps 1e-5) or ``F.rms_norm`` (eps None: the dtype's
    machine epsilon). ``blocks[l]``'s output is the stream x_l of fastgrad's ``grad_x`` and ``q``.

    Parameters
    ----------
    depth, width, heads, hidden : int
        L, d, H and the MLP's hidden width m (0: attention only).
    activation : str
    alpha : float, optional
    norm : {"pre", "post", "none"}
    norm_kind : {"layer", "rms"}
    final_norm : bool
        A norm on the last stream.
    residual : float or "1/sqrt(L)"
    skip, causal : bool
    tokens : int, optional
        T, the sequence length the spec was made for (any T runs; :func:`from_torch` reads it).
    dtype : torch.dtype
    """

    def __init__(self, depth: int, width: int, heads: int, hidden: int, activation: str = "gelu",
                 alpha: float | None = None, norm: str = "pre", norm_kind: str = "layer", final_norm: bool = True,
                 residual: float | str = 1.0, skip: bool = True, causal: bool = False, tokens: int | None = None,
                 dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        activation_module(activation, alpha)  # refuses an activation PyTorch lacks
        self.activation, self.alpha, self.tokens = activation, alpha, tokens
        self.config: dict[str, Any] = dict(heads=heads, norm=norm, norm_kind=norm_kind, final_norm=final_norm,
                                           residual=residual, scale=residual_scale(residual, depth), skip=skip,
                                           causal=causal)
        self.width = width
        self.blocks = nn.ModuleList(TransformerBlock(self, width, hidden, dtype) for _ in range(depth))

    def normalise(self, h: torch.Tensor) -> torch.Tensor:
        """The norm, over the last axis, without affine parameters."""
        return _normalise(h, self.config["norm_kind"], self.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for block in self.blocks:
            h = block(h)
        return self.normalise(h) if self.config["final_norm"] else h


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _linear(W: np.ndarray, b: np.ndarray) -> nn.Linear:
    """nn.Linear computing ``h @ W + b`` (its weight is W's transpose)."""
    lin = nn.Linear(W.shape[0], W.shape[1], dtype=torch.float64 if W.dtype == np.float64 else torch.float32)
    with torch.no_grad():
        lin.weight.copy_(_tensor(W.T))
        lin.bias.copy_(_tensor(b))
    return lin


def _set(param: Any, value: np.ndarray) -> None:
    with torch.no_grad():
        param.copy_(_tensor(value))


def _mlp_module(spec: MLP | ResMLP, W: list[np.ndarray], b: list[np.ndarray]) -> nn.Sequential:
    depth = len(W)
    last = spec.activation if spec.last_activation is None else spec.last_activation
    layers: list[nn.Module] = []
    for i in range(depth):
        act = activation_module(last if i == depth - 1 else spec.activation, spec.alpha)
        if isinstance(spec, ResMLP) and 0 < i < depth - 1:
            layers.append(Residual(_linear(W[i][0], b[i][0]), act, residual_scale(spec.residual, depth),
                                   spec.norm == "layer"))
        else:
            layers += [_linear(W[i][0], b[i][0]), act]
    return nn.Sequential(*layers)


def _cell(spec: Any, arrays: tuple[np.ndarray, ...]) -> nn.Module:
    """The torch cell of an RNN, LSTM or GRU trial (one layer, batch first), wrapped in :class:`LastStep`."""
    dt = torch.float64 if arrays[0].dtype == np.float64 else torch.float32
    n, d = spec.hidden, spec.inputs
    if isinstance(spec, IndRNN):
        u, W_x, b = arrays[:3]
        ind = IndRNNCell(d, n, activation_module(spec.activation, spec.alpha), dt)
        _set(ind.weight_ih, W_x[0].T)
        _set(ind.u, u[0])
        _set(ind.bias, b[0])
        return LastStep(ind, every_step=spec.loss == "all")
    if isinstance(spec, RNN):
        if spec.activation not in ("tanh", "relu"):
            raise ValueError(f"spec: torch.nn.RNN has tanh and relu only, not {spec.activation!r}")
        W_h, W_x, b = arrays[:3]
        cell: nn.Module = nn.RNN(d, n, nonlinearity=spec.activation, batch_first=True, dtype=dt)
        biases = (b, np.zeros_like(b))
    elif isinstance(spec, LSTM):
        W_h, W_x, b = arrays[:3]
        cell, biases = nn.LSTM(d, n, batch_first=True, dtype=dt), (b, np.zeros_like(b))
    else:
        W_h, W_x, b_ih, b_hh = arrays[:4]
        cell, biases = nn.GRU(d, n, batch_first=True, dtype=dt), (b_ih, b_hh)
    _set(cell.weight_ih_l0, W_x[0].T)
    _set(cell.weight_hh_l0, W_h[0].T)
    _set(cell.bias_ih_l0, biases[0][0])
    _set(cell.bias_hh_l0, biases[1][0])
    return LastStep(cell, every_step=spec.loss == "all")


def _cnn_module(spec: CNN, W: list[np.ndarray], b: list[np.ndarray]) -> nn.Sequential:
    """nn.Sequential of nn.Conv1d/Conv2d (same padding, circular or zeros) and the activation, trial 0 of W, b."""
    conv = nn.Conv1d if spec.ndim == 1 else nn.Conv2d
    dt = torch.float64 if W[0].dtype == np.float64 else torch.float32
    layers: list[nn.Module] = []
    for w, v in zip(W, b, strict=True):
        m = conv(w.shape[2], w.shape[1], spec.kernel_size, padding=spec.kernel_size // 2,
                 padding_mode=spec.padding, dtype=dt)  # type: ignore[arg-type]
        _set(m.weight, w[0])
        _set(m.bias, v[0])
        layers += [m, activation_module(spec.activation, spec.alpha)]
    return nn.Sequential(*layers)


def _transformer_module(spec: Transformer, arrays: tuple[Any, ...]) -> TransformerNet:
    """A :class:`TransformerNet` holding trial 0 of the transformer's arrays."""
    dt = torch.float64 if arrays[0].dtype == np.float64 else torch.float32
    net = TransformerNet(spec.depth, spec.width, spec.heads, spec.hidden, spec.activation, spec.alpha, spec.norm,
                         spec.kind, spec.closing_norm, spec.residual, spec.skip, spec.causal, spec.tokens, dt)
    names = ("w_q", "w_k", "w_v", "w_o", "w_1", "w_2")
    for l, block in enumerate(net.blocks):
        for name, a in zip(names, arrays[:6], strict=True):
            if a is not None:
                _set(getattr(block, name).weight, a[0, l].T)
    return net


def to_torch(spec: Any, seed: int = 0, trial: int = 0, batch: int = 32, dtype: str = "float64") -> TorchTrial:
    """Trial ``trial`` of ``fastgrad.run(spec, seed=seed, batch=batch)`` as a PyTorch module and batch.

    See :func:`fastgrad.to_torch`.
    """
    from fastgrad.checks import check_int

    check_int("trial", trial, minimum=0)
    model = of(spec)
    if model.name not in ("mlp", "resmlp", "rnn", "lstm", "gru", "indrnn", "cnn", "transformer"):
        raise ValueError("spec: to_torch covers MLP, ResMLP, RNN, LSTM, GRU, IndRNN, CNN and Transformer, not "
                         f"{type(spec).__name__}")
    arrays = model.trial_arrays(spec, seed, np.array([trial]), batch, dtype)
    if isinstance(spec, CNN):
        W, b, x, y = arrays
        module: nn.Module = _cnn_module(spec, W, b)
        xb, yb = _tensor(x[0]), _tensor(y[0])
    elif isinstance(spec, Transformer):
        module = _transformer_module(spec, arrays)
        xb, yb = _tensor(arrays[6][0]), _tensor(arrays[7][0])
    elif isinstance(spec, (MLP, ResMLP)):
        W, b, x, y = arrays
        module = _mlp_module(spec, W, b)
        xb, yb = _tensor(x[0]), _tensor(y[0])
    else:
        module = _cell(spec, arrays)
        x, y = arrays[-2], arrays[-1]
        xb = _tensor(x[0].transpose(1, 0, 2))  # (S, B, d) -> (B, S, d)
        yb = _tensor(y[0].transpose(1, 0, 2) if spec.loss == "all" else y[0])
    return TorchTrial(module, xb, yb, LOSSES[spec.loss])


_ACTIVATIONS: dict[type, str] = {nn.Identity: "linear", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.ReLU: "relu",
                                 nn.LeakyReLU: "leaky_relu", nn.ELU: "elu", nn.SELU: "selu", nn.Softplus: "softplus",
                                 nn.GELU: "gelu"}


def _activation_name(m: nn.Module) -> tuple[str, float | None] | None:
    """(fastgrad name, alpha) of an activation module fastgrad computes exactly, else None."""
    name = _ACTIVATIONS.get(type(m))
    if name is None:
        return None
    if isinstance(m, nn.GELU) and m.approximate != "none":
        return None
    if isinstance(m, nn.Softplus) and m.beta != 1.0:
        return None
    alpha = {"leaky_relu": getattr(m, "negative_slope", None), "elu": getattr(m, "alpha", None)}.get(name)
    return name, (None if alpha is None else float(alpha))


def _refuse(path: str, m: nn.Module, why: str = "") -> ValueError:
    where = f"{path} ({type(m).__name__})" if path else type(m).__name__
    return ValueError(f"module: no fastgrad family covers {where}{why}; measure it with fastgrad.torch_run")


def _numpy(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy()


def _as_array(a: Any, dt: Any) -> np.ndarray:
    return np.asarray(_numpy(a) if isinstance(a, torch.Tensor) else a, dtype=dt)


def _from_sequential(seq: nn.Sequential, loss: str) -> FromTorch:
    linears: list[nn.Linear] = []
    acts: list[tuple[str, float | None]] = []
    residual: list[Residual] = []
    for path, m in seq.named_children():
        if isinstance(m, (nn.Linear, Residual)):
            if len(acts) < len(linears):  # two linear layers in a row: the first has the identity
                acts.append(("linear", None))
            if isinstance(m, Residual):
                residual.append(m)
                if (len(linears) == 0 or isinstance(m.norm, nn.LayerNorm) != isinstance(residual[0].norm, nn.LayerNorm)
                        or m.scale != residual[0].scale or _activation_name(m.act) is None):
                    raise _refuse(path, m, ": residual blocks must follow a first linear layer and share their "
                                  "scale, norm and activation")
                acts.append(_activation_name(m.act))  # type: ignore[arg-type]
                linears.append(m.linear)
                continue
            if residual and len(linears) > len(residual) + 1:
                raise _refuse(path, m, ": a ResMLP has one linear layer after its residual blocks")
            linears.append(m)
        elif _activation_name(m) is not None and len(acts) < len(linears):
            acts.append(_activation_name(m))  # type: ignore[arg-type]
        else:
            raise _refuse(path, m)
    if not linears:
        raise ValueError("module: an nn.Sequential with no nn.Linear; measure it with fastgrad.torch_run")
    if len(acts) < len(linears):
        acts.append(("linear", None))
    hidden = {a for a in acts[:-1]}
    if len(hidden) > 1:
        raise ValueError(f"module: the hidden layers' activations differ ({sorted(a[0] for a in hidden)}); an MLP "
                         "has one; measure it with fastgrad.torch_run")
    act, alpha = acts[0] if len(acts) > 1 else acts[-1]
    last, last_alpha = acts[-1]
    if alpha is not None and last_alpha is not None and alpha != last_alpha:
        raise ValueError("module: the last activation's parameter differs from the hidden layers'; measure it "
                         "with fastgrad.torch_run")
    dims = [linears[0].in_features] + [lin.out_features for lin in linears]
    if len(set(dims[1:-1])) > 1:
        raise ValueError(f"module: hidden widths differ ({dims[1:-1]}); an MLP has one width; measure it with "
                         "fastgrad.torch_run")
    dt = np.float64 if linears[0].weight.dtype == torch.float64 else np.float32
    W = [_numpy(lin.weight).T.astype(dt)[None].copy() for lin in linears]
    b = [(_numpy(lin.bias).astype(dt) if lin.bias is not None else np.zeros(lin.out_features, dt))[None]
         for lin in linears]
    width = dims[1] if len(dims) > 2 else dims[-1]
    fields = dict(depth=len(linears), width=width, activation=act, input_width=dims[0], output_width=dims[-1],
                  loss=loss, last_activation=last, alpha=alpha if alpha is not None else last_alpha)
    if residual:
        spec: Any = ResMLP(**fields, residual=residual[0].scale,  # type: ignore[arg-type]
                           norm="layer" if isinstance(residual[0].norm, nn.LayerNorm) else None)
        routine: Callable[..., Result] = resmlp_backprop
        extra = {"residual": spec.residual, "norm": spec.norm}
    else:
        spec, routine, extra = MLP(**fields), mlp_backprop, {}  # type: ignore[arg-type]

    def backprop(x: Any, y: Any) -> Result:
        return routine(W, b, _as_array(x, dt)[None], _as_array(y, dt)[None], activation=act, loss=loss,
                       last_activation=last, alpha=spec.alpha, **extra)

    return FromTorch(spec, {"W": W, "b": b}, backprop)


def _from_cell(cell: nn.RNNBase, loss: str, steps: int | None) -> FromTorch:
    kind = type(cell).__name__
    if cell.num_layers != 1 or cell.bidirectional or cell.proj_size or not cell.bias:
        raise _refuse("", cell, ": one layer, one direction, with biases and no projection")
    if steps is None:
        raise ValueError(f"steps: from_torch of an nn.{kind} needs the number of steps its inputs have")
    dt = np.float64 if cell.weight_hh_l0.dtype == torch.float64 else np.float32
    W_x = _numpy(cell.weight_ih_l0).T.astype(dt)[None].copy()
    W_h = _numpy(cell.weight_hh_l0).T.astype(dt)[None].copy()
    b_ih: np.ndarray = _numpy(cell.bias_ih_l0).astype(dt)[None]
    b_hh: np.ndarray = _numpy(cell.bias_hh_l0).astype(dt)[None]
    sizes = dict(steps=steps, hidden=cell.hidden_size, inputs=cell.input_size, loss=loss)
    if isinstance(cell, nn.GRU):
        spec: Any = GRU(**sizes)  # type: ignore[arg-type]
        arrays = {"W_h": W_h, "W_x": W_x, "b_ih": b_ih, "b_hh": b_hh}
    elif isinstance(cell, nn.LSTM):
        spec, arrays = LSTM(**sizes), {"W_h": W_h, "W_x": W_x, "b": b_ih + b_hh}  # type: ignore[arg-type, operator]
    else:
        spec = RNN(**sizes, activation=cell.nonlinearity)  # type: ignore[arg-type]
        arrays = {"W_hh": W_h, "W_xh": W_x, "b": b_ih + b_hh}
    routines: dict[str, Callable[..., Result]] = {"rnn": rnn_backprop, "lstm": lstm_backprop, "gru": gru_backprop}
    routine = routines[of(spec).name]
    extra = {"activation": spec.activation} if isinstance(spec, RNN) else {}

    def backprop(x: Any, y: Any) -> Result:
        x = _as_array(x, dt)
        x = x.transpose(1, 0, 2) if cell.batch_first else x  # -> (S, B, d)
        y = _as_array(y, dt)
        if loss == "all" and cell.batch_first:
            y = y.transpose(1, 0, 2)
        return routine(*arrays.values(), np.ascontiguousarray(x[None]), np.ascontiguousarray(y[None]), loss=loss,
                       **extra)

    return FromTorch(spec, arrays, backprop)


def _from_indrnn(cell: IndRNNCell, loss: str, steps: int | None) -> FromTorch:
    if steps is None:
        raise ValueError("steps: from_torch of an IndRNN needs the number of steps its inputs have")
    named_act = _activation_name(cell.act)
    if named_act is None:
        raise _refuse("act", cell.act)
    act, alpha = named_act
    dt = np.float64 if cell.u.dtype == torch.float64 else np.float32
    hidden, inputs = cell.weight_ih.shape
    spec = IndRNN(steps=steps, hidden=hidden, inputs=inputs, activation=act, alpha=alpha, loss=loss)
    arrays = {"u": _numpy(cell.u).astype(dt)[None], "W_x": _numpy(cell.weight_ih).T.astype(dt)[None].copy(),
              "b": _numpy(cell.bias).astype(dt)[None]}

    def backprop(x: Any, y: Any) -> Result:
        xs = _as_array(x, dt).transpose(1, 0, 2)  # batch first -> (S, B, d)
        ys = _as_array(y, dt)
        ys = ys.transpose(1, 0, 2) if loss == "all" else ys
        return indrnn_backprop(arrays["u"], arrays["W_x"], arrays["b"], np.ascontiguousarray(xs[None]),
                               np.ascontiguousarray(ys[None]), activation=act, loss=loss, alpha=alpha)

    return FromTorch(spec, arrays, backprop)


def _from_conv_sequential(seq: nn.Sequential, loss: str, size: int | None) -> FromTorch:
    """nn.Sequential of nn.Conv1d/Conv2d (stride 1, same padding, circular or zeros) and one activation: a CNN."""
    convs: list[nn.Conv1d | nn.Conv2d] = []
    acts: list[tuple[str, float | None]] = []
    kind = type(next(iter(seq.children())))
    for path, m in seq.named_children():
        if type(m) is kind:
            conv: Any = m
            k = conv.kernel_size[0]
            same = conv.padding == "same" or tuple(conv.padding) == (k // 2,) * len(conv.kernel_size)
            if (len(set(conv.kernel_size)) != 1 or k % 2 == 0 or set(conv.stride) != {1} or set(conv.dilation) != {1}
                    or conv.groups != 1 or not same or conv.padding_mode not in ("circular", "zeros")):
                raise _refuse(path, m, ": a CNN's convolutions have stride 1, an odd square kernel, \"same\" circular "
                              "or zero padding, no dilation or groups")
            if convs and (conv.kernel_size != convs[0].kernel_size or conv.padding_mode != convs[0].padding_mode
                          or conv.in_channels != convs[-1].out_channels
                          or conv.out_channels != convs[0].out_channels):
                raise _refuse(path, m, ": a CNN's convolutions share their kernel size, padding and channels")
            if len(acts) < len(convs):  # two convolutions in a row: the first has the identity
                acts.append(("linear", None))
            convs.append(conv)
        elif _activation_name(m) is not None and len(acts) < len(convs):
            acts.append(_activation_name(m))  # type: ignore[arg-type]
        else:
            raise _refuse(path, m)
    if len(acts) < len(convs):
        acts.append(("linear", None))
    if len(set(acts)) > 1:
        raise ValueError(f"module: the layers' activations differ ({sorted(a[0] for a in set(acts))}); a CNN has "
                         "one; measure it with fastgrad.torch_run")
    if size is None:
        raise ValueError(f"size: from_torch of an nn.Sequential of {kind.__name__} needs the spatial size N of its "
                         "inputs")
    act, alpha = acts[0]
    first = convs[0]
    ndim = len(first.kernel_size)
    dt = np.float64 if first.weight.dtype == torch.float64 else np.float32
    W = [_numpy(c.weight).astype(dt)[None].copy() for c in convs]
    b = [(_numpy(c.bias).astype(dt) if c.bias is not None else np.zeros(c.out_channels, dt))[None] for c in convs]
    channels = first.out_channels
    spec = CNN(depth=len(convs), channels=channels, size=size, ndim=ndim,
               in_channels=None if first.in_channels == channels else first.in_channels,
               kernel_size=first.kernel_size[0], padding=first.padding_mode, activation=act, alpha=alpha, loss=loss)

    def backprop(x: Any, y: Any) -> Result:
        return cnn_backprop(W, b, _as_array(x, dt)[None], _as_array(y, dt)[None], activation=act, loss=loss,
                            padding=spec.padding, alpha=alpha)

    return FromTorch(spec, {"W": W, "b": b}, backprop)


def _from_transformer(net: TransformerNet, loss: str, tokens: int | None) -> FromTorch:
    c = net.config
    tokens = net.tokens if tokens is None else tokens
    if tokens is None:
        raise ValueError("size: from_torch of a TransformerNet made without tokens needs the sequence length T")
    first: Any = net.blocks[0]
    dt = np.float64 if first.w_q.weight.dtype == torch.float64 else np.float32
    mlp = first.w_1 is not None
    arrays: dict[str, Any] = {}
    for name in ("w_q", "w_k", "w_v", "w_o", "w_1", "w_2"):
        key = "W_" + name[2:]
        arrays[key] = np.stack([_numpy(getattr(b, name).weight).T.astype(dt) for b in net.blocks])[None].copy() \
            if mlp or name not in ("w_1", "w_2") else None
    applied = c["norm"] != "none" or c["final_norm"]
    structure = dict(norm=c["norm"], norm_kind=c["norm_kind"] if applied else None,
                     final_norm=None if c["norm"] == "post" else c["final_norm"], residual=c["residual"],
                     skip=c["skip"], causal=c["causal"], activation=net.activation, alpha=net.alpha if mlp else None,
                     loss=loss)
    width, hidden = net.width, arrays["W_1"].shape[-1] if mlp else 0
    if mlp and hidden % width:
        raise ValueError(f"module: the MLP's hidden width {hidden} is not a multiple of the width {width}; a "
                         "fastgrad.Transformer's is ratio * width")
    spec = Transformer(depth=len(net.blocks), tokens=tokens, width=width, heads=c["heads"],
                       ratio=hidden // width if mlp else None, mlp=mlp, **structure)

    def backprop(x: Any, y: Any) -> Result:
        return transformer_backprop(arrays["W_q"], arrays["W_k"], arrays["W_v"], arrays["W_o"], arrays["W_1"],
                                    arrays["W_2"], _as_array(x, dt)[None], _as_array(y, dt)[None], spec.heads,
                                    **structure)

    return FromTorch(spec, arrays, backprop)


def from_torch(module: Any, loss: str | None = None, steps: int | None = None, size: int | None = None) -> FromTorch:
    """A module a fastgrad family covers, as the family's spec and explicit arrays.

    See :func:`fastgrad.from_torch`.
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    if size is not None and not (isinstance(module, TransformerNet) or isinstance(module, nn.Sequential) and len(module)
                                 and isinstance(module[0], (nn.Conv1d, nn.Conv2d))):
        raise ValueError("size: only convolutional networks and TransformerNet take size")
    if isinstance(module, TransformerNet):
        return _from_transformer(module, "mse" if loss is None else loss, size)
    if isinstance(module, (nn.RNN, nn.LSTM, nn.GRU)):
        loss = "last" if loss is None else loss
        named("rnn")  # the family is registered
        return _from_cell(module, loss, steps)
    if isinstance(module, LastStep) and isinstance(module.cell, IndRNNCell):
        return _from_indrnn(module.cell, ("all" if module.every_step else "last") if loss is None else loss, steps)
    if isinstance(module, LastStep) and isinstance(module.cell, (nn.RNN, nn.LSTM, nn.GRU)):
        return _from_cell(module.cell, ("all" if module.every_step else "last") if loss is None else loss, steps)
    if isinstance(module, nn.Sequential):
        if steps is not None:
            raise ValueError("steps: only recurrent modules (nn.RNN, LSTM, GRU) take steps")
        if len(module) and isinstance(module[0], (nn.Conv1d, nn.Conv2d)):
            return _from_conv_sequential(module, "mse" if loss is None else loss, size)
        return _from_sequential(module, "mse" if loss is None else loss)
    raise _refuse("", module)
