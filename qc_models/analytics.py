"""Statistical process control and quality metrics as pure functions on small DataFrames.

The database aggregates (``db.queries``); this module does the math, so it can
be checked by hand in tests and reused on any counts (CSV exports, other plants).

Conventions, stated once:

* A *unit* is one inspected image; a *defective* unit is one the chosen model
  flags. The detectors decide per image, so a flagged image counts as exactly
  one defect (DPU = defective / inspected).
* DPMO = defects / (units x opportunities per unit) x 10^6. The default of one
  opportunity per unit makes DPMO the defect rate in parts per million; pass
  the number of defect types known for the category to count each type as an
  opportunity (the usual Six Sigma reading), which lowers DPMO accordingly.
* p-chart: p-bar = sum(x) / sum(n); limits p-bar +/- 3 sqrt(p-bar (1 - p-bar) / n_i),
  clipped to [0, 1]. Signals: a point beyond a limit, and a run of 8 points in a
  row on one side of the centre line (the 8th and later points are flagged).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

RULE_BEYOND_LIMITS = "beyond 3-sigma limit"
RULE_RUN_OF_8 = "8 in a row on one side of centre"
RUN_LENGTH = 8


def pareto(counts: pd.DataFrame, category: str, count: str = "count") -> pd.DataFrame:
    """Categories by descending count with percent and cumulative percent (0-100).

    Ties are ordered by category name so the output is deterministic. Zero and
    negative counts are dropped; an empty input gives an empty table with the columns.
    """
    if category not in counts.columns or count not in counts.columns:
        raise ValueError(f"pareto needs columns {category!r} and {count!r}; got {list(counts.columns)}")
    df = counts.loc[counts[count] > 0, [category, count]].copy()
    df = df.groupby(category, as_index=False, sort=False)[count].sum()
    df = df.sort_values([count, category], ascending=[False, True], ignore_index=True)
    total = df[count].sum()
    df["percent"] = 100.0 * df[count] / total if total else 0.0
    df["cumulative_count"] = df[count].cumsum()
    df["cumulative_percent"] = 100.0 * df["cumulative_count"] / total if total else 0.0
    return df


def _run_flags(side: np.ndarray, length: int) -> np.ndarray:
    """True for the ``length``-th and later points of consecutive equal non-zero ``side`` values."""
    if side.size == 0:
        return np.zeros(0, dtype=bool)
    starts = np.r_[True, side[1:] != side[:-1]]
    run_id = np.cumsum(starts) - 1
    first_index = np.flatnonzero(starts)
    position = np.arange(side.size) - first_index[run_id]  # 0-based position within its run
    return (side != 0) & (position >= length - 1)


def p_chart(counts: pd.DataFrame, n: str = "n", x: str = "x", run_length: int = RUN_LENGTH) -> pd.DataFrame:
    """p-chart of defective proportion per subgroup, rows in time order.

    Adds ``p``, ``center``, ``ucl``, ``lcl``, ``out_of_control`` and ``rule`` (the
    rules that fired, ``"; "``-joined, empty when in control). Subgroups with
    ``n == 0`` are dropped: they carry no proportion.
    """
    if n not in counts.columns or x not in counts.columns:
        raise ValueError(f"p_chart needs columns {n!r} and {x!r}; got {list(counts.columns)}")
    df = counts.loc[counts[n] > 0].reset_index(drop=True).copy()
    sizes = df[n].to_numpy(dtype=float)
    defects = df[x].to_numpy(dtype=float)
    if np.any(defects < 0) or np.any(defects > sizes):
        raise ValueError("p_chart: every subgroup needs 0 <= x <= n")
    p_bar = defects.sum() / sizes.sum() if sizes.size else math.nan
    sigma = np.sqrt(p_bar * (1.0 - p_bar) / sizes) if sizes.size else sizes
    df["p"] = defects / sizes if sizes.size else sizes
    df["center"] = p_bar
    df["ucl"] = np.minimum(1.0, p_bar + 3.0 * sigma)
    df["lcl"] = np.maximum(0.0, p_bar - 3.0 * sigma)
    p = df["p"].to_numpy()
    beyond = (p > df["ucl"].to_numpy()) | (p < df["lcl"].to_numpy())
    run = _run_flags(np.sign(p - p_bar) if sizes.size else p, run_length)
    df["out_of_control"] = beyond | run
    rules = np.where(beyond & run, f"{RULE_BEYOND_LIMITS}; {RULE_RUN_OF_8}",
                     np.where(beyond, RULE_BEYOND_LIMITS, np.where(run, RULE_RUN_OF_8, "")))
    df["rule"] = rules if sizes.size else pd.Series(dtype=object)
    return df


def yield_metrics(
    inspections: int,
    defective: int,
    units: int | None = None,
    first_pass_defective: int | None = None,
    opportunities_per_unit: float = 1.0,
) -> dict[str, float]:
    """Yield, first-pass yield, DPU and DPMO from counts (see the module docstring for definitions).

    ``units``/``first_pass_defective`` describe distinct parts judged at their first
    inspection; when omitted, every inspection is a first pass. Rates are NaN when
    nothing was inspected.
    """
    if opportunities_per_unit <= 0:
        raise ValueError(f"opportunities_per_unit must be > 0, got {opportunities_per_unit}")
    if defective < 0 or defective > inspections:
        raise ValueError(f"defective ({defective}) must be between 0 and inspections ({inspections})")
    units = inspections if units is None else units
    first_pass_defective = defective if first_pass_defective is None else first_pass_defective
    dpu = defective / inspections if inspections else math.nan
    return {
        "inspections": float(inspections),
        "defective": float(defective),
        "defect_rate": dpu,
        "yield": 1.0 - dpu if inspections else math.nan,
        "first_pass_yield": 1.0 - first_pass_defective / units if units else math.nan,
        "dpu": dpu,
        "dpmo": dpu / opportunities_per_unit * 1e6 if inspections else math.nan,
        "opportunities_per_unit": float(opportunities_per_unit),
    }
