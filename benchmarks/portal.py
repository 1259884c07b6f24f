"""The contributor portal under measurement (issue 30): upload to verdict, pages under 20
concurrent contributors, the portal process's memory, and a contributor's page at 100,000
contributions in the catalog against 10.

Everything runs against real ``mlops portal`` processes (uvicorn on 127.0.0.1), each over an
embedded home of its own, driven over HTTP by ``requests`` (bodies streamed from disk):

1. *Load*: a home with 20 public accounts of 50 contributions each (one real intake through
   ``mlops_assets_testing.portal.take_in``; the other 999 are its report cloned in bulk into
   the catalog, as ``benchmarks/scale.py`` fills one) and a scoreboard. Its portal's RSS at
   idle; then 20 threads, one per account, each signed in through the sign-in form, fetch
   their contributions page, one of their contribution pages and the scoreboard in a loop for
   ``--seconds``: p50/p99 per page, requests per second, peak RSS (sampled every 100 ms).
2. *Upload to verdict*: a 5 KB and a 50 MB CSV, ``--rounds`` times each, in turns over two
   portals of that home: the default one (a file over ``MLOPS_PORTAL_CHECK_INLINE_BYTES``, 5 MB,
   answered 202 at once, then its status URL polled every 50 ms until the verdict) and one
   that checks every upload while the request waits (the threshold at 2 GB: the behaviour
   before). Time to the answer and to the verdict; the portals' peak RSS (VmHWM) after; and,
   in one more 50 MB upload, another account's list of contributions fetched between two polls
   while the file is checked: what a check in the portal's own process costs everyone else.
3. *Catalog size*: one account of 10 contributions, in a catalog of 10 and in one of 100,000
   (the others' contributions); its contributions page (HTML, signed in), ``GET
   /api/v1/contributions`` and one contribution page, taken in turns over the two portals.

The client threads share the machine's cores with the portal: on 2 cores the numbers are
what one small server answers while its own load generator runs beside it.

    python benchmarks/portal.py [--seconds 30] [--rounds 5] [--large 100000]
"""

import argparse
import contextlib
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import requests

from mlops_assets.core.accounts.store import AccountStore
from mlops_assets.core.catalog.catalog import DONE, ContributionCatalog
from mlops_assets.core.catalog.sync import open_catalog
from mlops_assets.core.common import layout
from mlops_assets.core.intake.landing import contribution_key
from mlops_assets.core.storage.places import open_store
from mlops_assets.task import IRIS
from mlops_assets_testing.data import IRIS_CSV, new_flowers
from mlops_assets_testing.portal import portal_settings, take_in
from mlops_assets_testing.processes import free_port

ACCOUNTS = 20
PER_ACCOUNT = 50
MB = 1024 * 1024
VENV_BIN = Path(sys.executable).parent


# ---- homes -------------------------------------------------------------------------------


def make_home(home: Path, accounts: dict[str, int], others: int) -> dict[str, str]:
    """An embedded home whose catalog holds ``accounts[name]`` contributions of each account
    and ``others`` of contributors without one; the accounts' tokens."""
    settings = portal_settings(home)
    store = open_store(settings.storage_uri, settings.s3_endpoint_url)
    catalog = open_catalog(settings.catalog_url, settings.task, store)
    people = AccountStore(settings.catalog_url)
    tokens = {name: people.add(name, f"Lab {name}", public=True)[1] for name in accounts}
    # One real intake, whose report every other contribution is a copy of.
    first = next(iter(accounts))
    landing = Path(settings.landing_uri) / first
    landing.mkdir(parents=True, exist_ok=True)
    new_flowers(per_class=10, seed=1).to_csv(landing / "real.csv", index=False)
    template = take_in(settings, catalog, f"{first}/real.csv").to_dict()
    owners = [(name, i) for name, n in accounts.items() for i in range(n - (name == first))]
    owners += [(f"c{i % 1000}", i) for i in range(others)]
    fill(catalog, template, owners)
    board = pd.DataFrame(
        {
            "contributor": list(accounts),
            "accepted": list(accounts.values()),
            "rows": [30 * n for n in accounts.values()],
            "total_value": np.linspace(0.05, 0.001, len(accounts)),
            "model_versions": "2, 3",
        }
    )
    scoreboard = Path(settings.storage_uri) / layout.SCOREBOARD
    scoreboard.parent.mkdir(parents=True, exist_ok=True)
    board.to_parquet(scoreboard)
    return tokens


