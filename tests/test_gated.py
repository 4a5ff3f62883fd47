"""LSTM and GRU kernels against PyTorch autograd, finite differences and closed forms."""

import numpy as np
import pytest

import fastgrad as fg

LOSSES = ("last", "all", "probe")


def _loss_value(hs, y, loss):
    """The losses of the vanilla RNN, for a list of h_1..h_S (numpy or torch)."""
    batch = hs[-1].shape[0]
    if loss == "probe":
        return (hs[-1] * y).sum() / batch
    if loss == "last":
        return ((hs[-1] - y) ** 2).sum() / (2 * batch)
    return sum(((h - y[t]) ** 2).sum() for t, h in enumerate(hs)) / (2 * batch)


def _torch_reference(cell, arrays, loss):
    """Per-step gradients by autograd through torch's own cells, one weight copy per step.

    Also checks that torch.nn.LSTM / nn.GRU with the same weights gives the same h_S and
    weight gradients, so the gate layout is PyTorch's.
    """
    torch = pytest.importorskip("torch")
    if cell == "lstm":
        wh, wx, b, x, y = arrays
        bh = np.zeros_like(b)
    else:
        wh, wx, b, bh, x, y = arrays
    steps, batch, _ = x.shape
    n = wh.shape[0]
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    module = (torch.nn.LSTMCell if cell == "lstm" else torch.nn.GRUCell)(wx.shape[0], n).double()
    full = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(wx.shape[0], n).double()
    params = {"weight_ih": t(wx.T), "weight_hh": t(wh.T), "bias_ih": t(b), "bias_hh": t(bh)}
    with torch.no_grad():
        for name, value in params.items():
            getattr(full, name + "_l0").copy_(value)
    per_step = [{k: v.clone().requires_grad_(True) for k, v in params.items()} for _ in range(steps)]
    h = torch.zeros(batch, n, dtype=torch.float64)
    c = torch.zeros(batch, n, dtype=torch.float64)
    hs, cs = [], []
    for s in range(steps):
        args = (t(x[s]), (h, c)) if cell == "lstm" else (t(x[s]), h)
        out = torch.func.functional_call(module, per_step[s], args)
        h, c = out if cell == "lstm" else (out, c)
        h.retain_grad()
        hs.append(h)
        if cell == "lstm":
            c.retain_grad()
            cs.append(c)
    value = _loss_value(hs, t(y), loss)
    value.backward()
    out, _ = full(t(x))
    full_value = _loss_value(list(out), t(y), loss)
    full_value.backward()
    total = {k: sum(p[k].grad for p in per_step) for k in params}
    for k in params:  # the unrolled cells are nn.LSTM / nn.GRU
        np.testing.assert_allclose(getattr(full, k + "_l0").grad.numpy(), total[k].numpy(), rtol=1e-10, atol=1e-14)
    gates = 4 if cell == "lstm" else 3
    ref = {"grad_h": [float(h.grad.norm()) for h in hs], "q": []}
    if cell == "lstm":
        ref["grad_c"] = [float(c.grad.norm()) for c in cs]
    whh_t = [p["weight_hh"].grad.numpy().T for p in per_step]  # (n, G n): step t's share of dLoss/dW_h
    ref["grad_whh_step"] = [np.linalg.norm(w) for w in whh_t]
    names = ("i", "f", "g", "o") if cell == "lstm" else ("r", "z", "n")
    for k, g in enumerate(names):
        ref[f"grad_whh_{g}_step"] = [np.linalg.norm(w[:, k * n:(k + 1) * n]) for w in whh_t]
        ref[f"grad_whh_{g}"] = np.linalg.norm(total["weight_hh"].numpy()[k * n:(k + 1) * n])
    ref["grad_whh"] = float(total["weight_hh"].norm())
    ref["grad_wxh"] = float(total["weight_ih"].norm())
    if cell == "lstm":
        ref["grad_b"] = float(total["bias_ih"].norm())
    else:
        ref["grad_b_ih"] = float(total["bias_ih"].norm())
        ref["grad_b_hh"] = float(total["bias_hh"].norm())
    del ref["q"]
    assert gates in (3, 4)
    return ref


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_cells_match_torch_autograd(cell, loss):
    kwargs = {"forget_bias": 1.0} if cell == "lstm" else {"update_bias": 0.5}
    spec_type = fg.LSTM if cell == "lstm" else fg.GRU
    spec = spec_type(steps=7, hidden=5, inputs=3, init="orthogonal", gain=1.2, input_init="xavier_normal",
                     sigma_b=0.4, loss=loss, **kwargs)
    arrays = fg.gated_trial_arrays(spec, seed=3, trials=3, batch=4)
    got = (fg.lstm_backprop if cell == "lstm" else fg.gru_backprop)(*arrays, loss=loss)
    run = fg.run(spec, trials=3, batch=4, seed=3)
    for k, v in got.arrays.items():  # the generated run is the explicit run of the drawn arrays, bit for bit
        np.testing.assert_array_equal(run.arrays[k], v, err_msg=k)
    for trial in range(3):
        one = tuple(a[trial] for a in arrays)
        ref = _torch_reference(cell, one, loss)
        for k, want in ref.items():
            np.testing.assert_allclose(got.arrays[k][trial], want, rtol=1e-10, atol=1e-300, err_msg=k)


