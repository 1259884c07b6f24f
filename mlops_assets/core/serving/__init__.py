"""Serving the champion without a web framework: loading, following the alias, predicting."""
