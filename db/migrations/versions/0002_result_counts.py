"""Analytics rollup: result_counts, kept exact by triggers on image_results, backfilled.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

One row per (run, hour, category, line, shift, lot, known defect type) with
counters per model (scored, defective, first-pass) and model-agreement counts.
Every INSERT/UPDATE/DELETE on image_results adds or subtracts its row's 0/1
contributions in the same transaction, so the rollup is always exactly the sum
of the results and analytics never scan millions of rows. Existing results are
summed in at upgrade time. Frozen: the definitions below must not import app code.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

DECISIONS = {"cae": "cae_defective", "unet": "unet_defective", "patchcore": "patchcore_defective", "ensemble": "is_defective"}
MODELS = tuple(DECISIONS)
PAIRS = tuple((a, b) for i, a in enumerate(MODELS) for b in MODELS[i + 1 :])
KEYS = ("run_id", "hour_start", "category", "line", "shift", "lot", "defect_type")
# Key columns that copy a nullable string column of image_results ('' stands for NULL).
STRING_KEYS = {"category": "category", "line": "line", "shift": "shift", "lot": "lot", "defect_type": "known_defect_type"}
# Columns of image_results whose change moves a row between rollup counters.
WATCHED = ("run_id", "inspected_at", "status", "is_reinspection", *STRING_KEYS.values(), *DECISIONS.values())


def _flag(condition: str) -> str:
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END"


def measures(r: str) -> dict[str, str]:
    """SQL expressions (0/1) of one image_results row, columns prefixed by ``r`` (e.g. ``NEW.``)."""
    ok, first = f"{r}status = 'ok'", f"{r}is_reinspection IS NOT TRUE"
    out = {"n_results": "1", "n_errors": _flag(f"{r}status = 'error'")}
    for model in MODELS:
        col = f"{r}{DECISIONS[model]}"
        out[f"n_scored_{model}"] = _flag(f"{ok} AND {col} IS NOT NULL")
        out[f"n_defective_{model}"] = _flag(f"{ok} AND {col} IS TRUE")
        out[f"n_first_{model}"] = _flag(f"{ok} AND {col} IS NOT NULL AND {first}")
        out[f"n_first_defective_{model}"] = _flag(f"{ok} AND {col} IS TRUE AND {first}")
    for a, b in PAIRS:
        both = f"{ok} AND {r}{DECISIONS[a]} IS NOT NULL AND {r}{DECISIONS[b]} IS NOT NULL"
        out[f"n_pair_{a}_{b}"] = _flag(both)
        out[f"n_agree_{a}_{b}"] = _flag(f"{both} AND {r}{DECISIONS[a]} = {r}{DECISIONS[b]}")
    present = " + ".join(_flag(f"{r}{DECISIONS[m]} IS NOT NULL") for m in MODELS)
    positive = " + ".join(_flag(f"{r}{DECISIONS[m]} IS TRUE") for m in MODELS)
    out["n_multi"] = _flag(f"{ok} AND ({present}) >= 2")
    out["n_all_agree"] = _flag(f"{ok} AND ({present}) >= 2 AND (({positive}) = 0 OR ({positive}) = ({present}))")
    return out


def keys(r: str, dialect: str) -> dict[str, str]:
    hour = (
        f"strftime('%Y-%m-%d %H:00:00.000000', {r}inspected_at)"  # SQLAlchemy's SQLite DateTime text format
        if dialect == "sqlite"
        else f"date_trunc('hour', {r}inspected_at)"
    )
    out = {"run_id": f"{r}run_id", "hour_start": hour}
    out.update({k: f"COALESCE({r}{col}, '')" for k, col in STRING_KEYS.items()})
    return out


def upsert(r: str, sign: str, dialect: str) -> str:
    k, m = keys(r, dialect), measures(r)
    columns = [*KEYS, *m]
    values = [k[c] for c in KEYS] + [f"{sign}({expr})" for expr in m.values()]
    updates = ", ".join(f"{c} = result_counts.{c} + excluded.{c}" for c in m)
    return (
        f"INSERT INTO result_counts ({', '.join(columns)}) VALUES ({', '.join(values)}) "
        f"ON CONFLICT ({', '.join(KEYS)}) DO UPDATE SET {updates};"
    )


def drop_empty(r: str, dialect: str) -> str:
    k = keys(r, dialect)
    match = " AND ".join(f"{c} = {k[c]}" for c in KEYS)
    return f"DELETE FROM result_counts WHERE n_results = 0 AND {match};"


def _sqlite_triggers() -> list[str]:
    watched = ", ".join(WATCHED)
    return [
        f"CREATE TRIGGER trg_result_counts_insert AFTER INSERT ON image_results BEGIN {upsert('NEW.', '', 'sqlite')} END",
        "CREATE TRIGGER trg_result_counts_delete AFTER DELETE ON image_results BEGIN "
        f"{upsert('OLD.', '-', 'sqlite')} {drop_empty('OLD.', 'sqlite')} END",
        f"CREATE TRIGGER trg_result_counts_update AFTER UPDATE OF {watched} ON image_results BEGIN "
        f"{upsert('OLD.', '-', 'sqlite')} {upsert('NEW.', '', 'sqlite')} {drop_empty('OLD.', 'sqlite')} END",
    ]


def _postgres_triggers() -> list[str]:
    return [
        "CREATE FUNCTION qc_result_counts_apply(r image_results, sign integer) RETURNS void AS $$ BEGIN "
        f"{upsert('r.', 'sign * ', 'postgresql')} "
        f"IF sign < 0 THEN {drop_empty('r.', 'postgresql')} END IF; "
        "END $$ LANGUAGE plpgsql",
        "CREATE FUNCTION qc_result_counts_trigger() RETURNS trigger AS $$ BEGIN "
        "IF TG_OP IN ('DELETE', 'UPDATE') THEN PERFORM qc_result_counts_apply(OLD, -1); END IF; "
        "IF TG_OP IN ('INSERT', 'UPDATE') THEN PERFORM qc_result_counts_apply(NEW, 1); END IF; "
        "RETURN NULL; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER trg_result_counts_insert_delete AFTER INSERT OR DELETE ON image_results "
        "FOR EACH ROW EXECUTE FUNCTION qc_result_counts_trigger()",
        f"CREATE TRIGGER trg_result_counts_update AFTER UPDATE OF {', '.join(WATCHED)} ON image_results "
        "FOR EACH ROW EXECUTE FUNCTION qc_result_counts_trigger()",
    ]


def _backfill(dialect: str) -> str:
    k, m = keys("", dialect), measures("")
    select_list = [f"{k[c]} AS {c}" for c in KEYS] + [f"SUM({expr}) AS {name}" for name, expr in m.items()]
    return (
        f"INSERT INTO result_counts ({', '.join([*KEYS, *m])}) "
        f"SELECT {', '.join(select_list)} FROM image_results GROUP BY {', '.join(str(i + 1) for i in range(len(KEYS)))}"
    )


def _execute(sql: str) -> None:
    if context.is_offline_mode():
        op.execute(sql)
    else:  # no bind-parameter parsing: the SQL contains ':' and '%'
        op.get_bind().exec_driver_sql(sql)


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise RuntimeError(f"result_counts triggers exist for SQLite and PostgreSQL only, not {dialect}")
    op.create_table(
        "result_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("hour_start", sa.DateTime(), nullable=False),
        *(sa.Column(c, sa.String(length=128), nullable=False) for c in STRING_KEYS),
        *(sa.Column(c, sa.Integer(), nullable=False) for c in measures("")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_result_counts")),
        sa.UniqueConstraint(*KEYS, name=op.f("uq_result_counts_" + "_".join(KEYS))),
    )
    op.create_index("ix_result_counts_hour_start", "result_counts", ["hour_start"], unique=False)
    _execute(_backfill(dialect))
    for statement in _sqlite_triggers() if dialect == "sqlite" else _postgres_triggers():
        _execute(statement)


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        for name in ("insert", "delete", "update"):
            _execute(f"DROP TRIGGER IF EXISTS trg_result_counts_{name}")
    else:
        _execute("DROP TRIGGER IF EXISTS trg_result_counts_insert_delete ON image_results")
        _execute("DROP TRIGGER IF EXISTS trg_result_counts_update ON image_results")
        _execute("DROP FUNCTION IF EXISTS qc_result_counts_trigger()")
        _execute("DROP FUNCTION IF EXISTS qc_result_counts_apply(image_results, integer)")
    op.drop_index("ix_result_counts_hour_start", table_name="result_counts")
    op.drop_table("result_counts")
