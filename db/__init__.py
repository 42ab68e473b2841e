"""Persistence of inspection runs and results (SQLAlchemy 2 ORM + Alembic migrations).

``schema`` the tables; ``session`` engines, sessions, migrations and database errors;
``filters`` the selection shared by every analytic; ``rollup`` the trigger-kept
counters analytics aggregate; ``queries`` aggregate analytics as DataFrames;
``run_queries`` runs, result rows and location heatmaps; ``results`` helpers for
writers; ``demo`` synthetic results for demos, tests and benchmarks.
This package never imports Streamlit or the dashboard.
"""
