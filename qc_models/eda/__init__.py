"""Exploratory data analysis of an MVTec-layout dataset, streamed image by image.

:func:`run_eda` is the entry point; the submodules hold one concept each
(decoding, per-image stats, histograms, masks, comparisons, counts, JSON form).
"""

from qc_models.eda.compare import Comparison, compare_features
from qc_models.eda.decode import DecodedImage, decode_image
from qc_models.eda.histograms import HistogramAccumulator, image_histogram, normalise_histogram
from qc_models.eda.masks import ALL, MaskAccumulator, MaskSummary, describe_mask
from qc_models.eda.report import CategoryEda, EdaReport, analyse_category, run_eda
from qc_models.eda.stats import FEATURES, ChannelAccumulator, abnormal_dimensions, image_features, robust_zscores
from qc_models.eda.summary import CountSummary, summarise_counts

__all__ = [
    "ALL",
    "FEATURES",
    "CategoryEda",
    "ChannelAccumulator",
    "Comparison",
    "CountSummary",
    "DecodedImage",
    "EdaReport",
    "HistogramAccumulator",
    "MaskAccumulator",
    "MaskSummary",
    "abnormal_dimensions",
    "analyse_category",
    "compare_features",
    "decode_image",
    "describe_mask",
    "image_features",
    "image_histogram",
    "normalise_histogram",
    "robust_zscores",
    "run_eda",
    "summarise_counts",
]
