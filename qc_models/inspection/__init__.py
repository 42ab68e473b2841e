"""Batch inspection: stream a folder of images through the models into the database, exactly once.

``run_inspection`` is the one-call entry point (CLI ``qc inspect``); the
dashboard uses ``create_run`` then ``continue_run`` in a background thread.
Modules: ``scanning`` (which files, their labels and hashes), ``regions``
(anomaly area, largest region, location grid), ``scoring`` (model set ->
result columns), ``store`` (database rows and counters), ``runner`` (batches,
transactions, resume, stop).
"""

from qc_models.inspection.regions import GRID_SIZE, RegionStats, decode_grid, encode_grid, region_stats
from qc_models.inspection.runner import (
    MAX_INSPECT_PIXELS,
    RunSummary,
    continue_run,
    create_run,
    run_inspection,
)
from qc_models.inspection.scanning import InspectionError, SourceFolder, scan_folder
from qc_models.inspection.store import ModelInfo

__all__ = [
    "GRID_SIZE",
    "MAX_INSPECT_PIXELS",
    "InspectionError",
    "ModelInfo",
    "RegionStats",
    "RunSummary",
    "SourceFolder",
    "continue_run",
    "create_run",
    "decode_grid",
    "encode_grid",
    "region_stats",
    "run_inspection",
    "scan_folder",
]
