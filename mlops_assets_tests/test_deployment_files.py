"""The deployment files, the native topology test and the code agree on variable names."""

import re

import yaml

from mlops_assets.settings import SETTINGS_DOC
from mlops_assets_testing.processes import REPO
from mlops_assets_testing.topology import topology_env

DOCKER = REPO / "docker"


def env_example() -> dict[str, str]:
    lines = (DOCKER / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_every_variable_the_code_reads_is_documented():
    source = (REPO / "mlops_assets" / "settings.py").read_text()
    read = set(re.findall(r'\bget\(\s*"([A-Z][A-Z0-9_]+)"', source))
    assert read and read <= set(SETTINGS_DOC), read - set(SETTINGS_DOC)


def test_the_deployment_files_use_only_variables_of_env_example():
    defined = set(env_example())
    instance = (DOCKER / "dagster.yaml").read_text()
    used = set(re.findall(r"env: ([A-Z][A-Z0-9_]+)", instance))
    used |= set(yaml.safe_load(instance)["run_launcher"]["config"]["env_vars"])
    compose = (DOCKER / "docker-compose.yml").read_text()
    references = re.findall(r"\$\{([A-Z0-9_]+)\}|\$\$([A-Z0-9_]+)", compose)
    # Names a service sets for itself (POSTGRES_USER for the postgres image...) are its own.
    own = {
        key
        for service in yaml.safe_load(compose)["services"].values()
        for key in (service.get("environment") or {})
    }
    used |= {name for pair in references for name in pair if name} - own
    assert used - defined == set(), used - defined

    # Every variable listed is read by the code or by a deployment file: nothing stale.
    unused = defined - set(SETTINGS_DOC) - used - {"MLFLOW_POSTGRES_DB"}
    assert unused == set(), unused
    assert "MLFLOW_POSTGRES_DB" in compose


def test_every_service_of_the_image_gets_the_shared_environment():
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    ours = {
        name: service
        for name, service in compose["services"].items()
        if service.get("image") == "mlops-assets:latest"
    }
    assert set(ours) == {"mlflow", "user-code", "webserver", "daemon", "api"}
    for name, service in ours.items():
        assert service["env_file"] == ".env", name
        assert "healthcheck" in service or name == "api", name  # api: the image's own
        assert "mlops-state:/opt/mlops/var" in service["volumes"], name


def test_the_native_topology_test_sets_the_same_names():
    names = set(
        topology_env(
            dagster_home=REPO / "unused",
            dagster_db="d",
            tracking_uri="http://127.0.0.1:1",
            s3_endpoint="http://127.0.0.1:2",
            bucket="b",
        )
    )
    # DAGSTER_HOME points at the test's own directory (the image bakes its own in).
    assert names - {"DAGSTER_HOME"} <= set(env_example()), names - set(env_example())
    assert {"DAGSTER_POSTGRES_HOST", "MLFLOW_TRACKING_URI", "MLOPS_STORAGE_URI"} <= names
