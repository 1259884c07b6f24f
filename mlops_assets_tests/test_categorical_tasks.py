"""A task with categorical features and missing values (the Palmer penguins): intake,
duplicates, integration, training, the logged model and the API's request model."""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.data.integration import Contribution, benchmark_overlap, integrate
from mlops_assets.core.data.reference_data import load_reference_data, split_benchmark
from mlops_assets.core.intake.intake import intake_contribution
from mlops_assets.core.intake.report import IntakePolicy
from mlops_assets.core.intake.validation import validate_rows
from mlops_assets.task import KEEP, load_task
from mlops_assets_testing.data import penguins_contribution
from mlops_assets_testing.processes import REPO

PENGUINS = load_task(REPO / "tasks" / "penguins.toml")
REFERENCE = load_reference_data(PENGUINS.reference, PENGUINS).frame
# The same task, taking identical rows for two penguins alike (the default with a category).
ALIKE = dataclasses.replace(PENGUINS, duplicates=KEEP)


def intake(path: Path, tmp_path: Path, task=PENGUINS):
    out = tmp_path / "out"
    report = intake_contribution(
        path,
        task,
        reference=REFERENCE,
        contribution_id="c1",
        contributor="carla",
        policy=IntakePolicy(),
        output_dir=out,
    )
    return report, pd.read_parquet(out / "clean.parquet"), pd.read_parquet(out / "rejected.parquet")


def test_categories_are_read_in_any_spelling_and_unknown_ones_rejected():
    rows = pd.DataFrame(
        {
            "island": ["Dream", " biscoe", "TORGERSEN", "Dream", "Anvers", "", "Dream"],
            "bill_length_mm": ["40.1", "41", "39", "42", "40", "40", ""],
            "bill_depth_mm": ["18"] * 7,
            "flipper_length_mm": ["190"] * 7,
            "body_mass_g": ["3800", "NA", "", ".", "3800", "3800", "3800"],
            "sex": ["M", "female", "", ".", "male", "?", "f"],  # "." as penguins_raw has it
            "species": ["Adelie"] * 7,
        }
    )
    result = validate_rows(rows, PENGUINS)
    assert result.valid["island"].tolist() == ["Dream", "Biscoe", "Torgersen", "Dream"]
    assert result.valid["sex"].tolist() == ["male", "female", None, None]  # imputed: None
    assert result.valid["body_mass_g"].isna().tolist() == [False, True, True, True]
    assert result.rejected["rejection_reasons"].tolist() == [
        "unknown_category:island",
        "missing_value:island",  # the task rejects a penguin without its island
        "missing_value:bill_length_mm",
    ]


def test_a_raw_palmer_file_is_taken_in_with_its_own_names(tmp_path):
    path = tmp_path / "penguins_raw.csv"
    penguins_contribution().to_csv(path, index=False)
    report, clean, rejected = intake(path, tmp_path)
    assert report.accepted and report.rows_clean == 30 and rejected.empty
    assert report.column_mapping["Culmen Length (mm)"] == "bill_length_mm"
    assert "Individual ID" in report.dropped_columns
    assert set(clean["species"]) <= set(PENGUINS.classes)
    assert clean["body_mass_g"].isna().sum() == 1
    assert clean["sex"].isna().sum() >= 2 and set(clean["sex"].dropna()) == {"female", "male"}


@pytest.mark.parametrize(
    ("task", "rejected_as"),
    [(PENGUINS, ["duplicate_in_contribution", "duplicate_of_reference"]), (ALIKE, [])],
)
def test_identical_rows_are_copies_or_observations_as_the_task_says(tmp_path, task, rejected_as):
    reference_row = REFERENCE.iloc[0]
    new = {**reference_row.to_dict(), "bill_length_mm": 44.4, "sex": None}
    frame = pd.DataFrame([new, new, reference_row.to_dict()])
    path = tmp_path / "twins.csv"
    frame.to_csv(path, index=False)
    _, clean, rejected = intake(path, tmp_path, task)
    assert rejected["rejection_reasons"].tolist() == rejected_as
    assert len(clean) == 3 - len(rejected_as)


