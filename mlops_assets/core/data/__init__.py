"""The reference data and its benchmark split, the integrated training set, and the data
expectations."""
