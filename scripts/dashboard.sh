#!/usr/bin/env bash
# Launch the dashboard on the demo data: installs, generates the demo dataset and trains
# the demo models when they are missing, then runs Streamlit. Extra args go to `streamlit run`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/bootstrap.sh"
qc demo-setup
exec streamlit run "$ROOT/dashboard/app.py" "$@"
