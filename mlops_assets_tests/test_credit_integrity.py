"""Credit that copying cannot earn, tried as a contributor who wants credit would: near-copies
in the same batch and later, copies of the public data and of the benchmark, racing to land
first, splitting across names; through the real intake, integration and valuation."""

import itertools
import math
from dataclasses import replace
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mlops_assets.core.common.row_matching import RowMatching, infer_resolution
from mlops_assets.core.data.integration import Contribution, integrate
from mlops_assets.core.data.reference_data import load_reference_data, split_benchmark
from mlops_assets.core.intake.intake import intake_contribution
from mlops_assets.core.intake.report import IntakePolicy
from mlops_assets.core.modeling.evaluation import evaluate
from mlops_assets.core.modeling.training import TrainingSpec, train_model
from mlops_assets.core.modeling.valuation import (
    ValuationPolicy,
    arrival_probabilities,
    value_contributions,
)
from mlops_assets.task import IRIS
from mlops_assets_testing.data import IRIS_CSV, catalog_at, ingested, new_flowers

SPEC = TrainingSpec("logistic_regression", {"C": 1.0, "max_iter": 1000}, seed=42)
POLICY = ValuationPolicy("log_loss", 42, 8, 60.0, 200, 50_000, True)
FEATURES = IRIS.feature_names


@pytest.fixture(scope="module")
def split():
    iris = load_reference_data(IRIS_CSV, IRIS).frame
    return split_benchmark(iris, IRIS, fraction=0.3, seed=42)


def moved(rows: pd.DataFrame, by: float) -> pd.DataFrame:
    return rows.assign(**{f: (rows[f] + by).round(6) for f in FEATURES})


def offer(cid: str, who: str, rows: pd.DataFrame, landed_at: float) -> Contribution:
    rows = rows.reset_index(drop=True).assign(row_index=lambda f: range(len(f)))
    return Contribution(cid, who, rows, landed_at=landed_at)


def intake_of(split, rows: pd.DataFrame, path: Path, who: str = "mallory", **options):
    """The real intake of ``rows``, written by pandas as the CSV ``path`` and sent by ``who``,
    judged against the iris split's train part and benchmark."""
    rows.to_csv(path, index=False)
    return intake_contribution(
        path,
        IRIS,
        reference=split.train,
        benchmark=split.benchmark,
        contribution_id=path.stem,
        contributor=who,
        policy=IntakePolicy(),
        **options,
    )


def values_of(split, contributions, *, known=None, spec=SPEC):
    dataset = integrate(split.train, contributions, split.benchmark, IRIS, seed=42)
    valuation = value_contributions(
        dataset.frame,
        split.benchmark,
        IRIS,
        spec=spec,
        known=known or [],
        policy=POLICY,
        already_given={k: v.to_dict() for k, v in dataset.already_given.items()},
    )
    return {v.contribution_id: v for v in valuation.values}, dataset


def solo(split, rows) -> float:
    values, _ = values_of(split, [offer("solo", "alice", rows, 1.0)])
    return values["solo"].value


def test_resolution_is_declared_by_iris_and_inferred_for_other_tasks():
    assert {f.resolution for f in IRIS.numeric_features} == {0.1}
    assert infer_resolution(pd.Series([14.23, 13.2, 13.16])) == pytest.approx(0.01)
    assert infer_resolution(pd.Series([1065.0, 1050.0, 1185.0])) == 1.0
    assert infer_resolution(pd.Series([0.07871, 0.05667])) == pytest.approx(1e-5)
    wine = pd.read_csv(Path(IRIS_CSV).parent / "wine.csv")
    from mlops_assets.task import load_task

    task = load_task(Path(IRIS_CSV).parent.parent / "tasks" / "wine.toml")
    matching = RowMatching.for_task(task, wine)
    assert matching.resolutions["proline"] == 1.0 and matching.resolutions["alcohol"] == 0.01
    assert set(matching.inferred) == set(task.feature_names)


