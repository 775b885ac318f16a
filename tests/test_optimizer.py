"""The learning-rate schedules have the shape their names promise."""

import pytest

from configs import default
from fmnist.training import optimizer as fo


def test_onecycle_rises_then_falls():
    c = default.get_config()
    c.lr_schedule, c.learning_rate = "onecycle", 0.1
    schedule = fo.learning_rate(c, total_steps=1000, steps_per_epoch=100)
    rates = [float(schedule(s)) for s in (0, 125, 250, 600, 1000)]
    assert rates[0] == pytest.approx(0.004) and rates[2] == pytest.approx(0.1)
    assert rates[0] < rates[1] < rates[2] > rates[3] > rates[4] and rates[4] < 1e-4
