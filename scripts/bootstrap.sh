#!/usr/bin/env bash
# Create .venv and install the project into it, only when needed.
# Sourced by scripts/dashboard.sh and scripts/test.sh so that each is one command on a fresh machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${QC_VENV:-$ROOT/.venv}"
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV with $("$PY" --version)" >&2
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.qc-installed"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing the project and its dependencies (first run takes a few minutes)" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  # torch/torchvision first and exactly pinned: a range would pull a multi-GB build from the network.
  "$VENV/bin/python" -m pip install --quiet torch==2.14.1 torchvision==0.29.1 >&2
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev]" >&2
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
