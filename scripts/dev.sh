#!/usr/bin/env bash
# Start the embedded default: `dg dev` (webserver on :3000, daemon, sensors, automation),
# the prediction API on :8000 (serves the champion once there is one, told at once when it
# moves), the contributors' upload API on :8080 and an MLflow UI on :5000 (for the links in
# Dagster metadata). Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
# Milliseconds since the epoch when the command was typed: `make run` passes its own start,
# so the time to the first served model counts the set-up too.
started_ms="${MLOPS_STARTED_AT:-$(date +%s%3N)}"
: "${MLOPS_HOME:=$PWD/var}"
export MLOPS_HOME
export DAGSTER_HOME="${DAGSTER_HOME:-$MLOPS_HOME/dagster}"
export MLOPS_MLFLOW_UI_URL="${MLOPS_MLFLOW_UI_URL:-http://127.0.0.1:${MLFLOW_UI_PORT:-5000}}"
api="http://127.0.0.1:${API_PORT:-8000}"
ui="http://127.0.0.1:${DAGSTER_PORT:-3000}"
export MLOPS_API_URL="${MLOPS_API_URL:-$api}"
mkdir -p "$DAGSTER_HOME" "$MLOPS_HOME/mlflow" "$MLOPS_HOME/landing"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp docker/dagster.embedded.yaml "$DAGSTER_HOME/dagster.yaml"
# A home made before tick retention was shipped gets it (its last section), once.
grep -q '^retention:' "$DAGSTER_HOME/dagster.yaml" ||
  { echo; sed -n '/^# Tick retention/,$p' docker/dagster.embedded.yaml; } >>"$DAGSTER_HOME/dagster.yaml"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

since_start() {
  local now_ms
  now_ms=$(date +%s%3N)
  echo "$(( (now_ms - started_ms) / 1000 )).$(( (now_ms - started_ms) % 1000 / 100 ))"
}

echo "Dagster UI:     $ui"
echo "Prediction API: $api/docs (log: $MLOPS_HOME/api.log)"
tracking_uri="${MLFLOW_TRACKING_URI:-sqlite:///$MLOPS_HOME/mlflow/mlflow.db}"
if [[ "$tracking_uri" == sqlite:* ]]; then
  echo "MLflow UI:      $MLOPS_MLFLOW_UI_URL (log: $MLOPS_HOME/mlflow/ui.log)"
  # Create the store once, before three processes open it: each would otherwise create it
  # too, and one of them fails with "table ... already exists". A copy of an empty store.
  .venv/bin/python -m mlops_assets.core.registry.store "$tracking_uri"
  # The UI is for people: one worker, no background job runners (seven more processes
  # importing MLflow, for GenAI jobs this pipeline has none of), at low priority, so it never
  # slows the first run.
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false \
    nice -n 10 .venv/bin/mlflow server --backend-store-uri "$tracking_uri" --workers 1 \
    --host 127.0.0.1 --port "${MLFLOW_UI_PORT:-5000}" >"$MLOPS_HOME/mlflow/ui.log" 2>&1 &
  pids+=($!)
else
  echo "MLflow:         $tracking_uri"
fi
echo "Landing zone:   ${MLOPS_LANDING_URI:-$MLOPS_HOME/landing}/<contributor>/<file>"
.venv/bin/mlops serve --host 127.0.0.1 --port "${API_PORT:-8000}" >"$MLOPS_HOME/api.log" 2>&1 &
pids+=($!)
portal="http://127.0.0.1:${PORTAL_PORT:-8080}"
echo "Portal:         $portal (contributors sign in with the token" \
  "\`mlops contributors add NAME\` prints; upload API: $portal/docs; log: $MLOPS_HOME/portal.log)"
.venv/bin/mlops portal --host 127.0.0.1 --port "${PORTAL_PORT:-8080}" >"$MLOPS_HOME/portal.log" 2>&1 &
pids+=($!)
# Say when the first champion is served: the moment a newcomer can try the API.
tail -F --pid=$$ -n +1 "$MLOPS_HOME/api.log" 2>/dev/null | while read -r line; do
  if [[ "$line" == *"now serving"* ]]; then
    echo "Serving ${line##*now serving } ($(since_start) s after start): try $api/docs," \
      "see it in $ui"
    break
  fi
done &
pids+=($!)
.venv/bin/dg dev --host 127.0.0.1 --port "${DAGSTER_PORT:-3000}"
