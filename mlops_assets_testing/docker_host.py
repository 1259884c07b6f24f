"""A Docker engine on this machine for the deployment test and benchmark.

No registry image can be pulled here, so: the engine is Debian's ``docker.io`` (started here
when none answers), the base image is made with ``debootstrap`` from the machine's own Debian
mirror, and the product's image is built from ``docker/Dockerfile`` on top of it with the
build on the host's network (which reaches the package index). Containers use host
networking: the engine runs without a bridge (``--bridge=none --iptables=false``).

Used by ``test_docker_deployment.py`` and ``benchmarks/docker_deployment.py``.
"""

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlops_assets_testing.processes import REPO, stop_group

IMAGE = "mlops-assets:latest"  # the name docker/docker-compose.yml runs
# Debian 12's python3 is 3.11, the version the project requires (Debian 13 has 3.13).
BASE_SUITE = "bookworm"
BASE_IMAGE = f"mlops-assets-base:{BASE_SUITE}"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates")
TOOLS = ("docker", "dockerd", "docker-compose", "debootstrap")


class DockerUnavailable(RuntimeError):
    """No Docker engine can be reached or started here; the message says why."""


def docker(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """``docker ARGS``, its output captured; raises with the output when it fails."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} failed:\n{result.stdout}{result.stderr}")
    return result


def engine_answers() -> bool:
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=20, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


@contextlib.contextmanager
def docker_engine(logs: Path) -> Iterator[None]:
    """A Docker engine that answers: the one running, or ``dockerd`` started here (as root)
    and stopped on exit. Raises :class:`DockerUnavailable` saying why when there is none."""
    if missing := missing_tools():
        raise DockerUnavailable(
            f"not installed: {', '.join(missing)}. `make test-docker` installs them as root "
            "(apt-get install docker.io docker-compose debootstrap)"
        )
    if engine_answers():
        yield
        return
    if os.geteuid() != 0:
        raise DockerUnavailable(
            "no Docker engine answers on /var/run/docker.sock and only root can start one: "
            "start dockerd, or run as root"
        )
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / "dockerd.log"
    with log_path.open("w") as log:
        engine = subprocess.Popen(
            ["dockerd", "--iptables=false", "--bridge=none"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while not engine_answers():
            if engine.poll() is not None or time.monotonic() > deadline:
                raise DockerUnavailable(
                    f"dockerd did not start (exit code {engine.poll()}); its log ends:\n"
                    + log_path.read_text()[-3000:]
                )
            time.sleep(1)
        yield
    finally:
        stop_group(engine, signal.SIGTERM, timeout=60)


def image_exists(name: str) -> bool:
    return (
        subprocess.run(
            ["docker", "image", "inspect", name], capture_output=True, check=False
        ).returncode
        == 0
    )


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (deb822 sources or a sources.list line)."""
    sources = Path("/etc/apt")
    listed = sorted((sources / "sources.list.d").glob("*.sources"))
    listed += sorted((sources / "sources.list.d").glob("*.list"))
    for path in [*listed, sources / "sources.list"]:
        text = path.read_text() if path.is_file() else ""
        # deb822 stanzas ("URIs: <mirror>" ... "Suites: bookworm ...") or one-line entries
        # ("deb [options] <mirror> bookworm main"); Debian's own suites, not security updates.
        found = [
            uri
            for stanza in text.split("\n\n")
            for uri in re.findall(r"^URIs:\s*(\S+)", stanza, re.M)
            if re.search(rf"^Suites:.*\b{BASE_SUITE}\b", stanza, re.M)
        ]
        found += re.findall(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{BASE_SUITE}\s", text, re.M)
        for mirror in found:
            if "security" not in mirror:
                return mirror
    raise DockerUnavailable(f"no Debian {BASE_SUITE} mirror in /etc/apt/sources.list{{,.d}}")


def build_base_image(workdir: Path) -> float:
    """Make :data:`BASE_IMAGE` with debootstrap unless it exists; returns the seconds spent.

    The machine's own certificate authorities (/usr/local/share/ca-certificates) are trusted in
    it, as in the machine's other programs: the package index is reached through them."""
    if image_exists(BASE_IMAGE):
        return 0.0
    start = time.monotonic()
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=workdir))
    try:
        subprocess.run(
            [
                *("debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}"),
                *(BASE_SUITE, str(rootfs), debian_mirror()),
            ],
            check=True,
            capture_output=True,
            timeout=900,
        )
        local_cas = Path("/usr/local/share/ca-certificates")
        for certificate in local_cas.glob("*.crt") if local_cas.is_dir() else []:
            shutil.copy(certificate, rootfs / "usr/local/share/ca-certificates")
        chroot = ("chroot", str(rootfs))
        subprocess.run([*chroot, "update-ca-certificates"], check=True, capture_output=True)
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc"):
            shutil.rmtree(rootfs / leftover, ignore_errors=True)
        version = subprocess.run(
            [*chroot, "python3", "--version"], capture_output=True, text=True, check=True
        ).stdout
        if not version.startswith("Python 3.11."):
            raise DockerUnavailable(f"{BASE_SUITE}'s python3 is {version.strip()}, not 3.11")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        docker(
            "import",
            *("--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            *("--change", "ENV LANG=C.UTF-8"),
            # pip and uv read the system's store (with the machine's authorities) from here.
            *("--change", "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"),
            *("--change", "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt"),
            *("--change", 'CMD ["bash"]'),
            *("-", BASE_IMAGE),
            stdin=tar.stdout,
            timeout=600,
        )
        tar.wait()
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return time.monotonic() - start


@dataclass(frozen=True)
class Build:
    seconds: float
    size_bytes: int


def build_image(base: str = BASE_IMAGE, tag: str = IMAGE, *, no_cache: bool = False) -> Build:
    """``docker build`` of docker/Dockerfile from the repository, on ``base``, with the
    package index this machine's pip uses (``PIP_INDEX_URL``, when set)."""
    start = time.monotonic()
    index = os.environ.get("PIP_INDEX_URL") or os.environ.get("UV_INDEX_URL")
    docker(
        *("build", "--network", "host", "-f", str(REPO / "docker" / "Dockerfile")),
        *("--build-arg", f"BASE_IMAGE={base}"),
        *(("--build-arg", f"PIP_INDEX_URL={index}") if index else ()),
        *(("--no-cache",) if no_cache else ()),
        *("-t", tag, str(REPO)),
        timeout=1800,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
    )
    seconds = time.monotonic() - start
    size = int(docker("image", "inspect", "-f", "{{.Size}}", tag).stdout)
    return Build(seconds=seconds, size_bytes=size)