def fill(catalog: ContributionCatalog, template: dict, owners: list[tuple[str, int]]) -> None:
    """The catalog's records of contributions of ``owners`` (contributor, number), each a copy
    of ``template`` under its own name and time: what their intakes would have recorded."""
    now, records = time.time(), []
    for n, (who, i) in enumerate(owners):
        path = f"{who}/flowers-{i}.csv"
        cid = contribution_key(path)
        landed = now - 86_400 + n
        report = {
            **template,
            "contribution_id": cid,
            "contributor": who,
            "landing_path": path,
            "sha256": f"{n:064x}",
            "landed_at": landed,
        }
        records.append(
            {
                "contribution_id": cid,
                "task": catalog.task.name,
                "contributor": who,
                "landing_path": path,
                "sha256": report["sha256"],
                "landed_at": landed,
                "looked_up_at": landed + 1,
                "recorded_at": landed + 2,
                "state": DONE,
                "accepted": bool(template["accepted"]),
                "quality_score": template["quality_score"],
                "report": json.dumps(report),
                "updated_at": now,
            }
        )
    with catalog._engine.begin() as db:
        for start in range(0, len(records), 20_000):
            db.execute(catalog.contributions.insert(), records[start : start + 20_000])


# ---- the portal process -------------------------------------------------------------------


class Portal:
    """``mlops portal`` over ``home`` on a free port of 127.0.0.1."""

    def __init__(self, home: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [str(VENV_BIN / "mlops"), "portal", "--host", "127.0.0.1", "--port", str(self.port)],
            env={
                **os.environ,
                "MLOPS_HOME": str(home),
                "MLOPS_PORTAL_UPLOADS_PER_HOUR": "100000",
                **env,
            },
            stdout=subprocess.DEVNULL,
            stderr=open(home / "portal.log", "ab"),  # noqa: SIM115 (the process keeps it)
        )
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{self.url}/sign-in", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"the portal over {home} did not start")
            time.sleep(0.2)

    def memory_mb(self, field: str = "VmRSS") -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
        return int(next(s for s in status if s.startswith(field)).split()[1]) / 1024

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def portals(*specs: tuple[Path, dict[str, str]]) -> Iterator[list[Portal]]:
    started: list[Portal] = []
    try:
        for home, env in specs:
            started.append(Portal(home, **env))
        yield started
    finally:
        for portal in started:
            portal.stop()


def signed_in(url: str, token: str) -> requests.Session:
    """A browser's session: the sign-in form (its CSRF token) posted with the token."""
    session = requests.Session()
    form = session.get(f"{url}/sign-in", timeout=30)
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    answer = session.post(
        f"{url}/sign-in", data={"token": token, "csrf": csrf}, allow_redirects=False, timeout=30
    )
    assert answer.status_code == 303, answer.text[:500]
    return session


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# ---- 1. pages under load ------------------------------------------------------------------


def load_test(portal: Portal, tokens: dict[str, str], ids: dict[str, list[str]], seconds: float):
    """Each account's thread, signed in, fetches its pages in a loop for ``seconds``."""
    timings: dict[str, list[float]] = {"contributions": [], "contribution": [], "scoreboard": []}
    failures: list[str] = []
    lock, start = threading.Lock(), threading.Barrier(len(tokens) + 1)
    peak = {"rss": portal.memory_mb()}
    done = threading.Event()

    def contributor(name: str, token: str) -> None:
        session, rng = signed_in(portal.url, token), random.Random(name)
        start.wait()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for page, path in (
                ("contributions", "/contributions"),
                ("contribution", f"/contributions/{rng.choice(ids[name])}"),
                ("scoreboard", "/scoreboard"),
            ):
                began = time.perf_counter()
                response = session.get(portal.url + path, timeout=60)
                took = time.perf_counter() - began
                with lock:
                    if response.status_code == 200:
                        timings[page].append(took)
                    else:
                        failures.append(f"{page} {response.status_code}")

    def sample() -> None:
        while not done.wait(0.1):
            peak["rss"] = max(peak["rss"], portal.memory_mb())

    threads = [threading.Thread(target=contributor, args=item) for item in tokens.items()]
    sampler = threading.Thread(target=sample)
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    sampler.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    done.set()
    sampler.join()
    return timings, failures, elapsed, peak["rss"]


# ---- 2. upload to verdict -----------------------------------------------------------------


def big_csv(path: Path, size: int) -> None:
    """An iris-like CSV of about ``size`` bytes: flowers drawn from each species' mean and
    covariance, measured to 0.01 cm (what an instrument might write)."""
    iris = pd.read_csv(IRIS_CSV)
    features = [c for c in iris.columns if c != "species"]
    rng, parts = np.random.default_rng(7), []
    n = size // 20 // 3 + 1  # at least 20 bytes a row: more rows than needed
    for species, rows in iris.groupby("species"):
        measured = rows[features].to_numpy()
        drawn = rng.multivariate_normal(measured.mean(0), np.cov(measured.T), size=n)
        parts.append(pd.DataFrame(np.round(np.clip(drawn, 0.1, None), 2), columns=features))
        parts[-1]["species"] = species
    frame = pd.concat(parts, ignore_index=True).sample(frac=1, random_state=7)
    frame.to_csv(path, index=False)
    with path.open("rb+") as out:  # whole rows, to within a row of ``size``
        out.seek(max(0, size - 100))
        out.truncate(out.tell() + out.read(100).rfind(b"\n") + 1)


