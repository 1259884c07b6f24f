-- MLflow's backend store gets its own database next to Dagster's (see MLFLOW_POSTGRES_DB).
CREATE DATABASE mlflow;
