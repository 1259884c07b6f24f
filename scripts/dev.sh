#!/usr/bin/env bash
# Start the embedded default: an MLflow UI on :5000 (for the links in Dagster metadata), the
# prediction API on :8000 (serves the champion once there is one) and `dagster dev` (webserver
# on :3000, daemon, sensors, automation). Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MLOPS_HOME:=$PWD/var}"
export MLOPS_HOME
export DAGSTER_HOME="${DAGSTER_HOME:-$MLOPS_HOME/dagster}"
export MLOPS_MLFLOW_UI_URL="${MLOPS_MLFLOW_UI_URL:-http://127.0.0.1:${MLFLOW_UI_PORT:-5000}}"
mkdir -p "$DAGSTER_HOME" "$MLOPS_HOME/mlflow" "$MLOPS_HOME/landing"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp docker/dagster.embedded.yaml "$DAGSTER_HOME/dagster.yaml"

tracking_uri="${MLFLOW_TRACKING_URI:-sqlite:///$MLOPS_HOME/mlflow/mlflow.db}"
if [[ "$tracking_uri" == sqlite:* ]]; then
  # Create the store's schema once, before three processes open it: each would otherwise
  # create it too, and one of them fails with "table ... already exists".
  .venv/bin/python -c 'import sys; from mlops_assets.core.registry.client import mlflow_client; mlflow_client(sys.argv[1])' "$tracking_uri"
  .venv/bin/mlflow server --backend-store-uri "$tracking_uri" \
    --host 127.0.0.1 --port "${MLFLOW_UI_PORT:-5000}" >"$MLOPS_HOME/mlflow/ui.log" 2>&1 &
  mlflow_pid=$!
  trap 'kill $mlflow_pid 2>/dev/null || true' EXIT
  echo "MLflow UI:  $MLOPS_MLFLOW_UI_URL (log: $MLOPS_HOME/mlflow/ui.log)"
fi
.venv/bin/mlops serve --host 127.0.0.1 --port "${API_PORT:-8000}" >"$MLOPS_HOME/api.log" 2>&1 &
api_pid=$!
trap 'kill ${mlflow_pid:-} $api_pid 2>/dev/null || true' EXIT
echo "Prediction API: http://127.0.0.1:${API_PORT:-8000}/docs (log: $MLOPS_HOME/api.log)"
echo "Dagster UI: http://127.0.0.1:${DAGSTER_PORT:-3000}"
.venv/bin/dagster dev -w workspace.yaml --host 127.0.0.1 --port "${DAGSTER_PORT:-3000}"
