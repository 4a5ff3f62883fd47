"""Data sets for training experiments: a real one that ships in a package, and synthetic tasks.

Nothing is downloaded at run time. ``digits`` loads scikit-learn's 8x8
handwritten digits, which ship inside scikit-learn (optional extra
``fastgrad[data]``); the teacher tasks are made by fastgrad from its own
counter-based generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastgrad.checks import check_int
from fastgrad.models.mlp import MLP


@dataclass(frozen=True)
class Dataset:
    """Inputs and targets for training.

    Attributes
    ----------
    x_train, y_train : numpy.ndarray
        (N, features) and (N, outputs): one-hot rows for classification;
        sequences (for RNNs) have x of shape (N, steps, features), and y of shape
        (N, outputs) (one target per sequence) or (N, K, outputs) (a target for
        each of the last K steps, K <= steps).
    x_test, y_test : numpy.ndarray
        The held-out split, same layout (may have 0 rows).
    task : str
        ``classification`` (softmax cross-entropy) or ``regression`` (mse).
    name : str
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    task: str
    name: str

    @property
    def features(self) -> int:
        """Number of input features."""
        return int(self.x_train.shape[-1])

    @property
    def outputs(self) -> int:
        """Number of outputs (classes for classification); per step for sequence targets."""
        return int(self.y_train.shape[-1])


def _one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    out = np.zeros((labels.size, classes))
    out[np.arange(labels.size), labels] = 1.0
    return out


