"""What people look at: results drawn as pictures (``plots``), small enough to travel inside
Dagster metadata and the same files logged to MLflow."""