def _numpy_lstm_loss(wh, wx, b, x, y, loss):
    n = wh.shape[0]
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    h = np.zeros((x.shape[1], n))
    c = np.zeros_like(h)
    hs = []
    for s in range(x.shape[0]):
        a = x[s] @ wx + h @ wh + b
        i, f, g, o = sig(a[:, :n]), sig(a[:, n:2 * n]), np.tanh(a[:, 2 * n:3 * n]), sig(a[:, 3 * n:])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
    return _loss_value(hs, y, loss)


def _numpy_gru_loss(wh, wx, bx, bh, x, y, loss):
    n = wh.shape[0]
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    h = np.zeros((x.shape[1], n))
    hs = []
    for s in range(x.shape[0]):
        ax, ah = x[s] @ wx + bx, h @ wh + bh
        r, z = sig(ax[:, :n] + ah[:, :n]), sig(ax[:, n:2 * n] + ah[:, n:2 * n])
        cand = np.tanh(ax[:, 2 * n:] + r * ah[:, 2 * n:])
        h = (1 - z) * cand + z * h
        hs.append(h)
    return _loss_value(hs, y, loss)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_weight_gradients_match_central_differences(cell):
    spec = (fg.LSTM(steps=5, hidden=3, inputs=2, sigma_b=0.3, loss="all") if cell == "lstm"
            else fg.GRU(steps=5, hidden=3, inputs=2, sigma_b=0.3, loss="all"))
    arrays = [a[0] for a in fg.gated_trial_arrays(spec, seed=1, trials=1, batch=2)]
    f = _numpy_lstm_loss if cell == "lstm" else _numpy_gru_loss
    grads = []
    for which in (0, 1):  # W_h, W_x
        w = arrays[which]
        grad = np.zeros_like(w)
        for idx in np.ndindex(w.shape):
            hi, lo = [a.copy() for a in arrays], [a.copy() for a in arrays]
            hi[which][idx] += 1e-6
            lo[which][idx] -= 1e-6
            grad[idx] = (f(*hi, loss="all") - f(*lo, loss="all")) / 2e-6
        grads.append(grad)
    got = (fg.lstm_backprop if cell == "lstm" else fg.gru_backprop)(*[a[None] for a in arrays], loss="all")
    np.testing.assert_allclose(got.grad_whh[0], np.linalg.norm(grads[0]), rtol=1e-7)
    np.testing.assert_allclose(got.grad_wxh[0], np.linalg.norm(grads[1]), rtol=1e-7)
    n = spec.hidden
    for k, g in enumerate(("i", "f", "g", "o") if cell == "lstm" else ("r", "z", "n")):
        np.testing.assert_allclose(got.arrays[f"grad_whh_{g}"][0], np.linalg.norm(grads[0][:, k * n:(k + 1) * n]),
                                   rtol=1e-7)


@pytest.mark.parametrize("bias", [0.0, 1.0, 3.0])
def test_lstm_with_zero_weights_carries_the_cell_gradient_by_the_forget_gate_exactly(bias):
    # W_h = W_x = 0, every bias 0 but b_f: ||dL/dc_t|| = sigmoid(b_f)^(S - t) ||dL/dc_S|| under the last loss.
    spec = fg.LSTM(steps=40, hidden=6, inputs=3, init="identity", gain=0.0, input_scale=0.0, forget_bias=bias)
    res = fg.run(spec, trials=5, batch=3)
    f = 1 / (1 + np.exp(-bias))
    want = res.grad_c[:, -1:] * f ** np.arange(39, -1, -1)
    np.testing.assert_allclose(res.grad_c, want, rtol=1e-12)


