"""``fastgrad demo``: the classic vanishing/exploding experiments, measured and drawn."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np
import pandas as pd
from tqdm import tqdm

import fastgrad as fg
from fastgrad import GRU, LSTM, MLP, RNN, Chain, ResMLP, Result, __version__, plot, run, stats, theory
from fastgrad.warmup import Job, compile_jobs, describe

Transformer: Any = vars(fg)["Transformer"]  # exported from the model table when fastgrad is imported


@dataclass(frozen=True)
class DemoSize:
    """How big the demo's runs are (the defaults take about a minute on 2 cores).

    Every field is checked when the size is made, before any kernel runs: a bad one raises
    ``ValueError`` naming the field and its command-line flag (``fastgrad demo --trials -1``
    stops at once, with one line and exit status 2).
    """

    trials: int = 1000
    chain_trials: int = 200_000
    depth: int = 50
    width: int = 64
    batch: int = 32
    rnn_steps: int = 100
    phase_trials: int = 16
    train_trials: int = 8
    train_epochs: int = 20
    cure_steps: int = 200
    cure_depth: int = 100
    spectrum_depths: tuple[int, ...] = (8, 32, 128)
    transformer_depth: int = 12
    transformer_trials: int = 64

    def __post_init__(self) -> None:
        for name, minimum in _MINIMA.items():
            _check_count(name, getattr(self, name), minimum)
        depths = self.spectrum_depths
        if isinstance(depths, (str, bytes)) or not hasattr(depths, "__iter__"):
            raise ValueError(f"spectrum_depths (--spectrum-depths): expected a sequence of depths, got {depths!r}")
        depths = tuple(depths)
        if not depths:
            raise ValueError("spectrum_depths (--spectrum-depths): give at least one depth")
        for depth in depths:
            _check_count("spectrum_depths", depth, 1)
        object.__setattr__(self, "spectrum_depths", depths)  # a list becomes the documented tuple


_MINIMA: dict[str, int] = {
    # field: its least value; 2 where a decay rate is fitted (a slope needs two layers or steps)
    "trials": 1, "chain_trials": 1, "depth": 2, "width": 1, "batch": 1, "rnn_steps": 2, "phase_trials": 1,
    "train_trials": 1, "train_epochs": 1, "cure_steps": 2, "cure_depth": 3, "transformer_depth": 2,
    "transformer_trials": 1,
}
_WHY = {2: " (a decay rate is fitted over at least two layers or steps)",
        3: " (a residual MLP has an input layer, at least one block and a read-out)"}


def _check_count(name: str, value: Any, minimum: int) -> None:
    """Refuse anything but an integer >= ``minimum``, naming the field and its command-line flag."""
    label = f"{name} (--{name.replace('_', '-')})"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{label}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{label}: must be >= {minimum}{_WHY.get(minimum, '')}, got {value}")


def _row(name: str, res: Result, metric: str) -> dict[str, Any]:
    rate = stats.decay_rate(res, metric, n_boot=200)
    frac = stats.fractions(res, metric)
    return {"configuration": name, "metric": metric, "layers": res.depth, "trials": res.trials,
            "slope": rate["slope"], "slope_low": rate["low"], "slope_high": rate["high"],
            "depth_scale": rate["depth_scale"], "vanished": frac["vanished"], "exploded": frac["exploded"],
            "nonfinite": frac["nonfinite"], "trials_per_s": res.trials_per_second()}


def run_demo(out: str | Path, size: DemoSize | None = None, progress: bool = True) -> pd.DataFrame:
    """Run every experiment of the demo, write figures and summaries to ``out``.

    Parameters
    ----------
    out : str or Path
        Output folder (created; existing files of the same names are replaced).
    size : DemoSize, optional
        Run sizes; the defaults are the README's demo.
    progress : bool
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        The summary table (also in ``summary.csv`` and ``summary.md``).

    Raises
    ------
    ValueError
        Before any work, naming the argument: ``size`` not a :class:`DemoSize` (whose own fields
        are checked when it is made), or ``out`` a file or a folder that cannot be created.
    """
    # Every argument is checked before any work: a bad one must not cost a minute of compiling first.
    if size is None:
        size = DemoSize()
    elif not isinstance(size, DemoSize):
        raise ValueError(f"size: expected a fastgrad.studies.demo.DemoSize, got {type(size).__name__}")
    out = _output_folder(out)
    mlps: list[tuple[str, dict[str, Any], float, float]] = [
        # name, MLP arguments, sigma_w^2 and sigma_b^2 for the mean-field theory
        ("sigmoid, N(0,1)", dict(activation="sigmoid", init="normal", sigma_w=1.0, sigma_b=1.0), size.width, 1.0),
        ("sigmoid, xavier", dict(activation="sigmoid", init="xavier_normal"), 1.0, 0.0),
        ("tanh, xavier", dict(activation="tanh", init="xavier_normal"), 1.0, 0.0),
        ("tanh, orthogonal", dict(activation="tanh", init="orthogonal"), 1.0, 0.0),
        ("relu, he", dict(activation="relu", init="he_normal"), 2.0, 0.0),
        ("relu, xavier", dict(activation="relu", init="xavier_normal"), 1.0, 0.0),
    ]
    rnns: list[tuple[str, dict[str, Any]]] = [
        ("tanh, normal g=0.9", dict(init="normal", gain=0.9)),
        ("tanh, normal g=1.0", dict(init="normal", gain=1.0)),
        ("tanh, normal g=1.5", dict(init="normal", gain=1.5)),
        ("tanh, orthogonal g=1", dict(init="orthogonal", gain=1.0)),
        ("relu, identity g=1", dict(init="identity", gain=1.0, activation="relu")),
    ]
    sw2 = np.round(np.linspace(0.5, 3.0, 11), 3)
    sb2 = np.round(np.linspace(0.0, 0.3, 6), 3)
    jobs = _jobs([kw for _, kw, _, _ in mlps], [kw for _, kw in rnns])
    bar = tqdm(total=len(jobs) + 3 + len(mlps) + len(rnns) + len(sw2) * len(sb2) + 4, desc="fastgrad demo",
               unit="step", disable=not progress)
    # Compile every kernel first, two processes side by side on a multi-core machine; a
    # second run finds them in the on-disk cache and loads them in a second or two.
    bar.set_description("compiling kernels (the first run only)")
    processes = min(2, int(numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    compile_jobs(jobs, processes=processes, progress=lambda _: bar.update())
    bar.set_description("fastgrad demo")
    rows = []

    vanishing = run(Chain(depth=30), trials=size.chain_trials)
    exploding = run(Chain(depth=30, init="constant", value=100.0, bias_init="centered"), trials=1000)
    rows += [_row("chain sigmoid N(0,1)", vanishing, "grad_b"), _row("chain sigmoid w=100, z=0", exploding, "grad_b")]
    bar.update(2)
    plot.save(plot.chain_figure(vanishing, exploding), out / "chain")

    results: dict[str, Result] = {}
    predicted: dict[str, np.ndarray] = {}
    for name, kwargs, s_w2, s_b2 in mlps:
        res = run(MLP(depth=size.depth, width=size.width, **kwargs), trials=size.trials, batch=size.batch)
        results[name] = res
        predicted[name] = np.sqrt(theory.delta_curve(kwargs["activation"], s_w2, s_b2, size.depth))
        rows.append(_row("mlp " + name, res, "delta"))
        bar.update()
    fig = plot.decay_curves(stats.summary(results, "delta", normalize=True), predicted,
                            ylabel="||delta_l|| / ||delta_L|| (same trial)",
                            title=f"MLP depth {size.depth}, width {size.width}, {size.trials:,} trials each: change "
                                  "the activation, initialise properly")
    plot.save(fig, out / "mlp_decay")

    rnn_results: dict[str, Result] = {}
    rnn_theory: dict[str, np.ndarray] = {}
    for name, kwargs in rnns:
        spec = RNN(steps=size.rnn_steps, hidden=size.width, inputs=16, **kwargs)
        res = run(spec, trials=max(size.trials // 4, 2), batch=16)
        rnn_results[name] = res
        if spec.init in ("normal", "orthogonal"):
            rnn_theory[name] = np.sqrt(theory.rnn_grad_h_curve(spec.activation, spec.gain, 1.0, 0.0, spec.steps))
        rows.append(_row("rnn " + name, res, "grad_h"))
        bar.update()
    fig = plot.decay_curves(stats.summary(rnn_results, "grad_h", normalize=True), rnn_theory,
                            xlabel="time step t (1 = earliest)", ylabel="||dL/dh_t|| / ||dL/dh_S||",
                            title=f"Vanilla RNN, {size.rnn_steps} steps, hidden {size.width}, "
                                  f"{max(size.trials // 4, 2):,} trials each")
    plot.save(fig, out / "rnn_decay")

    slopes = np.empty((len(sb2), len(sw2)))
    for i, b2 in enumerate(sb2):
        for j, w2 in enumerate(sw2):
            mlp = MLP(depth=30, width=size.width, activation="tanh", init="scaled_normal",
                      sigma_w2=float(w2), sigma_b2=float(b2), loss="probe")
            res = run(mlp, trials=size.phase_trials, batch=8)
            slopes[i, j] = stats.decay_rate(res, "delta", n_boot=10)["slope"]
            bar.update()
    line_b2 = np.linspace(sb2[0], sb2[-1], 31)
    critical = {"theory at depth 30": (line_b2, np.array([theory.finite_depth_edge("tanh", b2, 30) for b2 in line_b2])),
                "theory, infinite depth: chi_1 = 1": (line_b2, np.array([theory.critical_sigma_w2("tanh", b2)
                                                                          for b2 in line_b2]))}
    plot.save(plot.phase_diagram(sw2, sb2, slopes, critical,
                                 title=f"Order and chaos: tanh MLP, depth 30, width {size.width}, N(0, sigma_w^2 / n) "
                                       f"weights,\nprobe loss, {size.phase_trials} trials per cell",
                                 xlabel=plot.AXIS_LABELS["sigma_w2"], ylabel=plot.AXIS_LABELS["sigma_b2"]),
              out / "phase_diagram")
    pd.DataFrame(slopes, index=pd.Index(sb2, name="sigma_b2"), columns=pd.Index(sw2, name="sigma_w2")).to_csv(
        out / "phase_diagram.csv")
    # The last steps are long ones: the bar names each while it runs.
    bar.set_description("the cures: gated cells, residual nets")
    rows += _cures(out, size)
    bar.update(2)
    bar.set_description("transformers at initialisation")
    rows += _transformers(out, size)
    bar.update()
    bar.set_description("Jacobian spectra")
    _isometry(out, size)
    bar.update()
    bar.set_description("training the remedies")
    train_table = _training(out, size)
    bar.update()
    bar.set_description("fastgrad demo")
    bar.close()

    table = pd.DataFrame(rows)
    table.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(_markdown(table, size) + training_markdown(train_table))
    return table


def _output_folder(out: str | Path) -> Path:
    """``out`` as a folder, created now: refused (ValueError naming it) if it is a file or cannot be made."""
    if not isinstance(out, (str, Path)) or not str(out):
        raise ValueError(f"out (--out): expected a folder path, got {out!r}")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"out (--out): {path} is a file; give a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"out (--out): cannot create the folder {path}: {err.strerror or err}") from None
    return path


def _jobs(mlps: list[dict[str, Any]], rnns: list[dict[str, Any]]) -> list[Job]:
    """The kernels the demo runs, as warm-up jobs (``fastgrad.warmup.compile_jobs``)."""
    from fastgrad.studies.remedies import BASELINE, REMEDIES, RNN_REMEDIES

    jobs: list[Job] = [("run", Chain(depth=3), "float64")]
    jobs += [("run", MLP(depth=2, width=2, **kw), "float64") for kw in mlps]
    jobs += [("run", RNN(steps=2, hidden=2, inputs=1, **kw), "float64") for kw in rnns]
    jobs += [("run", spec, "float64") for spec in (LSTM(steps=2, hidden=2, inputs=1), GRU(steps=2, hidden=2, inputs=1),
                                                  ResMLP(depth=3, width=2))]
    jobs += [("run", Transformer(depth=2, tokens=2, width=4, heads=1, norm=norm), "float64")
             for norm in ("post", "pre")]
    jobs += [("train", MLP(depth=2, width=2, **{**BASELINE, **net}), "float64") for net, _ in REMEDIES.values()]
    jobs += [("train", RNN(steps=2, hidden=2, inputs=1, **net), "float64") for net, _ in RNN_REMEDIES.values()]
    unique: dict[str, Job] = {}
    for job in jobs:  # one job per kernel: specs that differ only in sizes or scales compile the same kernel
        unique.setdefault(describe(job), job)
    return list(unique.values())


CURE_RNNS: dict[str, Any] = {
    "vanilla tanh RNN, normal g=1": lambda s: RNN(steps=s, hidden=64, inputs=16, init="normal", gain=1.0),
    "LSTM, forget bias 0": lambda s: LSTM(steps=s, hidden=64, inputs=16, init="orthogonal", forget_bias=0.0),
    "LSTM, forget bias 1": lambda s: LSTM(steps=s, hidden=64, inputs=16, init="orthogonal", forget_bias=1.0),
    "LSTM, chrono forget bias": lambda s: LSTM(steps=s, hidden=64, inputs=16, init="orthogonal",
                                               forget_bias="chrono"),
    "GRU, update bias 0": lambda s: GRU(steps=s, hidden=64, inputs=16, init="orthogonal"),
    "GRU, chrono update bias": lambda s: GRU(steps=s, hidden=64, inputs=16, init="orthogonal", update_bias="chrono"),
}
"""The gated cells' comparison: per-step gradients over ``cure_steps`` steps (orthogonal recurrent blocks)."""

