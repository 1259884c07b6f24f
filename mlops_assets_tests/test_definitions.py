import json
import re
import subprocess
import sys

import dagster as dg
import pytest

from mlops_assets.definitions import build_definitions
from mlops_assets.settings import Settings


@pytest.fixture(scope="module")
def defs(tmp_path_factory) -> dg.Definitions:
    return build_definitions(Settings.from_env({"MLOPS_HOME": str(tmp_path_factory.mktemp("h"))}))


ASSETS = {
    "iris_dataset",
    "contributed_data",
    "integrated_dataset",
    "baseline_model",
    "trained_model",
    "registered_model_version",
    "contributor_scoreboard",
}


def test_the_asset_graph_has_seven_assets_with_their_dependencies(defs):
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == ASSETS

    def parents(name):
        return {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}

    assert parents("integrated_dataset") == {"iris_dataset", "contributed_data"}
    assert parents("baseline_model") == {"iris_dataset"}
    assert parents("trained_model") == {"integrated_dataset", "baseline_model"}
    assert parents("registered_model_version") == {"trained_model"}
    assert parents("contributor_scoreboard") == {"registered_model_version"}
    assert graph.get(dg.AssetKey("contributed_data")).partitions_def is not None
    # An intake judges a contribution against the reference data, and says so.
    assert parents("contributed_data") == {"iris_dataset"}


def test_checks_guard_the_assets_and_the_gating_ones_block(defs):
    graph = defs.resolve_asset_graph()
    checks = {
        (key.asset_key.to_user_string(), key.name): graph.get_check_spec(key).blocking
        for key in graph.asset_check_keys
    }
    assert checks == {
        # A rejection is an outcome (a warning), and nothing downstream needs gating on it.
        ("contributed_data", "contributed_data_accepted"): False,
        # The Great Expectations suites: second opinions on rows validated on their way in.
        ("iris_dataset", "iris_dataset_expectations"): False,
        ("integrated_dataset", "integrated_dataset_expectations"): False,
        ("integrated_dataset", "integrated_dataset_has_no_benchmark_rows"): True,
        ("integrated_dataset", "integrated_dataset_class_balance"): True,
        ("trained_model", "trained_model_accuracy_floor"): True,
        ("trained_model", "trained_model_has_signature"): False,
    }


def test_sensors_the_demo_needs_are_running_by_default(defs):
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {
        "contribution_sensor",
        "retrain_sensor",
        "automation_sensor",
        "mlflow_run_cleanup_sensor",
        "webhook_redelivery_sensor",
    }
    for sensor in sensors.values():
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_contributions_reach_training_only_through_the_retrain_sensor(defs):
    # eager() on integrated_dataset follows the iris data only: a contribution (accepted or
    # not) must not rebuild it on its own, nor a missing partition block it.
    condition = defs.resolve_assets_def("integrated_dataset").automation_conditions_by_key[
        dg.AssetKey("integrated_dataset")
    ]
    ignored = "ignore_selection=KeysAssetSelection(selected_keys=[AssetKey(['contributed_data'])])"
    assert str(condition).count(ignored) == 3  # updated, missing, in progress
    ingest = defs.resolve_job_def("ingest_contribution")
    assert ingest.partitions_def.name == "contributions"
    # No Great Expectations in an intake run: its import alone costs seconds per file.
    assert {k.name for k in ingest.asset_layer.asset_graph.asset_check_keys} == {
        "contributed_data_accepted"
    }
    job = defs.resolve_job_def("retrain")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == {
        "baseline_model",
        "integrated_dataset",
        "trained_model",
        "registered_model_version",
        "contributor_scoreboard",
    }


def test_loading_the_code_location_does_not_import_heavy_libraries():
    # Every run process imports the code location; MLflow, GE, pandas and scikit-learn are
    # imported only by the steps that need them.
    code = (
        "import json, sys, mlops_assets.definitions as d; d.defs(); "
        "print(json.dumps(sorted(m for m in ('mlflow', 'great_expectations', 'pandas', "
        "'sklearn', 'dagster_mlflow') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_importing_the_code_location_reads_no_setting():
    # A broken setting fails when Dagster loads the definitions, with its name; importing the
    # modules (what tests and tools do) never reads the environment.
    code = (
        "import mlops_assets.definitions as d\n"
        "try:\n    d.defs()\nexcept Exception as exc:\n    print(type(exc).__name__, exc)"
    )
    env = {"PATH": "/usr/bin:/bin", "MLOPS_SEED": "forty-two", "HOME": "/tmp"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.startswith("ConfigurationError") and "MLOPS_SEED" in out.stdout


def test_each_deployment_gets_its_own_settings_in_one_process(tmp_path):
    def resources(**env: str) -> dict:
        settings = Settings.from_env({"MLOPS_HOME": str(tmp_path), **env})
        return build_definitions(settings).resources

    one, other = resources(), resources(MLOPS_SEED="7", MLOPS_MIN_QUALITY="80")
    assert (one["training_data_policy"].seed, other["training_data_policy"].seed) == (42, 7)
    assert (one["intake_policy"].min_quality, other["intake_policy"].min_quality) == (50.0, 80.0)
    fast = build_definitions(
        Settings.from_env({"MLOPS_HOME": str(tmp_path), "MLOPS_SENSOR_INTERVAL": "3"})
    )
    assert fast.resolve_sensor_def("contribution_sensor").minimum_interval_seconds == 3


RST = re.compile(r"``|:(class|func|meth|mod|attr):`")


def test_every_description_the_ui_shows_is_markdown(defs):
    # Dagster renders descriptions as Markdown: reStructuredText's double backticks and roles
    # would show raw.
    graph = defs.resolve_asset_graph()
    described = {
        **{
            f"asset {k.to_user_string()}": graph.get(k).description
            for k in graph.get_all_asset_keys()
        },
        **{f"check {k.name}": graph.get_check_spec(k).description for k in graph.asset_check_keys},
        **{f"sensor {s.name}": s.description for s in defs.sensors},
        **{f"job {j.name}": j.description for j in defs.resolve_all_job_defs()},
        **{
            f"resource {name}": r.get_resource_definition().description
            for name, r in defs.resources.items()
        },
    }
    for name, description in described.items():
        if name.startswith(("asset", "check")):
            assert description, f"{name} has no description"
        assert not RST.search(description or ""), f"{name}: {description}"
    config = {
        f"{name}.{field}": info.description
        for name, r in defs.resources.items()
        for field, info in type(r).model_fields.items()
    }
    assert not [field for field, text in config.items() if RST.search(text or "")]


def test_the_loader_finds_each_module_without_wiring_and_skips_the_component_catalogue():
    # definitions.py names no asset, check or sensor: Dagster's loader walks defs/.
    from mlops_assets_testing.processes import REPO

    source = (REPO / "mlops_assets" / "definitions.py").read_text()
    assert "mlops_assets.defs." not in source and "ComponentTree.for_project" in source
    code = (
        "import json, sys, mlops_assets.definitions as d; d.defs(); "
        "print(json.dumps(sorted(m for m in ('boto3', 'dagster_aws') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
