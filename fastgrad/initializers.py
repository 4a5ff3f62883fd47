"""Weight and bias initialisers, and what each scale argument means for each of them.

An initialiser is resolved in Python, per layer, into a *kind* the kernels
know how to draw (normal, uniform, orthogonal, identity, constant) and one
scale (standard deviation, half-width, gain or value). The draws themselves use
the trial's counter-based streams (:mod:`fastgrad.rng`), so every initialiser
scale applied to trial k multiplies the same standard normals (common random
numbers across ``normal``, ``scaled_normal``, ``xavier_normal``, ...).

Each init is scaled by exactly one argument (:data:`WEIGHT_SCALE`); a scale
argument the init does not use is refused, naming the one that counts, so no
argument is ever silently ignored (docs/architecture.md, "Scales").
"""

from __future__ import annotations

import math

from fastgrad.codes import CONSTANT, IDENTITY, NORMAL, ORTHOGONAL, SPECTRAL, UNIFORM

WEIGHT_INITS = (
    "normal",
    "scaled_normal",
    "xavier_normal",
    "xavier_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "orthogonal",
    "identity",
    "constant",
)
BIAS_INITS = ("zeros", "normal", "constant")
RECURRENT_INITS = ("normal", "orthogonal", "identity", "spectral")

FAN_INITS = {
    # init: (kind, the fan formula c(fan_in, fan_out): std, or the uniform's half-width, gain * c)
    "xavier_normal": (NORMAL, lambda fi, fo: math.sqrt(2.0 / (fi + fo))),
    "xavier_uniform": (UNIFORM, lambda fi, fo: math.sqrt(6.0 / (fi + fo))),
    "he_normal": (NORMAL, lambda fi, fo: math.sqrt(2.0 / fi)),
    "he_uniform": (UNIFORM, lambda fi, fo: math.sqrt(6.0 / fi)),
    "lecun_normal": (NORMAL, lambda fi, fo: math.sqrt(1.0 / fi)),
}
"""The inits whose scale is a fan formula times ``gain``."""

WEIGHT_SCALE = {
    "normal": "sigma_w",  # W ~ N(0, sigma_w^2)
    "scaled_normal": "sigma_w",  # W ~ N(0, sigma_w^2 / fan_in)
    **{name: "gain" for name in FAN_INITS},  # gain * the fan formula
    "orthogonal": "sigma_w",  # sqrt(sigma_w^2) Q: sigma_w^2 on scaled_normal's axis; gain a synonym
    "identity": "sigma_w",  # sigma_w I; gain a synonym
    "constant": "value",  # every weight = value
}
"""The argument that scales each weight init (``sigma_w`` may also be given as the variance ``sigma_w2``)."""

_SYNONYM_GAIN = ("orthogonal", "identity")


def _uses(init: str) -> str:
    """How ``init``'s scale is given, for messages."""
    if init in FAN_INITS:
        return f"init={init!r} is scaled by gain (gain times its fan formula)"
    if init == "constant":
        return "init='constant' sets every weight to value"
    if init in _SYNONYM_GAIN:
        return f"init={init!r} is scaled by sigma_w (or sigma_w2, or gain as a synonym of sigma_w)"
    return f"init={init!r} is scaled by sigma_w (or sigma_w2)"


def weight_scale(init: str, sigma_w: float | None = None, gain: float | None = None, value: float | None = None,
                 sigma_w_name: str = "sigma_w") -> float:
    """The one number that scales ``init``'s weights, refusing every scale argument it does not use.

    ``normal``, ``scaled_normal``: ``sigma_w`` (default 1). Xavier, He, LeCun: ``gain``
    (default 1). ``orthogonal``, ``identity``: ``sigma_w``, or ``gain`` as its synonym, not
    both (default 1). ``constant``: ``value`` (default 0).

    Parameters
    ----------
    init : str
        One of :data:`WEIGHT_INITS`.
    sigma_w, gain, value : float or None
        The arguments as given (None: not given); ``sigma_w`` already a standard deviation.
    sigma_w_name : {"sigma_w", "sigma_w2"}
        How ``sigma_w`` was given, for the messages.

    Returns
    -------
    float
        The scale :func:`weight_kind` takes.

    Raises
    ------
    ValueError
        Naming the argument ``init`` does not use and the one that counts.
    """
    if init not in WEIGHT_SCALE:
        raise ValueError(f"init: unknown {init!r}; choose one of {', '.join(WEIGHT_INITS)}")
    if value is not None and init != "constant":
        raise ValueError(f"value: applies only with init='constant'; {_uses(init)}")
    if init == "constant":
        for name, given in ((sigma_w_name, sigma_w), ("gain", gain)):
            if given is not None:
                raise ValueError(f"{name}: init='constant' does not use it; every weight is value")
        return 0.0 if value is None else value
    if init in FAN_INITS:
        if sigma_w is not None:
            raise ValueError(f"{sigma_w_name}: {_uses(init)}, not {sigma_w_name}; for weights "
                             f"N(0, sigma_w^2 / fan_in) use init='scaled_normal' with sigma_w2")
        return 1.0 if gain is None else gain
    if init in _SYNONYM_GAIN:
        if sigma_w is not None and gain is not None:
            raise ValueError(f"{sigma_w_name}, gain: init={init!r} takes one scale: sigma_w (or sigma_w2), "
                             "or gain as its synonym, not both")
        return sigma_w if sigma_w is not None else 1.0 if gain is None else gain
    if gain is not None:
        raise ValueError(f"gain: {_uses(init)}, not gain; use sigma_w or sigma_w2")
    return 1.0 if sigma_w is None else sigma_w


