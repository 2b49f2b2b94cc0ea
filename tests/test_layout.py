"""``Layout``, the one parameter layout: its offsets and views are the ones the flat
``params`` buffer has always had (the formulas ``MLP`` used before it), and ``MLP``'s
``weights``, ``biases`` and ``macs_per_sample`` come from it."""

import pickle

import numpy as np
import pytest

import fastgeo
from fastgeo.layout import Layout

SIZES = [(1, 1), (2, 8, 8, 1), (3, 5, 2), (32, 512, 512, 1), (4, 7, 1, 6, 3)]


def _old_offsets(sizes):
    """The formulas MLP._setup and MLP._unflatten used before Layout."""
    out, p = [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        out.append((p, p + fan_in * fan_out, p + fan_in * fan_out + fan_out))
        p += fan_in * fan_out + fan_out
    return out


@pytest.mark.parametrize("sizes", SIZES)
def test_layout_matches_the_old_formulas(sizes):
    layout = Layout(sizes)
    assert layout.sizes == sizes
    assert list(layout.offsets) == _old_offsets(sizes)
    assert layout.n_params == sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
    assert layout.macs_per_sample == sum(i * o for i, o in zip(sizes[:-1], sizes[1:]))
    assert layout.n_units == sum(sizes[1:])
    assert list(layout.unit_bounds) == list(np.cumsum((0,) + sizes[1:]))
    flat = np.arange(layout.n_params, dtype=np.float64)
    Ws, bs = layout.views(flat)
    for (w, b, e), (fan_in, fan_out), W, bias, ws, bsl in zip(
            _old_offsets(sizes), zip(sizes[:-1], sizes[1:]), Ws, bs,
            layout.weight_slices, layout.bias_slices):
        assert W.shape == (fan_in, fan_out) and np.shares_memory(W, flat)
        np.testing.assert_array_equal(W.ravel(), flat[w:b])
        np.testing.assert_array_equal(bias, flat[b:e])
        assert (ws, bsl) == (slice(w, b), slice(b, e))
    A = np.arange(3 * layout.n_units).reshape(3, layout.n_units)
    parts = layout.split_units(A)
    assert [p.shape for p in parts] == [(3, s) for s in sizes[1:]]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), A)


def test_layout_is_immutable_hashable_and_picklable():
    layout = Layout((2, 8, 8, 1))
    with pytest.raises(AttributeError):
        layout.n_params = 3
    assert Layout([2, 8, 8, 1]) == layout and hash(Layout((2, 8, 8, 1))) == hash(layout)
    assert pickle.loads(pickle.dumps(layout)) == layout


@pytest.mark.parametrize("sizes", SIZES[:3])
def test_mlp_views_and_macs_come_from_the_layout(sizes):
    net = fastgeo.MLP(sizes, seed=1)
    Ws, bs = Layout(sizes).views(net.params)
    for a, b in zip(net.weights + net.biases, Ws + bs):
        np.testing.assert_array_equal(a, b)
        assert np.shares_memory(a, net.params)
    assert net.macs_per_sample == Layout(sizes).macs_per_sample
