"""The registry: the candidate's version, its promotion, and what keeps MLflow and the
webhook receiver in step with Dagster."""
