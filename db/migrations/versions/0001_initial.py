"""Initial schema: model versions, inspection runs, run models, image results.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

The contract between batch inspection (writer) and analytics (readers); see
``db/schema.py``. Frozen: later changes go into new revisions.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inspection_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source_folder", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=128), nullable=True),
        sa.Column("line", sa.String(length=128), nullable=True),
        sa.Column("shift", sa.String(length=128), nullable=True),
        sa.Column("lot", sa.String(length=128), nullable=True),
        sa.Column("operator", sa.String(length=128), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("models", sa.Text(), nullable=False),
        sa.Column("n_images", sa.Integer(), nullable=False),
        sa.Column("n_scored", sa.Integer(), nullable=False),
        sa.Column("n_errors", sa.Integer(), nullable=False),
        sa.Column("n_defective", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("error_text", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('running', 'completed', 'failed', 'interrupted')", name=op.f("ck_inspection_runs_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspection_runs"))
    )
    op.create_index("ix_inspection_runs_category_line_shift_lot", "inspection_runs", ["category", "line", "shift", "lot"], unique=False)
    op.create_index("ix_inspection_runs_started_at", "inspection_runs", ["started_at"], unique=False)
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=128), nullable=False),
        sa.Column("model_name", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("backbone_weights", sa.String(length=1024), nullable=True),
        sa.Column("pretrained", sa.Boolean(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("metrics", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("category", "model_name", "version", name=op.f("uq_model_versions_category_model_name_version")),
        sa.UniqueConstraint("path", name=op.f("uq_model_versions_path"))
    )
    op.create_table(
        "image_results",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("rel_path", sa.String(length=1024), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("known_defect_type", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_text", sa.Text(), nullable=True),
        sa.Column("is_defective", sa.Boolean(), nullable=True),
        sa.Column("ensemble_score", sa.Float(), nullable=True),
        sa.Column("cae_raw", sa.Float(), nullable=True),
        sa.Column("cae_score", sa.Float(), nullable=True),
        sa.Column("cae_defective", sa.Boolean(), nullable=True),
        sa.Column("unet_raw", sa.Float(), nullable=True),
        sa.Column("unet_score", sa.Float(), nullable=True),
        sa.Column("unet_defective", sa.Boolean(), nullable=True),
        sa.Column("patchcore_raw", sa.Float(), nullable=True),
        sa.Column("patchcore_score", sa.Float(), nullable=True),
        sa.Column("patchcore_defective", sa.Boolean(), nullable=True),
        sa.Column("anomaly_area_fraction", sa.Float(), nullable=True),
        sa.Column("bbox_x", sa.Integer(), nullable=True),
        sa.Column("bbox_y", sa.Integer(), nullable=True),
        sa.Column("bbox_w", sa.Integer(), nullable=True),
        sa.Column("bbox_h", sa.Integer(), nullable=True),
        sa.Column("anomaly_grid", sa.LargeBinary(), nullable=True),
        sa.Column("is_reinspection", sa.Boolean(), nullable=True),
        sa.Column("inspected_at", sa.DateTime(), nullable=False),
        sa.Column("category", sa.String(length=128), nullable=True),
        sa.Column("line", sa.String(length=128), nullable=True),
        sa.Column("shift", sa.String(length=128), nullable=True),
        sa.Column("lot", sa.String(length=128), nullable=True),
        sa.CheckConstraint("status IN ('ok', 'error')", name=op.f("ck_image_results_status")),
        sa.ForeignKeyConstraint(["run_id"], ["inspection_runs.id"], name=op.f("fk_image_results_run_id_inspection_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_results")),
        sa.UniqueConstraint("run_id", "rel_path", name=op.f("uq_image_results_run_id_rel_path"))
    )
    op.create_index("ix_image_results_content_hash", "image_results", ["content_hash"], unique=False)
    op.create_index("ix_image_results_ensemble_score", "image_results", ["ensemble_score"], unique=False)
    op.create_index("ix_image_results_inspected_at", "image_results", ["inspected_at"], unique=False)
    op.create_table(
        "run_models",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["model_version_id"], ["model_versions.id"], name=op.f("fk_run_models_model_version_id_model_versions"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["inspection_runs.id"], name=op.f("fk_run_models_run_id_inspection_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "model_version_id", name=op.f("pk_run_models"))
    )


def downgrade() -> None:
    op.drop_table("run_models")
    op.drop_index("ix_image_results_inspected_at", table_name="image_results")
    op.drop_index("ix_image_results_ensemble_score", table_name="image_results")
    op.drop_index("ix_image_results_content_hash", table_name="image_results")
    op.drop_table("image_results")
    op.drop_table("model_versions")
    op.drop_index("ix_inspection_runs_started_at", table_name="inspection_runs")
    op.drop_index("ix_inspection_runs_category_line_shift_lot", table_name="inspection_runs")
    op.drop_table("inspection_runs")
