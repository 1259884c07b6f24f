"""Contributions: the landing-zone sensor, one partition and intake run per file, the checks
that stop a rejected file from reaching training."""