def test_integration_keeps_observations_alike_but_never_a_copy_of_the_benchmark():
    split = split_benchmark(REFERENCE, PENGUINS, fraction=0.3, seed=42)
    copy = split.benchmark.head(3)
    twins = pd.concat([split.train.head(2)] * 2).assign(bill_length_mm=50.5)
    rows = pd.concat([copy, twins], ignore_index=True)
    contributed = [Contribution("c1", "carla", rows.assign(row_index=range(len(rows))))]
    # Identical rows as copies: one of each pair of twins; as observations: both.
    for task, twins_kept in ((PENGUINS, 2), (ALIKE, 4)):
        result = integrate(split.train, contributed, split.benchmark, task, seed=1)
        assert result.stats["benchmark_rows_removed"] == 3
        assert (result.frame["contribution_id"] == "c1").sum() == twins_kept
        assert benchmark_overlap(result.frame, split.benchmark, task) == 0


@pytest.mark.parametrize("estimator", ["logistic_regression", "random_forest", "gradient_boosting"])
def test_a_model_takes_raw_values_and_round_trips_through_mlflow(mlflow_store, estimator):
    """The logged model encodes categories and imputes missing values itself, needs no type
    beyond the allow-list, and MLflow serves it raw rows: strings, None and NaN."""
    import mlflow

    from mlops_assets.core.modeling.training import train_model
    from mlops_assets.core.registry.model_files import skops_untrusted_types
    from mlops_assets.core.registry.models import load_sklearn_model, log_sklearn_model

    split = split_benchmark(REFERENCE, PENGUINS, fraction=0.3, seed=42)
    model = train_model(split.train, PENGUINS, estimator=estimator, hyperparameters={}, seed=1)
    assert skops_untrusted_types(model) == []
    with mlflow.start_run():
        info = log_sklearn_model(
            model, name="model", input_example=split.train[PENGUINS.feature_names].head(5),
            task=PENGUINS,
        )  # fmt: skip
    inputs = {c.name: (c.type.name, c.required) for c in info.signature.inputs}
    assert inputs["island"] == ("string", True) and inputs["body_mass_g"] == ("double", True)
    loaded = load_sklearn_model(info.model_uri)
    raw = pd.DataFrame(
        {
            "island": ["Dream", "Biscoe"],
            "bill_length_mm": [49.0, 47.5],
            "bill_depth_mm": [18.5, 15.0],
            "flipper_length_mm": [195.0, 217.0],
            "body_mass_g": [np.nan, 5000.0],
            "sex": [None, "male"],
        }
    )
    assert list(loaded.predict(raw)) == ["Chinstrap", "Gentoo"]
    assert list(mlflow.pyfunc.load_model(info.model_uri).predict(raw)) == ["Chinstrap", "Gentoo"]


def test_the_api_request_model_is_the_tasks():
    from pydantic import ValidationError

    from mlops_assets.serving.api import instance_model

    instance = instance_model(PENGUINS)
    schema = instance.model_json_schema()
    assert schema["properties"]["island"]["enum"] == ["Biscoe", "Dream", "Torgersen"]
    assert set(schema["required"]) == {
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
    }
    row = instance(island="Dream", bill_length_mm=49.0, bill_depth_mm=18.5, flipper_length_mm=195)
    assert (row.sex, row.body_mass_g) == (None, None)
    with pytest.raises(ValidationError, match="island"):
        instance(island="Anvers", bill_length_mm=49.0, bill_depth_mm=18.5, flipper_length_mm=195)


def test_the_reference_keeps_its_own_repeated_rows_when_identical_rows_are_observations():
    doubled = pd.concat([REFERENCE, REFERENCE.head(20)], ignore_index=True)
    split = split_benchmark(doubled, ALIKE, fraction=0.3, seed=42)
    result = integrate(split.train, [], split.benchmark, ALIKE, seed=1)
    assert len(result.frame) == len(split.train)  # nothing taken for a copy or a leak
    assert benchmark_overlap(result.frame, split.benchmark, ALIKE) == 0
    copies = integrate(split.train, [], split.benchmark, PENGUINS, seed=1)
    assert len(copies.frame) < len(split.train)