def upload_to_verdict(
    portal: Portal, token: str, path: Path, name: str, other: str | None = None
) -> dict:
    """POST the file (streamed from disk); when answered 202, poll its status URL. Seconds to
    the answer and to the verdict, and the verdict's words; with ``other`` (another account's
    token), the times of that account's ``GET /api/v1/contributions`` between two polls: what
    others wait while the check runs in the same process."""
    auth = {"Authorization": f"Bearer {token}"}
    params = {"filename": name, "license": "CC0-1.0", "consent": "true"}
    began = time.perf_counter()
    with path.open("rb") as body:
        answer = requests.post(
            f"{portal.url}/api/v1/uploads", params=params, data=body, headers=auth, timeout=600
        )
    answered = time.perf_counter() - began
    status, verdict = answer.status_code, answer.json()
    assert status in (201, 202), verdict
    meanwhile = []
    while status == 202:
        time.sleep(0.05)
        if other is not None:
            asked = time.perf_counter()
            mine = {"Authorization": f"Bearer {other}"}
            page = requests.get(f"{portal.url}/api/v1/contributions", headers=mine, timeout=60)
            assert page.status_code == 200
            meanwhile.append(time.perf_counter() - asked)
        polled = requests.get(portal.url + verdict["status_url"], headers=auth, timeout=60)
        status, verdict = polled.status_code, polled.json()
    assert status in (200, 201), verdict
    return {
        "answer_status": answer.status_code,
        "answered": answered,
        "verdict": time.perf_counter() - began,
        "decision": verdict["decision"],
        "rows_in": verdict["rows_in"],
        "meanwhile": meanwhile,
    }


def with_tail(source: Path, target: Path, n: int) -> Path:
    """``source`` with one more flower of its own: new bytes for every upload (the same bytes
    twice would be answered as a copy, unchecked)."""
    with source.open("rb") as src, target.open("wb") as out:
        while chunk := src.read(8 * MB):
            out.write(chunk)
        out.write(f"5.{n % 10}{n // 10 % 10},3.51,1.41,0.21,setosa\n".encode())
    return target


# ---- main ---------------------------------------------------------------------------------


def ms(values: list[float], q: float) -> str:
    return f"{1000 * percentile(values, q):.1f}"


def ids_of(home: Path, who: str) -> list[str]:
    catalog = ContributionCatalog(portal_settings(home).catalog_url, IRIS)
    return [e.report.contribution_id for e in catalog.entries(contributor=who)]


def pages_under_load(tmp: Path, tokens: dict[str, str], seconds: float) -> None:
    with portals((tmp / "load", {})) as (portal,):
        time.sleep(2)
        idle = portal.memory_mb()
        ids = {name: ids_of(tmp / "load", name) for name in tokens}
        timings, failures, elapsed, peak = load_test(portal, tokens, ids, seconds)
        after = portal.memory_mb()
    every = [t for values in timings.values() for t in values]
    print(
        f"\n## pages, {len(tokens)} contributors for {elapsed:.0f} s: {len(every)} requests "
        f"({len(every) / elapsed:.0f}/s), {len(failures)} failed {sorted(set(failures))[:5]}; "
        f"portal RSS idle {idle:.0f} MB, peak {peak:.0f} MB, after {after:.0f} MB"
    )
    print("| page | requests | p50 ms | p99 ms |\n|---|---:|---:|---:|")
    for name, values in {**timings, "all": every}.items():
        print(f"| {name} | {len(values)} | {ms(values, 50)} | {ms(values, 99)} |", flush=True)