def test_a_near_copy_in_the_same_batch_earns_nothing_and_the_original_keeps_its_worth(split):
    original = new_flowers(per_class=20, seed=101)
    alone = solo(split, original)
    values, dataset = values_of(
        split,
        [
            offer("alice-1", "alice", original, 10.0),
            offer("mallory-1", "mallory", moved(original, 0.01), 13.0),
        ],
    )
    copy = values["mallory-1"]
    assert copy.status == "nothing_new" and copy.value == 0.0 and copy.rows == 0
    assert copy.value_interval == (0.0, 0.0)
    # Every row was alice's (or, moved next to a benchmark row, removed as one).
    assert copy.rows_already_given + dataset.stats["benchmark_rows_removed"] == 60
    assert f"{copy.rows_already_given} of your 60 rows had already been given by alice" in (
        copy.reason
    )
    assert "mallory-1" not in set(dataset.frame["contribution_id"])  # not trained on twice
    assert values["alice-1"].value >= 0.9 * alone > 0


def test_whoever_lands_first_owns_the_rows_whichever_intake_runs_first(split, tmp_path):
    """The copier lands 3 s after the original, but its intake happens to run first: the
    intakes compare only with what landed before them, and integration gives the rows to the
    first to land."""
    original = new_flowers(per_class=20, seed=102)
    catalog = catalog_at(tmp_path, IRIS)

    def ingest(cid: str, who: str, rows: pd.DataFrame, landed_at: float):
        return ingested(rows, tmp_path, split, catalog, cid=cid, who=who, landed_at=landed_at)

    copy_report = ingest("mallory-1", "mallory", moved(original, 0.02), 103.0)
    original_report = ingest("alice-1", "alice", original, 100.0)
    assert copy_report.accepted and original_report.accepted  # neither saw the other first
    assert original_report.rows_clean == 60

    from mlops_assets.core.catalog.catalog import load_accepted

    contributions = load_accepted(catalog, max_rows=0, seed=1).split()
    assert {c.contribution_id: c.landed_at for c in contributions} == {
        "alice-1": 100.0,
        "mallory-1": 103.0,
    }
    values, _ = values_of(split, contributions)
    assert values["mallory-1"].status == "nothing_new"
    assert values["alice-1"].value >= 0.9 * solo(split, original)

    # A third copy landing later is turned away by its own intake already.
    late = ingest("eve-1", "eve", moved(original, -0.03), 200.0)
    assert not late.accepted and late.rows_clean == 0
    # (a few of its moved rows now sit next to an iris flower instead)
    assert late.rejection_reasons["duplicate_of_contribution"] >= 55


def test_a_near_copy_of_a_contribution_in_the_champion_is_not_paid(split):
    original = new_flowers(per_class=20, seed=103)
    values, _ = values_of(
        split,
        [
            offer("alice-1", "alice", original, 1.0),
            offer("bob-1", "bob", moved(original, 0.05), 5.0),
        ],
        known=["alice-1"],
    )
    assert set(values) == {"bob-1"} and values["bob-1"].status == "nothing_new"


def test_a_copy_shifted_across_a_grid_line_is_the_same_row(split, tmp_path):
    """5.14 and 5.16 round to different 0.1 cm grid points, yet differ by 0.02 cm."""
    rows = pd.DataFrame(
        [[5.14, 3.14, 1.44, 0.24, "setosa"], [5.16, 3.16, 1.46, 0.26, "setosa"]],
        columns=IRIS.columns,
    )
    report = intake_of(split, rows, tmp_path / "grid.csv")
    assert report.rejection_reasons.get("duplicate_in_contribution") == 1


def test_copies_of_the_public_data_and_of_the_benchmark_are_refused(split, tmp_path):
    public = intake_of(
        split, moved(pd.concat([split.train, split.benchmark]), 0.01), tmp_path / "public.csv"
    )
    assert public.rows_clean == 0 and not public.accepted
    # Every benchmark row is refused as one (and a few moved training rows that now sit next
    # to a benchmark row); the rest copy the reference's train part.
    assert public.rejection_reasons["benchmark_row"] >= len(split.benchmark)
    assert public.rows_rejected == 150
    benchmark = intake_of(split, moved(split.benchmark, -0.04), tmp_path / "benchmark.csv")
    assert benchmark.rejection_reasons["benchmark_row"] == len(split.benchmark)
    # Should one reach integration all the same (a private benchmark is not compared at
    # intake), it is never trained on.
    dataset = integrate(
        split.train,
        [offer("m", "mallory", moved(split.benchmark, 0.03), 1.0)],
        split.benchmark,
        IRIS,
        seed=1,
    )
    assert "m" not in set(dataset.frame["contribution_id"])
    assert dataset.stats["benchmark_rows_removed"] >= len(split.benchmark)


