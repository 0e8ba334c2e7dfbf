"""A partial push as a user meets it (issue 23 F): a bad label in row 550 of a 600-row file is
named by its row in the file, the message says the first 500 rows are stored, and pushing the
fixed file stores only the missing 100 (before: 1,100 rows, 500 of them twice)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from lure_client.client import LureClient, PushRefused
from lure_core.records import ChunkRow


@pytest.fixture()
def lure(client):
    remote = LureClient()
    remote.http.close()
    remote.http = client  # the Python client's own code, over the in-process app
    return remote


def _stored_rows(client) -> int:
    with client.app.state.resources.sessions() as session:
        return session.scalar(select(func.sum(ChunkRow.n_samples))) or 0


def test_a_bad_row_is_named_in_the_file_and_a_fixed_push_stores_only_the_rest(
    client, model, digits, lure
):
    x, y = digits.train.x[:600], digits.train.y[:600].copy()
    y[550] = 11
    with pytest.raises(PushRefused) as refused:
        lure.push_arrays("digits", x, y, chunk_size=500)
    detail = refused.value.detail
    assert "row 550 (labels[50] of that chunk)" in detail
    assert "rows 0-499 (500 samples) are stored" in detail
    assert _stored_rows(client) == 500
    y[550] = 3
    answers = lure.push_arrays("digits", x, y, chunk_size=500)
    assert [a.get("replayed", False) for a in answers] == [True, False]
    assert _stored_rows(client) == 600


def test_the_same_push_twice_stores_nothing_twice(client, model, digits, lure):
    x, y = digits.train.x[:120], digits.train.y[:120]
    lure.push_arrays("digits", x, y, chunk_size=50)
    again = lure.push_arrays("digits", x, y, chunk_size=50)
    assert all(a["replayed"] for a in again) and _stored_rows(client) == 120
    assert np.array_equal(x, digits.train.x[:120])  # the client never changes the caller's data
