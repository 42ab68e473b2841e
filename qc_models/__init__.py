"""qc_models: the shared library of the QC inspection product.

Data loading (MVTec AD layout), EDA statistics, anomaly detectors, calibration,
metrics, batch inspection, analytics and reports. It never imports Streamlit so
that the CLI, the dashboard and batch jobs share exactly the same logic.
"""

__version__ = "0.1.0"
