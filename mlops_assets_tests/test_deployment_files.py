"""The deployment files, the native topology test and the code agree on variable names."""

import re

import yaml

from mlops_assets.settings import variables
from mlops_assets_testing.processes import REPO
from mlops_assets_testing.topology import topology_env

DOCKER = REPO / "docker"


def env_example() -> dict[str, str]:
    lines = (DOCKER / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_the_deployment_files_use_only_variables_of_env_example():
    defined = set(env_example())
    instance = (DOCKER / "dagster.yaml").read_text()
    used = set(re.findall(r"env: ([A-Z][A-Z0-9_]+)", instance))
    used |= set(yaml.safe_load(instance)["run_launcher"]["config"]["env_vars"])
    compose = (DOCKER / "docker-compose.yml").read_text()
    # ${NAME}, ${NAME:?message} or ${NAME:-default} for compose; $$NAME for a container's shell.
    references = re.findall(r"\$\{([A-Z0-9_]+)(?:[:?-][^}]*)?\}|\$\$([A-Z0-9_]+)", compose)
    # Names a service sets for itself (POSTGRES_USER for the postgres image...) are its own.
    own = {
        key
        for service in yaml.safe_load(compose)["services"].values()
        for key in (service.get("environment") or {})
    }
    used |= {name for pair in references for name in pair if name} - own
    assert used - defined == set(), used - defined

    # Every variable listed is read by the code or by a deployment file: nothing stale.
    unused = defined - set(variables()) - used - {"COMPOSE_PROJECT_NAME"}
    assert unused == set(), unused


def test_every_service_of_the_image_gets_the_shared_environment():
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    ours = {
        name: service
        for name, service in compose["services"].items()
        if service.get("image") == "mlops-assets:latest"
    }
    assert set(ours) == {"mlflow", "user-code", "webserver", "daemon", "api", "portal"}
    for name, service in ours.items():
        assert service["env_file"] == ".env", name
        assert "healthcheck" in service, name
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


def instance_config() -> dict:
    return yaml.safe_load((DOCKER / "dagster.yaml").read_text())


def test_run_containers_get_what_the_instance_reads():
    """A run loads the instance from the same dagster.yaml in its container: every variable
    the file reads must be passed to it, or the run fails before its first step."""
    instance = (DOCKER / "dagster.yaml").read_text()
    passed = set(instance_config()["run_launcher"]["config"]["env_vars"])
    assert set(re.findall(r"env: ([A-Z][A-Z0-9_]+)", instance)) <= passed


def test_run_containers_get_every_setting_the_daemon_has(monkeypatch):
    """The run launcher of docker/dagster.yaml, loaded as Dagster loads it, passes the product's
    settings set in the daemon's environment (docker/.env) besides the ones it lists."""
    from dagster._serdes.config_class import ConfigurableClassData

    launcher = instance_config()["run_launcher"]
    for name, value in env_example().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLOPS_PRIMARY_METRIC", "brier")  # an operator's addition to docker/.env
    monkeypatch.delenv("MLOPS_SEED", raising=False)
    loaded = ConfigurableClassData(
        launcher["module"], launcher["class"], yaml.safe_dump(launcher["config"])
    ).rehydrate(as_type=object)
    assert loaded.networks == [env_example()["DAGSTER_DOCKER_NETWORK"]]
    passed = list(loaded.env_vars)
    assert len(passed) == len(set(passed))
    assert set(launcher["config"]["env_vars"]) <= set(passed)
    assert {"MLOPS_PRIMARY_METRIC", "MLFLOW_TRACKING_URI", "MLOPS_API_URL"} <= set(passed)
    assert "MLOPS_SEED" not in passed  # not set: the run's own default, as everywhere
    assert "MLOPS_BUCKET" not in passed  # compose's, not a setting


def test_the_host_network_variant_runs_the_production_services_unchanged():
    """docker-compose.host.yml swaps the services no image exists for here (PostgreSQL, MinIO,
    the bucket) and puts everything on the host's network; the services of our image keep the
    production file's commands, health checks and volumes, so the Docker test runs them."""
    production = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())["services"]
    host = yaml.safe_load((DOCKER / "docker-compose.host.yml").read_text())["services"]
    assert set(host) == set(production)
    for name in ("mlflow", "user-code", "webserver", "daemon", "api", "portal"):
        assert set(host[name]) <= {"network_mode", "extra_hosts"}, name
    assert all(service["network_mode"] == "host" for service in host.values())
    # Published ports come from the file compose reads by itself, which the host variant
    # (named with -f) leaves out: a container on the host's network cannot publish a port.
    assert not [name for name, service in production.items() if "ports" in service]
    ports = yaml.safe_load((DOCKER / "docker-compose.override.yml").read_text())["services"]
    assert set(ports) == {"minio", "mlflow", "webserver", "api", "portal"}


def test_every_shipped_instance_purges_sensor_ticks():
    """Each tick stores its sensor's cursor: 17,280 ticks a day at the default interval. Every
    shipped instance purges them (Dagster keeps successful and failed ones forever by
    default), in a form Dagster 1.13 accepts."""
    from dagster._config import validate_config
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.instance.config import (
        dagster_instance_config_schema,
        get_default_tick_retention_settings,
        get_tick_retention_settings,
    )
    from dagster._core.scheduler.instigation import TickStatus

    files = sorted(DOCKER.glob("dagster*.yaml"))
    assert [f.name for f in files] == ["dagster.ecs.yaml", "dagster.embedded.yaml", "dagster.yaml"]
    for path in files:
        config = yaml.safe_load(path.read_text())
        checked = validate_config(dagster_instance_config_schema(), config)
        assert checked.success, (path.name, checked.errors)
        days = get_tick_retention_settings(
            config["retention"]["sensor"],
            get_default_tick_retention_settings(InstigatorType.SENSOR),
        )
        assert days[TickStatus.SKIPPED] == 1, path.name
        assert 0 < days[TickStatus.FAILURE] <= 30, path.name
        assert 0 < days[TickStatus.SUCCESS] <= 90, path.name


def test_an_existing_embedded_home_gets_the_retention_section():
    """scripts/dev.sh appends the embedded instance's last section, from `# Tick retention`
    on, to a home's dagster.yaml made before it existed: that section is the retention alone
    and appends to the old file as valid YAML."""
    text = (DOCKER / "dagster.embedded.yaml").read_text()
    section = text[text.index("\n# Tick retention") :]
    assert set(yaml.safe_load(section)) == {"retention"}
    old = text[: text.index("\n# Tick retention")]
    assert "retention" not in yaml.safe_load(old)
    assert yaml.safe_load(old + "\n" + section) == yaml.safe_load(text)
    dev = (REPO / "scripts" / "dev.sh").read_text()
    assert "sed -n '/^# Tick retention/,$p' docker/dagster.embedded.yaml" in dev
