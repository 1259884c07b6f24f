"""The names this system gives registry aliases and version tags: one place, so the code
that writes a tag, the search that finds versions by it and the reader never disagree.

Every name is also part of the README's contract (``mlops model show --json``, a registry
UI): renaming one breaks what people and scripts read.
"""

# Aliases
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"

# What a registered model is
TASK = "task"  # the task (task file name) all its versions predict

# What a version is
MODEL_UUID = "model_uuid"  # the logged model's id, searchable
MODEL_ID = "model_id"  # MLflow 3's LoggedModel id: a rerun finds its own version by it
DATA_SHA256 = "data_sha256"  # the integrated dataset it was trained on
CONTRIBUTIONS = "contributions"  # JSON list of the contributions in that dataset
BASELINE_VERSION = "baseline_version"
DELTAS = "deltas"  # JSON: candidate minus baseline, per benchmark metric
# JSON: per summary metric, the delta with its paired bootstrap interval and p-value
DELTA_INTERVALS = "delta_intervals"
# JSON: per new contribution, its value, interval, leave-one-out delta and status
CONTRIBUTION_VALUES = "contribution_values"
# JSON: contribution id -> why it was left out of this version's training data
EXCLUDED_CONTRIBUTIONS = "excluded_contributions"
BENCHMARK_PREFIX = "benchmark_"  # benchmark_accuracy, ...
DAGSTER_RUN_ID = "dagster_run_id"
MLFLOW_RUN_ID = "mlflow_run_id"
COLD_START = "cold_start"  # "true" on the first version, trained or imported
ESTIMATOR = "estimator"
# sha256 of its data, estimator, hyperparameters, seed, task and code: a candidate with the
# fingerprint of any registered version would be the same model, so it is not trained
TRAINING_FINGERPRINT = "training_fingerprint"
# A baseline imported from a file: where from, its format and sha256 (found again by it)
IMPORTED_FROM = "imported_from"
SOURCE_FORMAT = "source_format"
SOURCE_SHA256 = "source_sha256"

# How its registration went
REGISTRATION = "registration"  # started | complete | abandoned
PROMOTED = "promoted"  # "true" | "false"
PROMOTION_REASON = "promotion_reason"
PROMOTION_P_VALUE = "promotion_p_value"
PROMOTION_TEST = "promotion_test"  # exact McNemar | paired bootstrap, when one decided
DECIDED_AGAINST = "decided_against"  # the champion's version when the decision was made
ATTESTATION_PATH = "attestation_path"
ATTESTATION_SHA256 = "attestation_sha256"
# A champion moved by hand: champion_set_by, _how, _reason, _at, _from
CHAMPION_SET_PREFIX = "champion_set_"
