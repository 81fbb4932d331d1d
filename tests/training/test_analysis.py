"""Over-fitting onset and best epoch on constructed curves whose answer is known."""

from __future__ import annotations

import math

import pytest

from cnnlab.training.analysis import best_epoch, overfitting_onset

NAN = math.nan
FALLING = [2.0, 1.6, 1.3, 1.1, 0.9, 0.7, 0.5, 0.4]


@pytest.mark.parametrize(
    ("train_loss", "val_loss", "onset"),
    [
        # the report's example: validation loss lowest at epoch 7, rising after it
        ([2.0, 1.7, 1.5, 1.3, 1.1, 1.0, 0.9, 0.7, 0.6, 0.5],
         [2.0, 1.8, 1.6, 1.5, 1.45, 1.42, 1.40, 1.43, 1.5, 1.6], 7),
        # minimum at epoch 3, noisy but never back down to it
        (FALLING, [1.5, 1.3, 1.2, 1.25, 1.21, 1.3, 1.4, 1.5], 3),
        # still improving at the last epoch: no over-fitting seen
        (FALLING, [1.5, 1.4, 1.3, 1.25, 1.2, 1.15, 1.1, 1.05], None),
        # validation loss returns to its minimum later: not over-fitting
        (FALLING, [1.5, 1.2, 1.3, 1.4, 1.2, 1.3, 1.4, 1.5], None),
        # validation rises but training loss no longer falls either: not over-fitting
        ([2.0, 1.5, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7], [1.5, 1.3, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7], None),
        # a NaN after the minimum never counts as back below it
        (FALLING, [1.5, 1.2, 1.3, NAN, 1.4, 1.5, 1.6, 1.7], 2),
        # too short, or mismatched lengths
        ([1.0], [1.0], None),
        ([1.0, 0.9, 0.8], [1.0, 1.1], None),
    ],
)
def test_overfitting_onset(train_loss: list[float], val_loss: list[float],
                           onset: int | None) -> None:
    assert overfitting_onset(train_loss, val_loss) == onset


def test_best_epoch_first_on_ties_and_ignores_nan() -> None:
    assert best_epoch([0.1, 0.5, 0.5, 0.3]) == 2
    assert best_epoch([NAN, 0.2, 0.1]) == 2