def test_genuine_measurements_are_not_taken_for_copies(split, tmp_path):
    """New flowers measured to 0.1 cm are all kept; one that happens to equal an iris flower
    is reported as a duplicate of the reference, not as anything worse."""
    flowers = new_flowers(per_class=20, seed=104)
    coincide = split.train.iloc[[0]]
    report = intake_of(split, pd.concat([flowers, coincide]), tmp_path / "g.csv", who="alice")
    assert report.accepted and report.rows_clean == 60
    assert report.rejection_reasons == {"duplicate_of_reference": 1}


def test_a_harmful_dataset_split_across_names_is_left_out_as_a_whole(split):
    """A quarter of 60 flowers mislabelled, sent whole, then split across three names beside a
    genuine contributor: a part too small to be harmful beyond doubt on its own is left out
    together with the others."""
    harmful = new_flowers(per_class=20, seed=110)
    rng = np.random.default_rng(5)
    labels = harmful["species"].to_numpy(dtype=object)
    for i in rng.choice(len(harmful), size=15, replace=False):
        labels[i] = rng.choice([c for c in IRIS.classes if c != labels[i]])
    harmful = harmful.assign(species=labels)
    genuine = offer("alice-1", "alice", new_flowers(per_class=20, seed=211), 1.0)
    whole, _ = values_of(split, [genuine, offer("m", "mallory", harmful, 2.0)])
    assert whole["m"].status == "excluded"
    parts = np.array_split(harmful.sample(frac=1.0, random_state=1), 3)
    values, _ = values_of(
        split,
        [genuine, *(offer(f"m{i}", f"name{i}", part, 2.0 + i) for i, part in enumerate(parts))],
    )
    assert [values[f"m{i}"].status for i in range(3)] == ["excluded"] * 3
    assert values["alice-1"].status == "included"
    jointly = [v for v in values.values() if "together with 2 other contribution(s)" in v.reason]
    assert jointly and all(v.value_interval[1] >= 0 for v in jointly)  # not on their own
    assert "that also made the model worse" in jointly[0].reason


def test_splitting_good_data_across_names_does_not_pay(split):
    genuine, bystander = new_flowers(per_class=20, seed=107), new_flowers(per_class=20, seed=108)
    whole, _ = values_of(
        split, [offer("g", "alice", genuine, 1.0), offer("b", "bob", bystander, 2.0)]
    )
    parts = np.array_split(genuine.sample(frac=1.0, random_state=2), 3)
    contributions = [offer(f"g{i}", f"alias{i}", p, 1.0 + i / 10) for i, p in enumerate(parts)]
    split_values, _ = values_of(split, [*contributions, offer("b", "bob", bystander, 2.0)])
    total = sum(split_values[f"g{i}"].value for i in range(3))
    assert total <= whole["g"].value * 1.01
    assert split_values["b"].value >= whole["b"].value * 0.99  # the bystander loses nothing


def test_exact_values_are_the_size_weighted_random_order_value(split):
    """Three contributions of 9, 30 and 60 rows: every value is its marginal gain averaged
    over all orders, each order as likely as exponential clocks with the row counts as rates
    make it (the first player chosen in proportion to its rows, and so on)."""
    sizes = {"a": 3, "b": 10, "c": 20}
    contributions = [
        offer(cid, cid, new_flowers(per_class=n, seed=110 + i), float(i))
        for i, (cid, n) in enumerate(sizes.items())
    ]
    values, dataset = values_of(split, contributions)

    def score(members) -> float:
        frame = dataset.frame
        rows = frame[(frame["source"] == "reference") | frame["contribution_id"].isin(members)]
        model = train_model(
            rows, IRIS, estimator=SPEC.estimator, hyperparameters=SPEC.hyperparameters, seed=42
        )
        return -evaluate(model, split.benchmark, IRIS).metrics["log_loss"]

    players = list(sizes)
    rates = dataset.frame["contribution_id"].value_counts()[players].to_dict()
    expected = dict.fromkeys(players, 0.0)
    for order in itertools.permutations(players):
        probability, remaining = 1.0, sum(rates.values())
        for cid in order:
            probability *= rates[cid] / remaining
            remaining -= rates[cid]
        for i, cid in enumerate(order):
            expected[cid] += probability * (score(order[: i + 1]) - score(order[:i]))
    for cid in players:
        assert values[cid].value == pytest.approx(expected[cid], abs=2e-6)
    improvement = score(players) - score(())
    assert sum(v.value for v in values.values()) == pytest.approx(improvement, abs=1e-5)
    equal = arrival_probabilities([5.0, 5.0, 5.0, 5.0])
    assert equal[0, 0b0110] == pytest.approx(
        math.factorial(2) * math.factorial(1) / math.factorial(4)
    )


