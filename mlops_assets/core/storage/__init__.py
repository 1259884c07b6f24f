"""Where files live, without Dagster: the dataset store and the landing zone, in a local
folder or on S3 (``s3``), opened from their URIs (``places``). The Dagster resources
(`mlops_assets/resources`) and the command line use the same code."""
