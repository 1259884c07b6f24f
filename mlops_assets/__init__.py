"""mlops_assets: continuous training on contributed data, as a Dagster code location on MLflow."""
