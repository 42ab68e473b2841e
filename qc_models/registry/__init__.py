"""Model versions on disk: ``<MODELS_DIR>/<category>/<model>/<version>/{model.json, tensors.safetensors}``.

:mod:`.artifacts` saves and loads one version without unpickling (and refuses
anything unexpected or tampered with); :mod:`.listing` lists versions and loads
the newest model set of a category. Everything public is re-exported here.
"""

from qc_models.model_set import ImageScore, ModelSet
from qc_models.registry.artifacts import (
    _REGISTERED,
    DETECTOR_TYPES,
    ENSEMBLE,
    FORMAT_VERSION,
    MODEL_JSON,
    TENSORS_FILE,
    ModelError,
    TrainedModel,
    data_fingerprint,
    detector_class,
    file_sha256,
    library_versions,
    load_model,
    new_version_name,
    read_metadata,
    register_detector_type,
    save_ensemble,
    save_model,
    update_metrics,
    uses_untrained_backbone,
)
from qc_models.registry.recalibration import update_calibration
from qc_models.registry.listing import (
    VersionInfo,
    latest_version,
    list_versions,
    load_model_set,
    registry_categories,
    resolve_category,
    version_rows,
)

__all__ = [
    "DETECTOR_TYPES", "ENSEMBLE", "FORMAT_VERSION", "MODEL_JSON", "TENSORS_FILE", "ImageScore", "ModelError",
    "ModelSet", "TrainedModel", "VersionInfo", "_REGISTERED", "data_fingerprint", "detector_class", "file_sha256",
    "latest_version", "library_versions", "list_versions", "load_model", "load_model_set", "new_version_name",
    "read_metadata", "register_detector_type", "registry_categories", "resolve_category", "save_ensemble",
    "save_model", "update_calibration", "update_metrics", "uses_untrained_backbone", "version_rows",
]
