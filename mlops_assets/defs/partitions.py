"""One dynamic partition per contribution file."""

import dagster as dg

contributions_partitions = dg.DynamicPartitionsDefinition(name="contributions")
