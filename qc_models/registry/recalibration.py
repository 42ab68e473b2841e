"""Change a saved model's image threshold in place, keeping the history of earlier ones.

A QC engineer tightens or loosens the false-reject target after seeing its effect;
saving it as a brand-new version would orphan the ensemble that points at the member
version, so the threshold is updated in ``model.json`` (atomically) and the old value
stays in ``calibration_history`` for audit.
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qc_models.calibration import Calibrator
from qc_models.registry.artifacts import MODEL_JSON, _write_json, read_metadata

#: Pixel-level calibration is fitted on maps and is not changed by an image-threshold update.
_PIXEL_KEYS = ("pixel_threshold", "pixel_location", "pixel_scale")


def update_calibration(version_dir: str | Path, calibrator: Calibrator, reason: str = "threshold adjusted",
                       training_updates: dict[str, Any] | None = None) -> None:
    """Replace the image-level threshold/normalisation of ``version_dir`` with ``calibrator``'s.

    Pixel-level calibration is kept unless ``calibrator`` carries its own. The previous
    threshold, calibration and a timestamp are appended to ``calibration_history``.
    ``training_updates`` (e.g. the calibration images left out) are merged into the
    training record in the same atomic write.
    """
    version_dir = Path(version_dir)
    meta = read_metadata(version_dir)
    old: dict[str, Any] = dict(meta.get("calibration") or {})
    new = calibrator.to_dict()
    for key in _PIXEL_KEYS:
        if new.get(key) is None and old.get(key) is not None:
            new[key] = old[key]
    Calibrator.from_dict(new)  # validate before writing anything
    history = list(meta.get("calibration_history") or [])
    history.append(
        {
            "replaced": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "reason": reason,
            "threshold": meta.get("threshold"),
            "calibration": old,
        }
    )
    meta["calibration"] = new
    if training_updates:
        meta["training"] = {**(meta.get("training") or {}), **training_updates}
    meta["threshold"] = calibrator.threshold
    meta["calibration_history"] = history
    tmp = version_dir.parent / f".{version_dir.name}.{secrets.token_hex(4)}.json"
    _write_json(tmp, meta)
    os.replace(tmp, version_dir / MODEL_JSON)
