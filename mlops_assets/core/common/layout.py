"""Where each dataset lives in the dataset store, by key relative to its root: shared by the
store resources and the command line (which reads a local store without loading Dagster)."""

REFERENCE_TRAIN = "reference/train.parquet"
BENCHMARK = "reference/benchmark.parquet"
CONTRIBUTIONS = "contributions"
# The bytes of accepted contributions, as ingested: <sha256[:16]>/<file name>.
ORIGINALS = "originals"
SCOREBOARD = "scoreboard/contributors.parquet"
# A compacted copy of the catalog's accepted rows, which a retrain reads instead of the
# database (`core/catalog/snapshot`).
ACCEPTED_ROWS = "catalog/accepted_rows.parquet"
TASK = "task.json"  # the task whose data the store holds


def contribution(contribution_id: str, file: str = "") -> str:
    """The key of a contribution's folder, or of ``file`` in it."""
    return "/".join(filter(None, (CONTRIBUTIONS, contribution_id, file)))


def integrated(sha256: str) -> str:
    # Versioned by content hash, so the exact data any model was trained on stays readable.
    return f"integrated/{sha256[:16]}.parquet"
