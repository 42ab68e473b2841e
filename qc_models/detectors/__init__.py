"""Anomaly detectors sharing one fit/predict interface (see :mod:`qc_models.detectors.base`)."""

from qc_models.detectors.base import Detector, NotFittedError, Prediction, ProgressCallback

__all__ = ["Detector", "NotFittedError", "Prediction", "ProgressCallback"]
