"""One contribution from the landing zone to its decision: reading any file as tools write it,
mapping columns, scrubbing personal data, validating, deduplicating, scoring, deciding."""
