"""Pieces of the Dagster instance of a deployment (named in its ``dagster.yaml``)."""
