"""Dataset access: MVTec AD layout discovery, safe decoding, integrity problems, synthetic data."""

from qc_models.data.images import IMAGE_EXTENSIONS, ImageLoadError, is_image_file, load_mask, load_rgb
from qc_models.data.integrity import Problem, check_dataset, check_image
from qc_models.data.layout import (
    GOOD,
    CategoryLayout,
    DatasetError,
    Sample,
    list_categories,
    open_category,
    paired_mask_path,
)

__all__ = [
    "GOOD",
    "IMAGE_EXTENSIONS",
    "CategoryLayout",
    "DatasetError",
    "ImageLoadError",
    "Problem",
    "Sample",
    "check_dataset",
    "check_image",
    "is_image_file",
    "list_categories",
    "load_mask",
    "load_rgb",
    "open_category",
    "paired_mask_path",
]
