"""The reference data with its fixed benchmark, and the integrated training set."""
