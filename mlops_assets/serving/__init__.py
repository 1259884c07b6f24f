"""The prediction API over :mod:`mlops_assets.core.serving`."""