def digits(test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (1797 images, 10 classes), pixels scaled to [0, 1].

    Parameters
    ----------
    test_fraction : float
        Share of the images held out, chosen by a seeded permutation.
    seed : int

    Returns
    -------
    Dataset

    Raises
    ------
    RuntimeError
        If scikit-learn is not installed (``pip install 'fastgrad[data]'``).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise RuntimeError("digits() needs scikit-learn, which ships the data: pip install 'fastgrad[data]'") from err
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction: must be in [0, 1), got {test_fraction}")
    bunch = load_digits()
    x = bunch.data.astype(np.float64) / 16.0
    y = _one_hot(bunch.target.astype(np.int64), 10)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return Dataset(x[train], y[train], x[test], y[test], "classification", "digits")


def teacher(task: str = "classification", samples: int = 2000, features: int = 16, outputs: int = 4,
            depth: int = 2, width: int = 32, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """A synthetic task labelled by a random teacher MLP (tanh, Xavier weights).

    Inputs are N(0, 1). Regression targets are the teacher's outputs;
    classification labels are the arg-max of its outputs.

    Returns
    -------
    Dataset
    """
    from fastgrad.models.mlp import mlp_trial_arrays  # the package's own generator, trial 0 of ``seed``

    if task not in ("classification", "regression"):
        raise ValueError(f"task: unknown {task!r}; choose classification or regression")
    samples = check_int("samples", samples, minimum=2)
    spec = MLP(depth=check_int("depth", depth), width=check_int("width", width), activation="tanh",
               init="xavier_normal", input_width=check_int("features", features),
               output_width=check_int("outputs", outputs), last_activation="linear")
    W, b, x, _ = mlp_trial_arrays(spec, seed, 1, samples)
    h = x[0]
    for l in range(depth):
        z = h @ W[l][0] + b[l][0]
        h = z if l == depth - 1 else np.tanh(z)
    y = _one_hot(np.argmax(h, axis=1), outputs) if task == "classification" else h
    n_test = int(round(test_fraction * samples))
    return Dataset(x[0][n_test:], y[n_test:], x[0][:n_test], y[:n_test], task, f"teacher-{task}")


def adding(samples: int = 2000, steps: int = 50, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """The adding problem (Hochreiter & Schmidhuber 1997), a task that needs memory over ``steps``.

    Each sequence has two inputs per step: a value u ~ U(0, 1) and a marker that
    is 1 at two positions (one in each half) and 0 elsewhere; the target is the
    sum of the two marked values. Predicting the mean (1.0) gives mse 1/6 ~0.167 (the
    variance of a sum of two U(0, 1); the training loss 0.5 * mse ~0.083): a network must
    carry the first value across ~steps/2 steps.

    Returns
    -------
    Dataset
        ``x`` of shape (N, steps, 2), ``y`` of shape (N, 1), task ``regression``.
    """
    samples = check_int("samples", samples, minimum=2)
    steps = check_int("steps", steps, minimum=2)
    rng = np.random.default_rng(seed)
    x = np.zeros((samples, steps, 2))
    x[:, :, 0] = rng.random((samples, steps))
    half = steps // 2
    first = rng.integers(0, half, samples)
    second = rng.integers(half, steps, samples)
    rows = np.arange(samples)
    x[rows, first, 1] = 1.0
    x[rows, second, 1] = 1.0
    y = (x[rows, first, 0] + x[rows, second, 0])[:, None]
    n_test = int(round(test_fraction * samples))
    return Dataset(x[n_test:], y[n_test:], x[:n_test], y[:n_test], "regression", f"adding-{steps}")


def copy_task(samples: int = 2000, steps: int = 10, symbols: int = 8, delay: int = 50, test_fraction: float = 0.2,
              seed: int = 0) -> Dataset:
    """The copy task (Hochreiter & Schmidhuber 1997; Arjovsky, Shah & Bengio 2016): recall symbols after a delay.

    Each sequence, ``2 steps + delay`` long, shows ``steps`` random symbols (uniform
    over ``symbols`` kinds), then ``delay - 1`` blanks, a marker, and ``steps`` more
    blanks during which the network must output the symbols in their order. So each
    symbol is recalled ``steps + delay`` steps after it was shown (Arjovsky et al.'s T
    is ``delay``, with ``steps=10``, ``symbols=8``). Inputs are one-hot over
    ``symbols + 2`` channels: 0 blank, 1 .. symbols the symbols, symbols + 1 the marker.

    The targets cover the recall phase only: (N, steps, symbols), one-hot, a
    classification per output step (``fastgrad.train`` reads out the last ``steps``
    steps, softmax cross-entropy averaged over them). Arjovsky et al. also score a
    "blank" output at every earlier step, which dilutes the loss by the length; here
    the mean predictor (each symbol 1/symbols, whatever the input) has loss
    ``log(symbols)`` and accuracy ``1/symbols`` on every scored step.

    Parameters
    ----------
    samples : int
        Number of sequences (training plus held-out), >= 2.
    steps : int
        Number of symbols to copy, >= 1.
    symbols : int
        Size of the alphabet, >= 2.
    delay : int
        Steps from the last symbol to the marker, inclusive (>= 1).
    test_fraction : float
        Share of the sequences held out, in [0, 1).
    seed : int

    Returns
    -------
    Dataset
        ``x`` of shape (N, 2 steps + delay, symbols + 2), ``y`` of shape (N, steps, symbols),
        task ``classification``.
    """
    samples = check_int("samples", samples, minimum=2)
    steps = check_int("steps", steps)
    symbols = check_int("symbols", symbols, minimum=2)
    delay = check_int("delay", delay)
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction: must be in [0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, symbols, (samples, steps))
    length = 2 * steps + delay
    codes = np.zeros((samples, length), dtype=np.int64)  # 0: blank
    codes[:, :steps] = labels + 1
    codes[:, steps + delay - 1] = symbols + 1  # the marker
    x = np.eye(symbols + 2)[codes]
    y = np.eye(symbols)[labels]
    n_test = int(round(test_fraction * samples))
    return Dataset(x[n_test:], y[n_test:], x[:n_test], y[:n_test], "classification",
                   f"copy-{steps}x{symbols}-delay-{delay}")


def sort_digits(samples: int = 2000, tokens: int = 8, digits: int = 10, width: int = 32, test_fraction: float = 0.2,
                seed: int = 0) -> Dataset:
    """Sort short digit sequences: a per-token classification task for transformers.

    Each sequence has ``tokens`` digits drawn uniformly from ``0 .. digits - 1``; the
    target at position i is the i-th smallest digit. Token i's input, of width
    ``width``, is the one-hot of its digit (channels ``0 .. digits - 1``) plus the
    one-hot of its position (channels ``digits .. digits + tokens - 1``), zero
    elsewhere, scaled by ``sqrt(width / 2)`` so that each coordinate has mean
    square 1, the scale of the N(0, 1) inputs of :func:`fastgrad.run`. The
    embedding is fixed (no parameters): a transformer's weights are all it learns.
    The position channels are needed: attention without them is permutation
    equivariant and cannot sort. Predicting each position's marginal over the
    digits, whatever the input, is the best a model blind to the input can do; the
    uniform guess has cross-entropy ``log(digits)``.

    Parameters
    ----------
    samples : int
        Number of sequences (training plus held-out), >= 2.
    tokens : int
        Sequence length T, >= 1.
    digits : int
        Alphabet size, >= 2.
    width : int
        Token width d, >= ``digits + tokens``.
    test_fraction : float
        Share of the sequences held out (the first rows), in [0, 1).
    seed : int

    Returns
    -------
    Dataset
        ``x`` of shape (N, tokens, width), ``y`` of shape (N, tokens, digits) (one-hot
        of the sorted digits), task ``classification``.
    """
    samples = check_int("samples", samples, minimum=2)
    tokens = check_int("tokens", tokens)
    digits = check_int("digits", digits, minimum=2)
    width = check_int("width", width)
    if width < digits + tokens:
        raise ValueError(f"width: must be >= digits + tokens = {digits + tokens}, got {width}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction: must be in [0, 1), got {test_fraction}")
    labels = np.random.default_rng(seed).integers(0, digits, (samples, tokens))
    x = np.zeros((samples, tokens, width))
    rows, cols = np.arange(samples)[:, None], np.arange(tokens)[None, :]
    x[rows, cols, labels] = 1.0
    x[:, np.arange(tokens), digits + np.arange(tokens)] = 1.0
    x *= np.sqrt(width / 2.0)
    y = np.eye(digits)[np.sort(labels, axis=1)]
    n_test = int(round(test_fraction * samples))
    return Dataset(x[n_test:], y[n_test:], x[:n_test], y[:n_test], "classification",
                   f"sort-{tokens}x{digits}")