@pytest.mark.parametrize("bias", [-1.0, 0.0, 2.0])
def test_gru_with_zero_weights_carries_the_gradient_by_the_update_gate_exactly(bias):
    # W_h = W_x = 0, biases 0 but b_z: dL/dh_{t-1} = z dL/dh_t, so ||dh_S/dh_t|| = sigmoid(b_z)^(S - t).
    spec = fg.GRU(steps=40, hidden=6, inputs=3, init="identity", gain=0.0, input_scale=0.0, update_bias=bias)
    res = fg.run(spec, trials=5, batch=3)
    z = 1 / (1 + np.exp(-bias))
    np.testing.assert_allclose(res.grad_h, res.grad_h[:, -1:] * z ** np.arange(39, -1, -1), rtol=1e-12)


def test_chrono_init_draws_log_uniform_forget_biases():
    spec = fg.LSTM(steps=10, hidden=2000, inputs=2, forget_bias="chrono", chrono_max=50)
    _, _, b, _, _ = fg.gated_trial_arrays(spec, seed=0, trials=1, batch=1)
    n = spec.hidden
    bf, bi = b[0, n:2 * n], b[0, :n]
    np.testing.assert_array_equal(bi, -bf)  # Tallec & Ollivier: b_i = -b_f
    u = np.exp(bf)
    assert 1 <= u.min() and u.max() <= 49
    assert abs(u.mean() - 25) < 1.0  # U(1, 49): mean 25, sd 13.9, standard error 0.31
    gru = fg.GRU(steps=10, hidden=500, inputs=2, update_bias="chrono")
    _, _, bx, bh, _, _ = fg.gated_trial_arrays(gru, seed=0, trials=1, batch=1)
    assert np.all(np.exp(bx[0, 500:1000]) <= 9) and np.all(bh[0, 500:1000] == 0)


@pytest.mark.parametrize("spec", [fg.LSTM(steps=12, hidden=8, inputs=3, init="orthogonal"),
                                  fg.GRU(steps=12, hidden=8, inputs=3, loss="all")])
def test_gated_runs_do_not_depend_on_threads_or_chunks(spec):
    a = fg.run(spec, trials=9, batch=2, threads=1)
    b = fg.run(spec, trials=9, batch=2, threads=2, chunk=4)
    for k in a.arrays:
        np.testing.assert_array_equal(a.arrays[k], b.arrays[k], err_msg=k)
    c = fg.run(spec, trials=5, batch=2, dtype="float32")
    np.testing.assert_allclose(c.grad_h, a.grad_h[:5], rtol=1e-3)  # float32: the same trials, rounded


def test_gated_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="forget_bias"):
        fg.LSTM(steps=3, hidden=2, inputs=1, forget_bias="big")
    with pytest.raises(ValueError, match="chrono_max"):
        fg.GRU(steps=3, hidden=2, inputs=1, chrono_max=10)
    with pytest.raises(ValueError, match="input_init"):
        fg.GRU(steps=3, hidden=2, inputs=1, input_init="he")
    with pytest.raises(ValueError, match="backend: LSTM runs on the CPU only"):
        fg.run(fg.LSTM(steps=3, hidden=2, inputs=1), trials=2, backend="cuda")
    with pytest.raises(ValueError, match="backend: gru runs on the CPU only"):  # a sweep says so before anything runs
        fg.sweep("gru", {"steps": 3, "hidden": 2, "inputs": 1}, trials=2, store="never-written", backend="cuda",
                 progress=False)
    arrays = fg.gated_trial_arrays(fg.LSTM(steps=3, hidden=2, inputs=1), seed=0, trials=2, batch=1)
    with pytest.raises(ValueError, match="W_h: expected"):
        fg.lstm_backprop(arrays[0][:, :, :6], *arrays[1:])
    with pytest.raises(ValueError, match="b: expected shape"):
        fg.lstm_backprop(arrays[0], arrays[1], arrays[2][:, :4], *arrays[3:])


