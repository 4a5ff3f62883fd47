"""The vectorisable elementary functions of ``fastgrad._math`` against NumPy."""

import numba
import numpy as np
import pytest

from fastgrad import _math


def vectorised(func):
    if not isinstance(func, numba.core.dispatcher.Dispatcher):
        func = numba.njit(func)

    @numba.njit
    def apply(x):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = func(x[i])
        return out

    return apply


EXP_GRID = np.concatenate([np.linspace(-750, 720, 20001), np.linspace(-1, 1, 2001), np.array([-1e-300, 0.0, 1e-300])])


def ulp_error(got, want):
    return np.abs(got - want) / np.spacing(np.abs(want))


@pytest.mark.parametrize("name, ref", [("exp", np.exp), ("expm1", np.expm1)])
def test_exp_and_expm1_within_a_few_ulp(name, ref):
    got = vectorised(getattr(_math, name))(EXP_GRID)
    with np.errstate(over="ignore"):
        want = ref(EXP_GRID)
    np.testing.assert_array_equal(got[np.isinf(want)], want[np.isinf(want)])
    normal = (np.abs(want) > np.finfo(np.float64).tiny) & np.isfinite(want)
    assert np.max(ulp_error(got[normal], want[normal])) <= 4
    # Subnormal and zero results: absolute error below the smallest normal's spacing.
    small = ~normal & np.isfinite(want)
    assert np.all(np.abs(got[small] - want[small]) <= np.spacing(np.finfo(np.float64).tiny))


@pytest.mark.parametrize("name", ["exp", "expm1"])
def test_inf_and_nan_propagate(name):
    got = vectorised(getattr(_math, name))(np.array([np.inf, -np.inf, np.nan, 1e4, -1e4]))
    with np.errstate(over="ignore"):
        want = getattr(np, name)(np.array([np.inf, -np.inf, np.nan, 1e4, -1e4]))
    np.testing.assert_array_equal(got, want)


def test_log1p_unit():
    t = np.linspace(0.0, 1.0, 10001)
    got = vectorised(_math.log1p_unit)(t)
    assert np.max(ulp_error(got[1:], np.log1p(t[1:]))) <= 4 and got[0] == 0.0


def test_log_unit_and_sincos_turn_to_the_documented_accuracy():
    u = np.concatenate([np.linspace(2.0**-32, 1.0, 100001), 2.0 ** -np.arange(1, 33)])
    np.testing.assert_allclose(vectorised(_math.log_unit)(u), np.log(u), rtol=2e-13, atol=2e-13)
    v = np.linspace(0.0, 1.0, 100001, endpoint=False)
    cos = vectorised(lambda x: _math.sincos_turn(x)[0])
    sin = vectorised(lambda x: _math.sincos_turn(x)[1])
    # The series' truncation is < 1e-13; the argument reduction adds rounding: 3.9e-13 measured.
    np.testing.assert_allclose(cos(v), np.cos(2 * np.pi * v), rtol=0, atol=5e-13)
    np.testing.assert_allclose(sin(v), np.sin(2 * np.pi * v), rtol=0, atol=5e-13)


def test_float32_exp_expm1_within_the_documented_accuracy():
    x = -np.linspace(0.0, 120.0, 200001).astype(np.float32)
    e = vectorised(lambda z: _math.exp_expm1_32(z)[0])(x)
    em1 = vectorised(lambda z: _math.exp_expm1_32(z)[1])(x)
    assert e.dtype == np.float32
    want = np.exp(x.astype(np.float64))
    normal = want > np.finfo(np.float32).tiny
    assert np.max(np.abs(e[normal] - want[normal]) / want[normal]) < 3e-7
    np.testing.assert_allclose(em1, np.expm1(x.astype(np.float64)), rtol=3e-7, atol=1e-45)
