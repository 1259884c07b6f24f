"""The Dagster shell: assets, checks, sensors and resources around ``mlops_assets.core``."""
