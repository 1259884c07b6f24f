"""One dynamic partition per contribution file."""

import dagster as dg

contributions_partitions = dg.DynamicPartitionsDefinition(name="contributions")

# Run tags an intake carries: the sensor sets them, the intake and `mlops contributions` read.
STAGE_TAG = "mlops/stage"  # "ingest" or "retrain": what the sensors wait for
LANDING_PATH_TAG = "mlops/landing_path"
CONTENT_VERSION_TAG = "mlops/content_version"  # what the sensor found the bytes to be
CONTRIBUTOR_TAG = "mlops/contributor"
LANDED_AT_TAG = "mlops/landed_at"  # seconds since the epoch: when the sensor took the file