_CURE_INIT: dict[str, Any] = {"activation": "tanh", "init": "scaled_normal", "sigma_w2": 1.0, "sigma_b2": 0.05,
                              "loss": "probe"}
CURE_MLPS: dict[str, Any] = {
    "plain": lambda d: MLP(depth=d, width=64, **_CURE_INIT),
    "residual, a = 1": lambda d: ResMLP(depth=d, width=64, residual=1.0, **_CURE_INIT),
    "residual, a = 1/sqrt(L)": lambda d: ResMLP(depth=d, width=64, residual="1/sqrt(L)", **_CURE_INIT),
    "residual + LayerNorm, a = 1/sqrt(L)": lambda d: ResMLP(depth=d, width=64, residual="1/sqrt(L)", norm="layer",
                                                            **_CURE_INIT),
}
"""The residual cures at depth ``cure_depth``: tanh, N(0, 1/n) weights, sigma_b^2 = 0.05 (the ordered phase)."""


def _cures(out: Path, size: DemoSize) -> list[dict[str, Any]]:
    """The cures beside the problem: gated cells against the vanilla RNN, residual and normalised MLPs."""
    rows = []
    trials = max(size.trials // 8, 4)
    runs = {name: run(make(size.cure_steps), trials=trials, batch=16) for name, make in CURE_RNNS.items()}
    reference = {}
    steps = np.arange(size.cure_steps - 1, -1, -1)
    for name, bias in (("LSTM, forget bias 0", 0.0), ("LSTM, forget bias 1", 1.0)):  # (GRU, bias 0: as the first)
        reference[name] = (1.0 / (1.0 + np.exp(-bias))) ** steps
    rows += [_row(name, res, "grad_h") for name, res in runs.items()]
    fig = plot.decay_curves(stats.summary(runs, "grad_h", normalize=True), reference,
                            xlabel="time step t (1 = earliest)", ylabel="||dL/dh_t|| / ||dL/dh_S|| (same trial)",
                            title=f"Gated cells at initialisation, {size.cure_steps} steps, hidden 64: "
                                  "the memory gate's bias sets how far the gradient reaches",
                            theory_label="zero-weight cell: sigmoid(b)^(S - t)")
    plot.save(fig, out / "cures_rnn")
    specs = {name: make(size.cure_depth) for name, make in CURE_MLPS.items()}
    nets = {name: run(spec, trials=trials * 2, batch=size.batch) for name, spec in specs.items()}
    rows += [_row("mlp " + name, res, "grad_w") for name, res in nets.items()]
    fig = plot.decay_curves(stats.summary(nets, "grad_w", normalize=True),
                            ylabel="||dL/dW_l|| / ||dL/dW_L|| (same trial)",
                            title=f"Residual connections and LayerNorm: tanh MLPs, depth {size.cure_depth}, width 64, "
                                  "sigma_w^2 = 1, sigma_b^2 = 0.05\n(residual nets: layers 1 and L are the plain "
                                  "input and read-out layers, the blocks between)")
    plot.save(fig, out / "cures_mlp")
    residual = {name: res for name, res in nets.items() if name != "plain"}
    # The residual law assumes an output gradient independent of the block weights: these nets use the
    # probe loss, and residual_delta_curve_for warns if that ever changes (under mse with a linear read-out
    # the law is 4x off: docs/findings.md).
    predicted = {name: np.sqrt(theory.residual_delta_curve_for(specs[name])) for name in residual}
    loss = specs["residual, a = 1"].loss
    fig = plot.decay_curves(stats.summary(residual, "grad_h", normalize=True), predicted,
                            ylabel="||dL/dh_(l-1)|| / ||dL/dh_(L-1)|| (same trial)",
                            title=f"What reaches each block's input through the skips\ntanh ResMLPs, depth "
                                  f"{size.cure_depth}, width 64, sigma_w^2 = 1, sigma_b^2 = 0.05, {loss} loss",
                            theory_label="mean-field theory, root mean square; it assumes an output gradient\n"
                                         "independent of the weights (probe loss; not mse with a linear read-out);\n"
                                         "a = 1: the data lies above it at width 64, a finite-width excess ~1/n;\n"
                                         "a = 1/sqrt(L): under the data")
    plot.save(fig, out / "cures_resmlp")
    return rows


TRANSFORMER_SHAPE = {"tokens": 8, "width": 32, "heads": 4}
"""The demo's transformers: T = 8 tokens of width d = 32, 4 heads (seconds, not minutes)."""

RANK_CASES: dict[str, dict[str, Any]] = {
    # Dong et al. (2021): what keeps self-attention from collapsing the tokens onto one
    "attention only": dict(norm="none", skip=False, mlp=False),
    "attention + residual": dict(norm="none", mlp=False),
    "attention + MLP": dict(norm="none", skip=False),
    "full block, pre-LN": dict(norm="pre"),
}


def _transformers(out: Path, size: DemoSize) -> list[dict[str, Any]]:
    """Transformers at initialisation: where LayerNorm sits (Xiong et al. 2020) and rank collapse (Dong et al. 2021)."""
    depth, trials = size.transformer_depth, size.transformer_trials
    placements = {f"{norm}-LN": run(Transformer(depth=depth, norm=norm, **TRANSFORMER_SHAPE), trials=trials, batch=4)
                  for norm in ("post", "pre")}
    rows = [_row(f"transformer {name}", res, "grad_w2") for name, res in placements.items()]
    fig = plot.decay_curves(stats.summary(placements, "grad_w2"), xlabel="block l (1 = nearest the input)",
                            ylabel="||dLoss/dW_2|| of block l (median over trials)",
                            title=f"Where LayerNorm sits: transformers of {depth} blocks at initialisation, "
                                  f"T = 8, d = 32, {trials} trials each\npost-LN: the same gradient in every block "
                                  "(Xiong et al.: ~d sqrt(ln d), whatever L); pre-LN: smaller towards the output,\n"
                                  "as the stream's second moment grows (the last block's ~ L^-1/2: "
                                  "docs/transformers.md)")
    plot.save(fig, out / "transformer_layernorm")
    cases = {name: run(Transformer(depth=depth, **TRANSFORMER_SHAPE, **kw), trials=trials, batch=4)
             for name, kw in RANK_CASES.items()}
    frame = stats.summary(cases, "res")
    floor = 1e-17  # pure attention collapses to rounding, and then to exactly 0: drawn at this floor
    for column in ("median", "q25", "q75", "q05", "q95"):
        if column in frame:
            frame[column] = frame[column].clip(lower=floor)
    fig = plot.decay_curves(frame, xlabel="block l (1 = nearest the input)",
                            ylabel="res(X_l) = ||X - 1 mean token|| / ||X|| (1e-17: exactly 0)",
                            title=f"Rank collapse: {depth} blocks, T = 8, d = 32, {trials} trials each\n"
                                  "pure self-attention maps every token to one within a few blocks "
                                  "(doubly exponentially, Dong et al. 2021);\nskips, MLPs and LayerNorm keep "
                                  "the tokens apart")
    plot.save(fig, out / "transformer_rank")
    return rows


def _isometry(out: Path, size: DemoSize) -> pd.DataFrame:
    """Dynamical isometry: the spectra of J for Gaussian and orthogonal weights (spectra.csv, two figures)."""
    from fastgrad.studies.isometry import isometry_study, isometry_theory

    spectra, table = isometry_study(width=size.width, depths=size.spectrum_depths,
                                    trials=max(size.trials // 10, 8))
    table.to_csv(out / "spectra.csv", index=False)
    plot.save(plot.spectral_density(spectra, title=f"Spectra of J J^T at the edge of chaos, width {size.width}, "
                                                   f"{max(size.trials // 10, 8)} trials each",
                                      theory=isometry_theory(size.spectrum_depths)),
              out / "spectral_density")
    plot.save(plot.spectral_variance(table, title=f"Spread of the spectrum against depth, width {size.width}, "
                                                  f"{max(size.trials // 10, 8)} trials each"),
              out / "spectral_variance")
    return table


def _training(out: Path, size: DemoSize) -> pd.DataFrame:
    """The remedies measured during training (digits if scikit-learn is there, else a teacher task)."""
    from fastgrad.data import adding, digits, teacher
    from fastgrad.studies.remedies import mean_predictor_label, mean_predictor_loss, run_remedies, run_rnn_remedies

    try:
        data, named = digits(), "the digits"
    except RuntimeError:  # scikit-learn (the optional data extra) is not installed
        data = teacher("classification", samples=1800, features=64, outputs=10)
        named = (f"{data.name}, a synthetic teacher task (scikit-learn, which ships the digits, is not installed: "
                 "pip install 'fastgrad[data]')")
    table, results = run_remedies(data, epochs=size.train_epochs, trials=size.train_trials)
    table.insert(1, "data", data.name)
    rnn_data = adding(samples=1000, steps=30)
    rnn_table, rnn_results = run_rnn_remedies(rnn_data, epochs=max(size.train_epochs // 2, 1), trials=size.train_trials)
    rnn_table.to_csv(out / "rnn_training_summary.csv", index=False)
    plot.save(plot.training_curves(rnn_results, f"Vanilla RNNs, hidden 32, on the adding problem (30 steps): exploding "
                                                f"gradients, clipping and the IRNN; SGD lr 0.1, {size.train_trials} "
                                                "trials per configuration", reference=mean_predictor_loss(rnn_data),
                                   reference_label=mean_predictor_label(rnn_data)), out / "rnn_training_loss")
    table.to_csv(out / "training_summary.csv", index=False)
    setting = f"MLP depth 5, width 30, SGD lr 0.1, batch 32, {size.train_trials} trials per configuration"
    plot.save(plot.training_curves(results, f"The remedies on {named}: {setting}", reference=mean_predictor_loss(data),
                                   reference_label=mean_predictor_label(data)), out / "training_loss")
    plot.save(plot.learning_speed(results, title=f"How fast each layer learns on {named}: ||dC/db_l|| per epoch, "
                                                 f"median over trials; {setting}"), out / "learning_speed")
    return table


def training_markdown(table: pd.DataFrame) -> str:
    """The training table as a Markdown section."""
    shown = table.drop(columns=["seconds"])
    lines = ["", "## The remedies during training", "",
             "Trials of a 5-layer, width-30 MLP trained from the same draws; medians over trials.",
             "`speed_first_over_last_hidden`: ||dC/db_1|| / ||dC/db_4|| in the first epoch.", "",
             *stats.markdown_table(shown)]
    lines += ["", "Figures: training_loss.png, learning_speed.png; the RNN experiment (exploding gradients, "
              "clipping, the IRNN): rnn_training_loss.png, rnn_training_summary.csv.", ""]
    return "\n".join(lines)


def _markdown(table: pd.DataFrame, size: DemoSize) -> str:
    shown = table.drop(columns=["trials_per_s"])
    lines = [
        "# fastgrad demo",
        "",
        f"fastgrad {__version__}. `slope`: fitted slope of log(norm) per layer or step (> 0: the gradient",
        "vanishes going back to the input; 95% bootstrap interval in `slope_low`/`slope_high`);",
        "`depth_scale` = 1/|slope|; `vanished`/`exploded`: fraction of trials whose first/last ratio is",
        "below 1e-6 / above 1e6; `nonfinite`: fraction with inf or nan (counted, never dropped).",
        "",
        *stats.markdown_table(shown),
    ]
    lines += ["", "Figures: chain.png, mlp_decay.png, rnn_decay.png, phase_diagram.png, cures_rnn.png, cures_mlp.png, "
              "cures_resmlp.png, spectral_density.png, spectral_variance.png (and .svg); spectra.csv.", ""]
    return "\n".join(lines)
