"""Each setting is declared once (mlops_assets/settings.py): reading it, the resources built
from it and the README's table all follow from that declaration."""

import dataclasses
import os
import subprocess
import sys
import typing
import warnings
from pathlib import Path

import pytest

from mlops_assets.errors import MlopsError
from mlops_assets.resources import SettingsResource, build_resources
from mlops_assets.settings import (
    Settings,
    markdown_table,
    settings_of,
    variables,
    with_markdown_table,
)
from mlops_assets_testing.data import IRIS_CSV
from mlops_assets_testing.processes import REPO


def test_the_readme_settings_table_is_made_from_the_declarations():
    readme = (REPO / "README.md").read_text()
    assert with_markdown_table(readme) == readme, "stale: run `make settings-table`"
    for name in variables():
        assert f"| `{name}` |" in readme


def test_the_table_command_prints_what_the_readme_holds():
    out = subprocess.run(
        [sys.executable, "-m", "mlops_assets.settings", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == markdown_table()
    assert "| `MLOPS_SEED` | integer | 42 | Seed for" in out


def test_a_stale_table_is_found():
    readme = (REPO / "README.md").read_text()
    stale = readme.replace("| `MLOPS_SEED` | integer | 42 |", "| `MLOPS_SEED` | integer | 7 |")
    assert stale != readme and with_markdown_table(stale) == readme


def test_every_variable_the_code_names_is_declared():
    import re

    from mlops_assets import errors

    codes = {getattr(v, "code", None) for v in vars(errors).values() if isinstance(v, type)}
    named = set()
    for path in (REPO / "mlops_assets").rglob("*.py"):
        named |= set(re.findall(r'"(MLOPS_[A-Z0-9_]+)"', path.read_text()))
    old_names = {s.old_name for s in settings_of().values() if s.old_name}
    assert named - codes - old_names <= set(variables()), named - codes - set(variables())


def test_each_field_of_settings_is_declared_once_with_its_variable():
    declared = settings_of()
    names = [s.name for s in declared.values()]
    assert len(names) == len(set(names))
    derived = {f.name for f in dataclasses.fields(Settings)} - set(declared)
    assert derived == {"task"}  # read from the task file MLOPS_TASK names


def test_settings_resources_hold_settings_by_name_with_their_meaning_and_type(tmp_path):
    settings = Settings.from_env({"MLOPS_HOME": str(tmp_path)})
    hints = typing.get_type_hints(Settings)
    held = {
        key: resource
        for key, resource in build_resources(settings).items()
        if isinstance(resource, SettingsResource)
    }
    assert set(held) >= {"promotion_policy", "training_data_policy", "intake_policy", "task"}
    as_config = {Path: str, Path | None: str | None, tuple[str, ...]: list[str]}
    for key, resource in held.items():
        for name, info in type(resource).model_fields.items():
            assert info.annotation == as_config.get(hints[name], hints[name]), (key, name)
            assert info.description.startswith(settings_of()[name].name), (key, name)
            value = getattr(settings, name)
            expected = list(value) if isinstance(value, tuple) else value
            assert getattr(resource, name) == (str(value) if isinstance(value, Path) else expected)


def test_reading_settings_writes_nothing_to_the_environment(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("MLOPS_SEED=7\nMLOPS_FROM_DOTENV_ONLY=1\n")
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://user:secret@mlflow.example/")
    before = dict(os.environ)
    settings = Settings.from_env()
    assert dict(os.environ) == before
    assert settings.seed == 7  # .env is read, not loaded into the process
    assert settings.tracking_uri == "https://mlflow.example/"


def test_starting_a_process_moves_the_tracking_uris_credentials_to_mlflow(monkeypatch):
    from mlops_assets.process import prepare_process

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://user:s%40cret@mlflow.example/")
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    prepare_process()
    assert os.environ["MLFLOW_TRACKING_URI"] == "https://mlflow.example/"
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "user"
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "s@cret"


def test_mlops_reference_names_the_reference_data(tmp_path):
    parquet = tmp_path / "iris.parquet"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name warns about nothing
        settings = Settings.from_env({"MLOPS_HOME": str(tmp_path), "MLOPS_REFERENCE": str(parquet)})
    assert settings.reference == str(parquet)
    default = Settings.from_env({"MLOPS_HOME": str(tmp_path)})
    assert Path(default.reference) == IRIS_CSV  # the task file's
    assert build_resources(settings)["reference_data"].reference == str(parquet)


def test_the_old_name_mlops_iris_csv_is_still_read_with_a_warning(tmp_path):
    env = {"MLOPS_HOME": str(tmp_path), "MLOPS_IRIS_CSV": "sklearn:load_iris"}
    with pytest.warns(FutureWarning, match="MLOPS_IRIS_CSV is renamed MLOPS_REFERENCE"):
        settings = Settings.from_env(env)
    assert settings.reference == "sklearn:load_iris"
    with pytest.warns(FutureWarning, match="is ignored: MLOPS_REFERENCE is set"):
        both = Settings.from_env({**env, "MLOPS_REFERENCE": "sklearn:load_wine"})
    assert both.reference == "sklearn:load_wine"


def test_a_bad_value_names_its_variable_and_an_example(tmp_path):
    with pytest.raises(MlopsError, match=r"MLOPS_MIN_ROWS='many' is not a valid int") as raised:
        Settings.from_env({"MLOPS_HOME": str(tmp_path), "MLOPS_MIN_ROWS": "many"})
    assert "such as 1" in str(raised.value.hint)
