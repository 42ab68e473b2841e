"""The shared training loop under a time limit: what it expects, reports and records."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from qc_models.detectors import torch_training
from qc_models.detectors.torch_training import TrainingResult, epochs_that_fit, train_with_early_stopping


def _run(epochs: int, max_seconds: float | None, monkeypatch: pytest.MonkeyPatch,
         seconds: Callable[[int], float] = lambda epoch: 1.0) -> tuple[list[tuple[str, float]], TrainingResult]:
    """Train a tiny model whose epoch ``e`` takes ``seconds(e)`` on a fake clock; returns progress reports."""
    clock = {"t": 0.0}
    monkeypatch.setattr(torch_training.time, "perf_counter", lambda: clock["t"])
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.ones(4, 1)

    def batches(epoch: int):
        clock["t"] += seconds(epoch)
        yield (x, torch.zeros(4, 1))

    reports: list[tuple[str, float]] = []
    loss_fn = lambda m, b: (m(b[0]) - b[1]).pow(2).mean()  # noqa: E731
    result = train_with_early_stopping(model, opt, batches, loss_fn, None, epochs, patience=100,
                                       max_seconds=max_seconds, progress=lambda m, f: reports.append((m, f)),
                                       label="net")
    return reports, result


def test_without_a_time_limit_progress_counts_the_planned_epochs(monkeypatch: pytest.MonkeyPatch) -> None:
    reports, result = _run(12, None, monkeypatch)
    assert not result.time_limited and result.epochs_run == 12
    assert reports[0][0].startswith("net: epoch 1/12,") and reports[-2][1] == 1.0
    assert "time limit" not in " ".join(m for m, _ in reports)


def test_a_time_limit_is_foreseen_in_progress_and_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    reports, result = _run(40, 5.5, monkeypatch)  # 1 s per epoch: epochs 1-6 run, the 6th ends past 5.5 s
    assert result.time_limited and result.epochs_run == 6
    assert reports[1][0].startswith("net: epoch 2/6 of 40 planned (time limit 5.5 s)")
    fractions = [f for _, f in reports[:-1]]
    assert fractions == pytest.approx([e / 6 for e in range(1, 7)])  # reaches 1 when the clock ends it, no jump
    assert result.summary()["time_limited"] is True


def test_the_estimate_follows_epochs_that_get_faster(monkeypatch: pytest.MonkeyPatch) -> None:
    # Epochs 1-3 take 3 s (a busy machine), later ones 1 s: the first estimate was too low.
    reports, result = _run(40, 12.5, monkeypatch, seconds=lambda epoch: 3.0 if epoch <= 3 else 1.0)
    assert result.time_limited and result.epochs_run == 7  # 3 x 3 s + 4 x 1 s = 13 s > 12.5 s
    assert reports[0][0].startswith("net: epoch 1/5 of 40") and reports[5][0].startswith("net: epoch 6/7 of 40")


def test_a_run_that_ends_within_the_limit_is_not_time_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    _, result = _run(5, 100.0, monkeypatch)
    assert not result.time_limited and result.epochs_run == 5


def test_epochs_that_fit() -> None:
    assert epochs_that_fit(100, 10, 20.0, 2.0, None) == 100
    assert epochs_that_fit(100, 10, 20.0, 2.0, 60.0) == 30  # 40 s left at 2 s per epoch
    assert epochs_that_fit(100, 10, 20.0, 2.0, 1000.0) == 100  # never more than planned
    assert epochs_that_fit(100, 10, 61.0, 2.0, 60.0) == 10  # past the limit: this epoch is the last
    assert epochs_that_fit(100, 10, 59.0, 2.0, 60.0) == 11  # time left for one more


def test_recompute_batchnorm_sets_the_exact_statistics_and_restores_the_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2)).eval()
    before = [p.detach().clone() for p in model.parameters()]
    batches = [torch.randn(4, 3, 5, 5) * 3.0 + 2.0 for _ in range(3)]
    torch_training.recompute_batchnorm(model, batches)
    x = torch.cat(batches)
    assert torch.allclose(model[0].running_mean, x.mean(dim=(0, 2, 3)), atol=1e-5)
    per_batch_var = torch.stack([b.var(dim=(0, 2, 3), unbiased=True) for b in batches]).mean(0)
    assert torch.allclose(model[0].running_var, per_batch_var, rtol=1e-4)
    with torch.no_grad():  # the second layer sees the first one's output under batch statistics
        hidden = model[1](torch.cat([nn.functional.batch_norm(b, None, None, training=True) for b in batches]))
    assert torch.allclose(model[2].running_mean, hidden.mean(dim=(0, 2, 3)), atol=1e-5)
    assert model[0].momentum == 0.1 and model[2].momentum == 0.1 and not model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_before_validation_runs_every_epoch_before_the_loss_is_monitored() -> None:
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.ones(4, 1)
    order: list[str] = []

    def loss_fn(m, b):
        if not m.training:
            order.append("validate")
        return (m(b[0]) - b[1]).pow(2).mean()

    train_with_early_stopping(model, opt, lambda epoch: iter([(x, torch.zeros(4, 1))]), loss_fn,
                              [(x, torch.zeros(4, 1))], 3, patience=100,
                              before_validation=lambda m: order.append("statistics"))
    assert order == ["statistics", "validate"] * 3


def test_keep_latest_within_keeps_a_later_epoch_that_validation_cannot_tell_apart() -> None:
    def run(tolerance: float) -> tuple[TrainingResult, float]:
        model = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            model.weight.zero_()
        values = iter([1.0, 0.50, 0.52, 0.60, 0.51, 0.70, 0.80])  # lowest at epoch 2; epoch 5 within 5 %

        def loss_fn(m, b):
            if m.training:  # each epoch adds one to the weight, so the weight tells which epoch was kept
                return -m.weight.sum()
            return torch.tensor(next(values))

        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        x = torch.ones(1, 1)
        result = train_with_early_stopping(model, opt, lambda e: iter([(x, x)]), loss_fn, [(x, x)], 7,
                                           patience=4, keep_latest_within=tolerance)
        return result, float(model.weight.detach())

    plain, w_plain = run(0.0)
    late, w_late = run(0.05)
    assert (plain.best_epoch, plain.lowest_loss_epoch, w_plain) == (2, 2, 2.0)
    assert (late.best_epoch, late.lowest_loss_epoch, w_late) == (5, 2, 5.0)  # 0.51 <= 0.50 * 1.05
    assert late.best_val_loss == pytest.approx(0.51) and plain.best_val_loss == pytest.approx(0.50)
    assert plain.epochs_run == late.epochs_run == 6  # patience counts from the lowest loss either way
    model = nn.Linear(1, 1)
    with pytest.raises(ValueError, match="keep_latest_within"):
        train_with_early_stopping(model, torch.optim.SGD(model.parameters(), lr=0.1), lambda e: iter([]),
                                  lambda m, b: torch.tensor(0.0), None, 1, 1, keep_latest_within=-0.1)
