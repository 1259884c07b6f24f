"""One dynamic partition per contribution file."""

import hashlib
import re

import dagster as dg

contributions_partitions = dg.DynamicPartitionsDefinition(name="contributions")

_MAX_KEY_LENGTH = 120


def contribution_key(relative_path: str) -> str:
    """A stable, filesystem-safe partition key for ``<contributor>/<file>``.

    Characters outside ``[A-Za-z0-9._-]`` become ``_`` and a short hash of the original path
    keeps keys unique when two names sanitize alike; the key is also used as a directory name,
    so it can never contain a path separator or ``..``.
    """
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", relative_path.replace("/", "--"))
    readable = re.sub(r"\.{2,}", "_", readable).strip("._-")[:_MAX_KEY_LENGTH] or "file"
    digest = hashlib.sha256(relative_path.encode()).hexdigest()[:8]
    return f"{readable}-{digest}"