def weight_kind(init: str, fan_in: int, fan_out: int, scale: float) -> tuple[int, float]:
    """Resolve a weight initialiser for one layer into ``(kind, scale)``.

    Parameters
    ----------
    init : str
        One of :data:`WEIGHT_INITS`.
    fan_in, fan_out : int
        The layer's input and output widths (W has shape (fan_in, fan_out)).
    scale : float
        The init's own scale (:func:`weight_scale`): ``normal`` N(0, scale^2);
        ``scaled_normal`` N(0, scale^2 / fan_in); Xavier, He and LeCun: the gain times
        their fan formula (:data:`FAN_INITS`); ``orthogonal`` scale * Q (Q Haar-orthogonal,
        semi-orthogonal when not square); ``identity`` scale * I; ``constant`` every weight = scale.

    Returns
    -------
    kind : int
        ``NORMAL``, ``UNIFORM``, ``ORTHOGONAL``, ``IDENTITY`` or ``CONSTANT``.
    scale : float
        Standard deviation, half-width of the uniform, gain or constant value.
    """
    if init == "normal":
        return NORMAL, scale
    if init == "scaled_normal":
        return NORMAL, scale / math.sqrt(fan_in)
    if init in FAN_INITS:
        kind, fan = FAN_INITS[init]
        return kind, scale * fan(fan_in, fan_out)
    if init == "orthogonal":
        return ORTHOGONAL, scale
    if init == "identity":
        return IDENTITY, scale
    if init == "constant":
        return CONSTANT, scale
    raise ValueError(f"init: unknown {init!r}; choose one of {', '.join(WEIGHT_INITS)}")


def recurrent_kind(init: str, hidden: int, gain: float) -> tuple[int, float]:
    """Resolve a recurrent-weight initialiser (W_hh, hidden x hidden) into ``(kind, scale)``.

    ``gain`` plays sigma_w (sigma_w^2 = gain^2 on the mean-field axis) for every init:
    ``normal``: N(0, gain^2 / hidden) (``scaled_normal`` with sigma_w = gain);
    ``orthogonal``: gain * Q (Q Haar-orthogonal); ``identity``: gain * I (the IRNN
    init); ``spectral``: a Gaussian matrix rescaled so that its spectral radius is exactly ``gain``.

    Parameters
    ----------
    init : str
        One of :data:`RECURRENT_INITS`.
    hidden : int
    gain : float

    Returns
    -------
    kind : int
    scale : float
    """
    if init == "normal":
        return NORMAL, gain / math.sqrt(hidden)
    if init == "orthogonal":
        return ORTHOGONAL, gain
    if init == "identity":
        return IDENTITY, gain
    if init == "spectral":
        return SPECTRAL, gain
    raise ValueError(f"init: unknown {init!r}; choose one of {', '.join(RECURRENT_INITS)}")


_BIAS_SAYS = {"zeros": "every bias is 0", "constant": "every bias is bias_value",
              "centered": "b_l = -w_l a_{l-1}, so every z_l = 0"}


def bias_scale(bias_init: str | None, sigma_b: float | None = None, bias_value: float | None = None,
               sigma_b_name: str = "sigma_b", default_sigma_b: float = 0.0) -> tuple[str, float]:
    """The bias init and its one scale, refusing every bias argument it does not use.

    ``sigma_b`` (or ``sigma_b2``) counts only under ``normal``, ``bias_value`` only
    under ``constant``.

    Parameters
    ----------
    bias_init : str or None
        As given; None: ``normal`` if the standard deviation (``sigma_b``, else
        ``default_sigma_b``) is > 0, else ``zeros``.
    sigma_b, bias_value : float or None
        As given (None: not given); ``sigma_b`` already a standard deviation.
    sigma_b_name : {"sigma_b", "sigma_b2"}
        How ``sigma_b`` was given, for the messages.
    default_sigma_b : float
        The standard deviation when ``sigma_b`` is not given.

    Returns
    -------
    bias_init : str
        Resolved.
    scale : float
        The standard deviation under ``normal``, the value under ``constant``, else 0.

    Raises
    ------
    ValueError
        Naming the argument the bias init does not use.
    """
    std = default_sigma_b if sigma_b is None else sigma_b
    if bias_init is not None and bias_init != "normal" and sigma_b is not None:
        raise ValueError(f"{sigma_b_name}: bias_init={bias_init!r} does not use it ({_BIAS_SAYS.get(bias_init, '')}); "
                         f"{sigma_b_name} sets N(0, sigma_b^2) biases under bias_init='normal'")
    resolved = bias_init if bias_init is not None else "normal" if std > 0 else "zeros"
    if bias_value is not None and resolved != "constant":
        raise ValueError(f"bias_value: applies only with bias_init='constant' (here {resolved!r}: "
                         f"{_BIAS_SAYS.get(resolved, 'biases N(0, sigma_b^2)')})")
    if resolved == "normal":
        return resolved, std
    if resolved == "constant":
        return resolved, 0.0 if bias_value is None else bias_value
    return resolved, 0.0


def bias_kind(bias_init: str, scale: float) -> tuple[int, float]:
    """Resolve a bias initialiser into ``(kind, scale)`` (see :func:`bias_scale`).

    Parameters
    ----------
    bias_init : str
        One of :data:`BIAS_INITS`.
    scale : float
        The standard deviation under ``normal``, every bias's value under ``constant``.

    Returns
    -------
    kind : int
    scale : float
    """
    if bias_init == "zeros":
        return CONSTANT, 0.0
    if bias_init == "normal":
        return NORMAL, scale
    if bias_init == "constant":
        return CONSTANT, scale
    raise ValueError(f"bias_init: unknown {bias_init!r}; choose one of {', '.join(BIAS_INITS)}")