def test_gated_overflow_is_recorded_not_dropped():
    arrays = list(fg.gated_trial_arrays(fg.GRU(steps=6, hidden=4, inputs=2), seed=0, trials=3, batch=2))
    arrays[0] = arrays[0].copy()
    arrays[0][1] *= 1e300  # trial 1's recurrent weights: its pre-activations' mean square overflows
    res = fg.gru_backprop(*arrays)
    assert res.nonfinite()["q"] == 1 and np.isinf(res.q[1]).any() and np.isfinite(res.q[[0, 2]]).all()
    # The gates saturate, so the gradient itself stays finite: exactly 0 through the saturated step.
    assert np.isfinite(res.grad_h).all() and res.grad_h[1, 0] == 0.0


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gated_jacobian_norms_match_torch_jacobians(cell):
    torch = pytest.importorskip("torch")
    spec_type = fg.LSTM if cell == "lstm" else fg.GRU
    spec = spec_type(steps=6, hidden=4, inputs=2, init="orthogonal", gain=1.3, sigma_b=0.3, jacobian=True)
    arrays = fg.gated_trial_arrays(spec, seed=2, trials=2, batch=3)
    got = (fg.lstm_backprop if cell == "lstm" else fg.gru_backprop)(*arrays, jacobian=True)
    run = fg.run(spec, trials=2, batch=3, seed=2)
    np.testing.assert_array_equal(run.jacobian_norm, got.jacobian_norm)
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    for trial in range(2):
        wh, wx, b = arrays[0][trial], arrays[1][trial], arrays[2][trial]
        bh = arrays[3][trial] if cell == "gru" else np.zeros_like(b)
        x = arrays[-2][trial][:, :1]  # the first sequence
        module = (torch.nn.LSTMCell if cell == "lstm" else torch.nn.GRUCell)(2, 4).double()
        params = {"weight_ih": t(wx.T), "weight_hh": t(wh.T), "bias_ih": t(b), "bias_hh": t(bh)}

        def step(s, state, x=x, module=module, params=params):
            args = (t(x[s]), state) if cell == "lstm" else (t(x[s]), state[0])
            out = torch.func.functional_call(module, params, args)
            return out if cell == "lstm" else (out, state[1])

        states = [(torch.zeros(1, 4, dtype=torch.float64), torch.zeros(1, 4, dtype=torch.float64))]
        for s in range(6):
            states.append(tuple(v.detach() for v in step(s, states[-1])))
        for s in range(1, 7):  # dh_S/dh_s (and dc_S/dc_s) from the state after step s
            def h_from(h, s=s, states=states, step=step):
                state = (h, states[s][1])
                for k in range(s, 6):
                    state = step(k, state)
                return state[0]

            jac = torch.autograd.functional.jacobian(h_from, states[s][0])
            np.testing.assert_allclose(got.jacobian_norm[trial, s - 1], float(jac.norm()), rtol=1e-10)
            if cell == "lstm":
                def c_from(c, s=s, states=states, step=step):
                    state = (states[s][0], c)
                    for k in range(s, 6):
                        state = step(k, state)
                    return state[1]

                jac_c = torch.autograd.functional.jacobian(c_from, states[s][1])
                np.testing.assert_allclose(got.jacobian_c_norm[trial, s - 1], float(jac_c.norm()), rtol=1e-10)


def test_zero_weight_cells_have_the_exact_jacobian_norms():
    # sqrt(n) sigmoid(b)^(S - t): dc_S/dc_t = diag(f)^(S-t) for the LSTM, dh_S/dh_t = diag(z)^(S-t) for the GRU.
    k = np.arange(29, -1, -1)
    lstm = fg.run(fg.LSTM(steps=30, hidden=5, inputs=2, init="identity", gain=0.0, input_scale=0.0,
                          forget_bias=2.0, jacobian=True), trials=3, batch=2)
    np.testing.assert_allclose(lstm.jacobian_c_norm, np.sqrt(5) / (1 + np.exp(-2.0)) ** k * np.ones((3, 1)),
                               rtol=1e-12)
    gru = fg.run(fg.GRU(steps=30, hidden=5, inputs=2, init="identity", gain=0.0, input_scale=0.0,
                        update_bias=1.0, jacobian=True), trials=3, batch=2)
    np.testing.assert_allclose(gru.jacobian_norm, np.sqrt(5) / (1 + np.exp(-1.0)) ** k * np.ones((3, 1)), rtol=1e-12)


def test_gated_sweeps_store_load_analyse_and_plot(tmp_path):
    from fastgrad.analysis import decay_table
    from fastgrad.report import plot_store

    store = tmp_path / "gates"
    fg.sweep("lstm", {"steps": 6, "hidden": 4, "inputs": 2, "forget_bias": [0.0, 1.0]}, trials=5, batch=2,
             store=store, progress=False)
    frame = fg.load(store)
    assert set(frame["forget_bias"]) == {0.0, 1.0} and {"grad_h", "grad_c", "grad_whh_f_step"} <= set(frame.columns)
    table = decay_table(store, n_boot=20)
    assert len(table) == 2 and table["slope"].notna().all()
    # The forget bias keeps more of the gradient: a smaller decay rate of ||dL/dh_t|| per step.
    assert table.set_index("forget_bias").loc[1.0, "slope"] < table.set_index("forget_bias").loc[0.0, "slope"]
    paths = plot_store(store)
    assert any(p.name == "decay_curves.png" for p in paths)
    gru = tmp_path / "gru"
    fg.sweep("gru", {"steps": 5, "hidden": 3, "inputs": 2, "update_bias": ["chrono", 0.0]}, trials=3, batch=2,
             store=gru, progress=False)
    assert len(fg.load(gru)) == 2 * 3 * 5