@pytest.fixture(scope="module")
def two_new(split):
    """Iris's train part with two genuine contributions integrated, and a forest of 3 seeds
    of 20 trees trained on it."""
    contributions = [
        offer("a", "alice", new_flowers(per_class=10, seed=120), 1.0),
        offer("b", "bob", new_flowers(per_class=10, seed=121), 2.0),
    ]
    dataset = integrate(split.train, contributions, split.benchmark, IRIS, seed=42)
    model = train_model(
        dataset.frame,
        IRIS,
        estimator="random_forest",
        hyperparameters={"n_estimators": 20},
        seed=42,
        seeds=3,
    )
    return dataset, model


def test_a_random_forest_is_valued_over_several_training_seeds(split, two_new):
    forest = TrainingSpec(
        "random_forest", {"n_estimators": 20, "max_depth": None}, seed=42, seeds=3
    )
    dataset, model = two_new
    valuation = value_contributions(
        dataset.frame, split.benchmark, IRIS, spec=forest, known=[], policy=POLICY
    )
    assert valuation.training_seeds == [42, 43, 44]
    assert "averaged over 3 training seeds" in valuation.markdown()
    assert all(v.standard_error > 0 for v in valuation.values)  # the seeds' spread
    *forests, prior = model.estimators_
    assert [m.random_state for m in forests] == [42, 43, 44]
    assert prior.strategy == "prior"  # one more tree's vote: the class shares
    assert model.predict_proba(split.benchmark[list(IRIS.feature_names)]).min() > 0
    logistic = TrainingSpec("logistic_regression", {}, seed=42, seeds=3)
    assert logistic.training_seeds == (42,)  # no randomness: one seed is the model
    assert logistic.fingerprint("x" * 64, IRIS) == TrainingSpec(
        "logistic_regression", {}, 42
    ).fingerprint("x" * 64, IRIS)


def test_landing_order_is_the_sensors_clock_not_the_senders(tmp_path):
    """A file taken in a later tick landed later, whatever modification time its sender
    gave it; files of one tick are ordered by it (clamped to the tick's time), then name."""
    from mlops_assets.core.intake.landing import LandingFile, Listing
    from mlops_assets.core.intake.ticks import TickCursor, plan_tick

    def tick(files, now):
        return plan_tick(
            Listing(files=files),
            known=set(),
            cursor=TickCursor(),
            now=now,
            writes_are_atomic=True,
            content_version=lambda f: f.relative_path,
            already_taken=lambda version: False,
        ).intakes

    (original,) = tick([LandingFile("alice/a.csv", "alice", "a.csv", 10, 1000.0)], now=1005.0)
    backdated = LandingFile("mallory/a.csv", "mallory", "a.csv", 10, 1.0)  # touch -d 1970
    (copy,) = tick([backdated], now=1010.0)
    assert original.landed_at == 1005.0 < copy.landed_at
    together = tick(
        [
            LandingFile("b/x.csv", "b", "x.csv", 1, 2000.0),
            LandingFile("a/x.csv", "a", "x.csv", 1, 9e9),  # a time in the future: now
            LandingFile("c/x.csv", "c", "x.csv", 1, 1500.0),
        ],
        now=2500.0,
    )
    assert [i.file.contributor for i in together] == ["c", "b", "a"]
    assert [i.landed_at for i in together] == sorted(i.landed_at for i in together)