def uploads_to_verdict(tmp: Path, token: str, other: str, rounds: int) -> None:
    """The default portal (a large file answered 202) and one that checks every upload while
    the request waits, in turns."""
    files = tmp / "files"
    files.mkdir()
    small_file, big_file = files / "small.csv", files / "big.csv"
    new_flowers(per_class=60, seed=3, decimals=2).to_csv(small_file, index=False)
    big_csv(big_file, 50 * MB)
    sizes = {"5 KB": small_file, "50 MB": big_file}
    results: dict[tuple[str, str], list[dict]] = {}
    waits = {"MLOPS_PORTAL_CHECK_INLINE_BYTES": str(2 * 1024 * MB)}
    with portals((tmp / "load", {}), (tmp / "load", waits)) as started:
        kinds = dict(zip(["answered at once", "request waits"], started, strict=True))
        time.sleep(5)  # as a portal is, long before its first upload: warmed up
        n = 0
        for attempt in range(rounds):
            for label, source in sizes.items():
                for kind, portal in kinds.items():
                    n += 1
                    path = with_tail(source, files / f"up-{n}.csv", n)
                    name = f"{label.replace(' ', '')}-{n}.csv"
                    result = upload_to_verdict(portal, token, path, name)
                    results.setdefault((label, kind), []).append(result)
                    path.unlink()
            print(f"round {attempt + 1} done", flush=True)
        # Once more, with another account asking for its contributions between two polls.
        path = with_tail(big_file, files / "probe.csv", n + 1)
        probed = upload_to_verdict(kinds["answered at once"], token, path, "probe.csv", other)
        hwm = {kind: round(portal.memory_mb("VmHWM")) for kind, portal in kinds.items()}
    print(
        f"\n## upload to verdict (medians of {rounds}; {small_file.stat().st_size:,} and "
        f"{big_file.stat().st_size:,} bytes)"
    )
    print("| file | portal | status | answered s | verdict s | verdict s, each round | verdict |")
    print("|---|---|---|---:|---:|---|---|")
    for (label, kind), rs in results.items():
        answered = statistics.median(r["answered"] for r in rs)
        verdict = statistics.median(r["verdict"] for r in rs)
        each = ", ".join(f"{r['verdict']:.2f}" for r in rs)
        print(
            f"| {label} | {kind} | {rs[0]['answer_status']} | {answered:.2f} | {verdict:.2f} "
            f"| {each} | {rs[0]['rows_in']:,} rows: {rs[0]['decision'][:50]} |"
        )
    print(f"peak RSS (VmHWM) of the portals, MB: {json.dumps(hwm)}", flush=True)
    meanwhile = probed["meanwhile"]
    print(
        f"another account's GET /api/v1/contributions while a 50 MB file is checked in the "
        f"background ({probed['verdict']:.2f} s to its verdict): {len(meanwhile)} requests, "
        f"p50 {ms(meanwhile, 50)} ms, p99 {ms(meanwhile, 99)} ms, max {ms(meanwhile, 100)} ms"
    )


def pages_by_catalog_size(tmp: Path, tokens: dict[int, str], rounds: int) -> None:
    """One account's pages (10 contributions) in a catalog of 10 and of ``large``, in turns."""
    homes = {n: tmp / f"catalog-{n}" for n in tokens}
    with portals(*((home, {}) for home in homes.values())) as started:
        portal_of = dict(zip(tokens, started, strict=True))
        sessions = {n: signed_in(p.url, tokens[n]) for n, p in portal_of.items()}
        one = {n: ids_of(home, "solo")[3] for n, home in homes.items()}
        paths = {
            "/contributions (HTML)": "/contributions",
            "GET /api/v1/contributions": "/api/v1/contributions",
            "/contributions/{id} (HTML)": "/contributions/{id}",
        }
        pages: dict[tuple[str, int], list[float]] = {}
        for _ in range(rounds):
            for n, portal in portal_of.items():
                for page, path in paths.items():
                    url = portal.url + path.replace("{id}", one[n])
                    began = time.perf_counter()
                    if path.startswith("/api/"):
                        auth = {"Authorization": f"Bearer {tokens[n]}"}
                        response = requests.get(url, headers=auth, timeout=60)
                    else:
                        response = sessions[n].get(url, timeout=60)
                    took = time.perf_counter() - began
                    assert response.status_code == 200, response.text[:300]
                    pages.setdefault((page, n), []).append(took)
    print(f"\n## one contributor's pages by catalog size ({rounds} each, in turns)")
    print("| page | contributions in the catalog | p50 ms | p99 ms |\n|---|---:|---:|---:|")
    for (page, n), values in sorted(pages.items()):
        print(f"| {page} | {n:,} | {ms(values, 50)} | {ms(values, 99)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--page-rounds", type=int, default=100)
    args = parser.parse_args()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as tmp:
        tmp = Path(tmp)
        began = time.perf_counter()
        names = [f"lab{i:02d}" for i in range(ACCOUNTS)]
        tokens = make_home(tmp / "load", dict.fromkeys(names, PER_ACCOUNT), 0)
        solo = {
            n: make_home(tmp / f"catalog-{n}", {"solo": 10}, n - 10)["solo"]
            for n in (10, args.large)
        }
        print(f"homes filled in {time.perf_counter() - began:.0f} s", flush=True)
        pages_under_load(tmp, tokens, args.seconds)
        uploads_to_verdict(tmp, tokens[names[0]], tokens[names[1]], args.rounds)
        pages_by_catalog_size(tmp, solo, args.page_rounds)
    print(f"\n# load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
