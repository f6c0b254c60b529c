"""bpttlab.cells.buffers: the Recycler that lends result buffers again, and that a result kept by the
caller is never overwritten by a later pass."""
from __future__ import annotations

import numpy as np

import bpttlab as bl
from bpttlab.cells.buffers import Recycler

SHAPES = ((4, 3, 5), (5, 3, 5), (4, 3, 2), (7,))


def address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def test_arrays_of_one_request_have_their_shapes_and_do_not_overlap():
    arrays = Recycler(min_size=1).take(*SHAPES)
    assert [a.shape for a in arrays] == list(SHAPES)
    for i, a in enumerate(arrays):
        assert a.dtype == np.float64 and a.flags.c_contiguous
        for b in arrays[i + 1:]:
            assert not np.shares_memory(a, b)


def test_a_buffer_is_lent_again_only_when_no_view_of_it_is_alive():
    rec = Recycler(min_size=1)
    first = rec.take(*SHAPES)
    kept = first[1][2:]  # a view of a view keeps the buffer too
    where = address(first[0])
    del first
    second = rec.take(*SHAPES)
    assert all(not np.shares_memory(kept, a) for a in second)
    del kept
    third = rec.take(*SHAPES)
    assert address(third[0]) == where


def test_at_most_keep_buffers_and_none_too_large():
    rec = Recycler(min_size=1, max_size=200, keep=2)
    held = [rec.take(*SHAPES) for _ in range(3)]
    big = rec.take((300,))
    assert len(rec._buffers) == 2 and all(b.size <= 200 for b in rec._buffers)
    del held, big
    again = [rec.take(*SHAPES) for _ in range(2)]
    assert {address(a[0]) for a in again} <= {address(b) for b in rec._buffers}


def test_a_kept_result_is_not_overwritten_by_later_passes():
    T, B = 300, 64  # big enough for the trace to come from recycled buffers
    net = bl.make("elman", n_in=2, n_hidden=4, n_out=3, seed=0)
    rng = np.random.default_rng(0)
    xs, ys = rng.normal(size=(T, B, 2)), rng.normal(size=(T, B, 3))
    first = bl.bptt(net, xs, ys)
    h, outputs = first.trace.h.copy(), first.trace.outputs.copy()
    for scale in (0.5, 2.0):
        later = bl.bptt(net, scale * xs, ys)
        assert not np.shares_memory(later.trace.h, first.trace.h)
        del later
    np.testing.assert_array_equal(first.trace.h, h)
    np.testing.assert_array_equal(first.trace.outputs, outputs)
    np.testing.assert_allclose(first.by_copy["W"].sum(axis=0), first.grads["W"], rtol=1e-10, atol=1e-12)
    where = address(first.trace.h)
    del first
    assert address(bl.bptt(net, xs, ys).trace.h) == where  # dropped, so its memory serves the next pass
