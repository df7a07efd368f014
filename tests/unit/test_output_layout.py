"""abscopal.outputs.OutputLayout: store columns and the views of each output group (no model, no solver)."""

from __future__ import annotations

import numpy as np
import pytest

from abscopal.errors import ParameterError
from abscopal.outputs import OutputLayout, check_dtype, chunk_patients

# lesion states interleaved every 3 (x_0, y_0, z_0, x_1, ...), one state without lesion, observables every 2
GROUPS = {
    "x": [("state", 0, 0, "mm3", "x"), ("state", 3, 1, "mm3", "x")],
    "y": [("state", 4, 1, "1", "y"), ("state", 1, 0, "1", "y")],  # members out of lesion order
    "w": [("state", 6, None, "1", "w")],
    "u": [("obs", 0, 0, "mm", "u"), ("obs", 2, 1, "mm", "u")],
    "v": [("obs", 1, 0, "1", "v"), ("obs", 3, 1, "1", "v"), ("obs", 7, 2, "1", "v")],  # uneven: copied
}


def test_columns_are_kept_states_then_observables_in_kernel_order():
    layout = OutputLayout.of(GROUPS, ["w", "y", "x", "v"])
    assert layout.states == (0, 1, 3, 4, 6) and layout.observables == (1, 3, 7)
    assert list(layout.groups) == ["x", "y", "w", "v"]  # the model's group order, lesions in index order
    assert [m[2] for m in layout.groups["y"]] == [0, 1]
    assert layout.n_columns == 8 and layout.column(("obs", 7, 2, "1", "v")) == 7


def test_views_and_the_copied_uneven_group():
    layout = OutputLayout.of(GROUPS, list(GROUPS))
    n_arms, n, n_times = 2, 3, 4
    store = np.arange(n_arms * n * n_times * layout.n_columns, dtype=float).reshape(n_arms * n, n_times, -1)
    views = layout.views(store, n_arms)
    for name, members in layout.groups.items():
        expected = np.stack([store[:, :, layout.column(m)] for m in members], axis=1)
        if members[0][2] is None:
            expected = expected[:, 0]
        np.testing.assert_array_equal(views[name].reshape(expected.shape), expected)
    assert np.may_share_memory(views["x"], store) and np.may_share_memory(views["u"], store)
    assert not np.may_share_memory(views["v"], store)  # observables 1, 3, 7 are columns 6, 8, 9: a copy
    assert views["x"].shape == (n_arms, n, 2, n_times) and views["w"].shape == (n_arms, n, n_times)


def test_chunks_and_dtypes():
    assert chunk_patients(10_000, 739, 37, n_threads=2) == 76  # 16 MiB of float64 buffers (76.7 patients), even
    assert chunk_patients(10, 739, 37, n_threads=2) == 10
    assert chunk_patients(10_000, 10**6, 37, n_threads=4) == 32  # at least 8 per thread
    assert check_dtype("float32") == np.float32 and check_dtype(np.float64) == np.float64
    with pytest.raises(ParameterError, match="dtype must be one of"):
        check_dtype("float16")
