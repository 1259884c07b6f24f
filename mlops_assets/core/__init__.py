"""The pure core: loading, cleaning, merging, training, evaluating, registering.

Nothing under ``core`` imports Dagster; assets, checks and sensors in ``mlops_assets.defs``
are thin wrappers around these functions.
"""