def test_a_private_benchmark_is_never_told_nor_trained_on(pipeline, tmp_path, monkeypatch, capsys):
    """The iris task with a benchmark of 45 flowers nobody else holds. A contributor who got
    hold of some of them learns nothing from the intake (no reason names them), yet they never
    reach training; the attestation names the benchmark by its hash alone."""
    from mlops_assets.core.registry.attestations import read_attestation
    from mlops_assets.settings import Settings
    from mlops_assets_testing.processes import REPO, env_for, in_process_mlops

    private = new_flowers(per_class=15, seed=130)
    benchmark_path = tmp_path / "secret" / "benchmark.csv"
    benchmark_path.parent.mkdir()
    private.to_csv(benchmark_path, index=False)
    task_file = tmp_path / "iris_private.toml"
    task_file.write_text(
        (REPO / "tasks" / "iris.toml")
        .read_text()
        .replace(
            'reference = "../data/iris.csv"',
            f'reference = "{REPO}/data/iris.csv"\nbenchmark = "{benchmark_path}"',
        )
    )
    pipeline.settings = Settings.from_env(env_for(pipeline.home, MLOPS_TASK=str(task_file)))
    pipeline.materialize()
    event = pipeline.instance.get_latest_materialization_event(dg.AssetKey("iris_dataset"))
    reference = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    assert reference["benchmark"] == "private file" and reference["benchmark_warning"] == ""
    assert reference["train_rows"] == 150 and reference["benchmark_rows"] == 45

    leaked = pd.concat([private.head(6), new_flowers(per_class=2, seed=131)])
    pipeline.drop("mallory", "flowers.csv", leaked.to_csv(index=False))
    (request,) = pipeline.tick().run_requests
    pipeline.launch(request)
    event = pipeline.instance.get_latest_materialization_event(dg.AssetKey("contributed_data"))
    intake = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    assert intake["rows_clean"] == 12 and intake["rejection_reasons"] == {}
    pipeline.retrain()
    event = pipeline.instance.get_latest_materialization_event(dg.AssetKey("integrated_dataset"))
    integrated = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    assert integrated["benchmark_rows_removed"] == 6
    assert integrated["rows_by_source"][request.partition_key] == 6

    client = pipeline.client()
    name = pipeline.settings.model_name
    newest = max(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
    document = read_attestation(client, newest)
    assert len(document["benchmark_dataset_sha256"]) == 64
    assert str(benchmark_path) not in str(document) and "secret" not in str(document)

    mlops = in_process_mlops(pipeline.home, monkeypatch, capsys)
    code, out, _ = mlops("task", "check", str(task_file))
    assert code == 0 and "benchmark: a private file (found; read at run time)" in out
    assert "warning" not in out
    code, out, _ = mlops("task", "check", str(REPO / "tasks" / "iris.toml"))
    assert "warning: the benchmark is a seeded split of the reference data" in out


def _noisy_contributions(seed: int):
    """The noisy-contributor protocol of ``benchmarks/credit_integrity.py`` on breast cancer:
    a third of the training part as the base, the rest in 8 contributions of which 2 have
    30-50 % of their labels flipped."""
    import sklearn.datasets

    from mlops_assets.task import NUMERIC, Feature, TaskSchema

    bunch = sklearn.datasets.load_breast_cancer()
    names = [f"f{i}" for i in range(bunch.data.shape[1])]
    frame = pd.DataFrame(bunch.data, columns=names)
    frame["label"] = [str(bunch.target_names[t]) for t in bunch.target]
    task = TaskSchema(
        name="breast_cancer",
        features=tuple(Feature(n, kind=NUMERIC) for n in names),
        label="label",
        classes=tuple(str(c) for c in bunch.target_names),
    )
    parts = split_benchmark(frame, task, fraction=0.3, seed=seed)
    rows = parts.train.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    base, rest = rows.iloc[: len(rows) // 3], rows.iloc[len(rows) // 3 :]
    rng = np.random.default_rng(seed)
    noisy = set(rng.choice(8, size=2, replace=False).tolist())
    contributions = []
    for i, piece in enumerate(np.array_split(rest, 8)):
        if i in noisy:
            share, flips = rng.uniform(0.3, 0.5), np.random.default_rng(seed * 8 + i)
            labels = piece["label"].to_numpy(dtype=object).copy()
            for j in flips.choice(len(piece), size=round(share * len(piece)), replace=False):
                labels[j] = flips.choice([c for c in task.classes if c != labels[j]])
            piece = piece.assign(label=labels)
        contributions.append(offer(f"c{i}", f"p{i}", piece, float(i + 1)))
    return task, base, parts.benchmark, contributions, {f"c{i}" for i in noisy}


def test_a_clean_contribution_leaning_below_zero_is_not_left_out_with_noisy_ones():
    """Split 13 of the noisy-contributor protocol: a clean contribution whose value leans
    below zero (not beyond its interval) was left out with the two noisy ones, whose harm
    made their group's sum harmful. Its rows are clearly better than theirs: it is judged on
    its own, and kept; the noisy two are still left out."""
    task, base, benchmark, contributions, noisy = _noisy_contributions(13)
    dataset = integrate(base, contributions, benchmark, task, seed=42)

    def statuses(**changes) -> dict[str, str]:
        valuation = value_contributions(
            dataset.frame, benchmark, task, spec=SPEC, known=[], policy=replace(POLICY, **changes)
        )
        return {v.contribution_id: v.status for v in valuation.values}

    now, before = statuses(), statuses(rules=1)
    assert {cid for cid, s in now.items() if s == "excluded"} == noisy
    wrongly = {cid for cid, s in before.items() if s == "excluded"} - noisy
    assert wrongly and all(now[cid] == "included" for cid in wrongly)  # the first rule's


def test_a_forest_carries_its_training_randomness_in_every_interval(split, two_new):
    """A forest's value is spread over its trees' draws: the jackknife over groups of its
    trees measures it, even for a forest of one seed (whose interval had no seed spread), and
    a valuation recorded with earlier rules replays as it was."""
    from mlops_assets.core.modeling.evaluation import vote_parts
    from mlops_assets.core.modeling.valuation import recompute

    dataset, model = two_new

    def valued(seeds: int, rules: int):
        forest = TrainingSpec("random_forest", {"n_estimators": 20}, seed=42, seeds=seeds)
        policy = replace(POLICY, rules=rules)
        return value_contributions(
            dataset.frame, split.benchmark, IRIS, spec=forest, known=[], policy=policy
        )

    for rules, spread in ((1, False), (2, True)):  # one seed
        assert all((v.standard_error > 0) == spread for v in valued(1, rules).values)
    x = split.benchmark[list(IRIS.feature_names)]
    parts = vote_parts(model, x, split.benchmark[IRIS.label], IRIS)
    assert len(parts) == 60  # every tree of the three forests
    mean = np.mean([p.probabilities for p in parts], axis=0)
    order = [list(model.classes_).index(c) for c in IRIS.classes]
    assert np.allclose(mean, model.predict_proba(x)[:, order])
    replayed = {}
    for rules in (1, 2, 3):  # before rules 3, forests without their prior tree
        old = valued(3, rules)
        recorded = old.to_dict()
        if rules == 1:
            del recorded["policy"]["rules"]  # as recorded before the rules had a number
        assert recompute(recorded, dataset.frame, split.benchmark, IRIS).values == old.values
        replayed[rules] = [v.value for v in old.values]
    assert replayed[2] != replayed[3]  # the prior tree changes what a forest says


def test_the_gate_carries_a_forests_training_randomness_like_the_values(split, two_new):
    """The gate's delta of a forest is widened by the same jackknife over groups of its
    trees as a contribution's value, and its test still says what its interval says."""
    from mlops_assets.core.modeling.scoring import delta_intervals

    _, forest = two_new
    baseline = train_model(
        split.train, IRIS, estimator="logistic_regression", hyperparameters={}, seed=42
    )
    candidate = evaluate(forest, split.benchmark, IRIS)
    assert len(candidate.left_out) == 10  # 60 trees left out in ten groups
    champion = evaluate(baseline, split.benchmark, IRIS)
    assert champion.left_out == []  # one deterministic model: nothing to leave out
    widened = delta_intervals(candidate, champion, seed=7)
    bootstrap_only = delta_intervals(replace(candidate, left_out=[]), champion, seed=7)
    for metric, shown in widened.items():
        plain = bootstrap_only[metric]
        assert shown.delta == plain.delta
        assert shown.high - shown.low >= plain.high - plain.low
        assert (shown.p_value < 0.05) == (shown.low > 0 or shown.high < 0)
    log_loss = widened["log_loss"]
    assert (
        log_loss.high - log_loss.low
        > bootstrap_only["log_loss"].high - bootstrap_only["log_loss"].low
    )


@pytest.mark.parametrize("earlier_count", [20, 3000], ids=["few-earlier-rows", "many"])
def test_the_intake_flags_what_a_row_by_row_reading_of_the_rule_flags(
    split, tmp_path, earlier_count
):
    """The intake's duplicate flags, against the rule computed row by row in Python: within
    the file, rows of one cell (rounded at the resolution, same label) are one row and the
    first stands for them; a first row that matches an earlier first (every feature closer
    than the resolution, same label) repeats it; a first row that matches a reference or
    benchmark row (any label) or an earlier contribution's row (same label) copies it. Rows
    jittered by up to 1.2 resolutions, so pairs straddle grid lines; the earlier rows fewer
    and more than the file's, which are looked up from either side."""
    rng = np.random.default_rng(earlier_count)
    known = pd.concat([split.train, split.benchmark], ignore_index=True)

    def jittered(count: int, spread: float) -> pd.DataFrame:
        rows = known.sample(count, replace=True, random_state=rng.integers(1 << 31))
        noise = rng.uniform(-spread, spread, size=(count, len(FEATURES)))
        return rows.assign(
            **{f: (rows[f] + noise[:, i]).clip(0.1).round(3) for i, f in enumerate(FEATURES)}
        )

    rows = jittered(400, 0.12).reset_index(drop=True)
    earlier = jittered(earlier_count, 0.12).reset_index(drop=True)
    out = tmp_path / "out"
    report = intake_of(
        split, rows, tmp_path / "j.csv", output_dir=out, earlier_rows=lambda firsts: earlier
    )

    matching = RowMatching.for_task(IRIS, known)
    res = np.array([matching.resolutions[f] for f in FEATURES]) * (1 - 1e-6)
    values, labels = rows[FEATURES].to_numpy(), rows[IRIS.label].to_numpy()
    # SQL's round(): halves away from zero (numpy's rounds them to even).
    steps = values / np.array([matching.resolutions[f] for f in FEATURES])
    cells = np.floor(steps + 0.5).astype(int)

    def matches(row: np.ndarray, others: np.ndarray) -> np.ndarray:
        return np.all(np.abs(others - row) < res, axis=1)

    expected: dict[int, set[str]] = {}
    first_of: dict[tuple, int] = {}
    firsts: list[int] = []
    for i in range(len(rows)):
        cell = (*cells[i], labels[i])
        if cell in first_of:
            expected[i] = {"duplicate_in_contribution"}
            continue
        first_of[cell] = i
        reasons = set()
        same = [j for j in firsts if labels[j] == labels[i]]
        if same and matches(values[i], values[same]).any():
            reasons.add("duplicate_in_contribution")
        if matches(values[i], split.train[FEATURES].to_numpy()).any():
            reasons.add("duplicate_of_reference")
        if matches(values[i], split.benchmark[FEATURES].to_numpy()).any():
            reasons.add("benchmark_row")
        mine = earlier[earlier[IRIS.label] == labels[i]][FEATURES].to_numpy()
        if len(mine) and matches(values[i], mine).any():
            reasons.add("duplicate_of_contribution")
        firsts.append(i)
        if reasons:
            expected[i] = reasons

    rejected = pd.read_parquet(out / "rejected.parquet")
    found = {
        int(i): set(reason.split(";"))
        for i, reason in zip(rejected["row_index"], rejected["rejection_reasons"], strict=True)
    }
    assert found == expected
    assert report.rows_rejected == len(expected) and report.rows_in == len(rows)
    assert len({r for reasons in expected.values() for r in reasons}) == 4  # all four occur
