"""Promotion: what makes a model version the one served. The gate (``gate``), registering a
version in one path (``registration``, also the baseline's: ``baseline``), moving
``champion`` and rolling it back (``champion``), the attestation of every version
(``attestation``) and checking it again (``verify``)."""
