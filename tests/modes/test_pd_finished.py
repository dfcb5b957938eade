"""A PD deployment's finished requests as columns (sim.modes.pd.finished)."""
import math

import pytest

from sim.modes.pd.finished import FIELDS, FinishedRequests
from sim.replica.request import Req


def _req(i: int, t_arr: float) -> Req:
    r = Req(i, 100 + i, 8, [], 0, t_arr)
    r.pre, r.dec, r.hit_hbm, r.preempted = 2, 5, 32, 1
    r.t_kv, r.t_done, r.xfer_s = t_arr + 0.5, t_arr + 2.0, 0.25
    return r


def test_rows_keep_the_fields_of_the_finished_requests():
    rows = FinishedRequests(4)
    rows.add(_req(2, 10.0))
    rows.add(_req(0, 1.0))
    assert rows.finished == 2 and len(rows) == 4
    assert rows.unfinished() == [1, 3]  # what the deadlock error names
    assert rows[2].t_kv == 10.5 and rows[2].inp == 102 and rows[2].dec == 5 and rows[2].i == 2
    assert rows[-4].t_done == 3.0 and rows[0].preempted == 1
    assert math.isnan(rows[1].t_kv) and rows[1].pre == 0  # never finished: NaN times, zero counts
    assert rows.col("hit_hbm").tolist() == [32, 0, 32, 0]
    assert [r.t_arr for r in rows][::2] == [1.0, 10.0]
    with pytest.raises(AttributeError, match="keeps no 'blocks'"):
        _ = rows[0].blocks
    with pytest.raises(IndexError):
        rows[4]
    assert len(FIELDS) == len(set(FIELDS)) and {"t_arr", "t_kv", "t_done", "pre", "dec"} <= set(FIELDS)
