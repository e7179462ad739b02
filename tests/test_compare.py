"""`al-loop compare`: AULC, labels-to-target, grouping, paired tests, ceiling cache, HTML, end to end."""

from __future__ import annotations

import csv
import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
import typer
from scipy.stats import wilcoxon
from typer.testing import CliRunner

from al_loop import api
from al_loop import compare as compare_mod
from al_loop.cli.compare import add_compare_command
from al_loop.compare import compare, labels_to_target, paired_wilcoxon, per_seed_aulc
from al_loop.config import RunConfig
from al_loop.errors import ConfigError, DataError
from al_loop.reports import GroupCurve, RunCurve, normalised_aulc
from al_loop.schema import MetricRow
from al_loop.store import Store

IMG = '<img src="data:image/png;base64,'


# -- helpers ---------------------------------------------------------------------------------
def write_store(path: Path, runs: list[tuple[RunConfig, list[tuple[int, float]]]]) -> Path:
    """A store whose runs have the given (n_labels, accuracy) curves (no training involved)."""
    store = Store(path)
    try:
        for cfg, curve in runs:
            run_id = store.create_run(cfg)
            with store.write() as s:
                for i, (n, acc) in enumerate(curve):
                    s.add(MetricRow(run_id=run_id, round=i + 1, n_labels=n, accuracy=acc, macro_f1=acc / 2,
                                    train_seconds=0.5, select_seconds=0.25 if i < len(curve) - 1 else 0.0))
    finally:
        store.close()
    return path


def cfg(strategy: str, seed: int, batch: int = 10, **kw: object) -> RunConfig:
    return RunConfig(dataset="digits", strategy=strategy, seed=seed, batch=batch, rounds=2, init=20, **kw)  # type: ignore[arg-type]


def curve(batch: int, vals: list[float]) -> list[tuple[int, float]]:
    return [(20 + i * batch, v) for i, v in enumerate(vals)]


def run_curve(seed: int, xs: list[float], vals: list[float], strategy: str = "entropy") -> RunCurve:
    c = cfg(strategy, seed)
    return RunCurve(run_id=seed, db="x", strategy=strategy, seed=seed, group=c.group_key(),
                    n_labels=np.asarray(xs, dtype=float), values=np.asarray(vals, dtype=float),
                    select_seconds=np.zeros(len(xs)), train_seconds=np.zeros(len(xs)), config=c)


@pytest.fixture()
def two_families(tmp_path: Path) -> list[Path]:
    """Entropy at batch 10 and 20, random at batch 10 only, split over two stores."""
    a = write_store(tmp_path / "a.sqlite", [
        (cfg("entropy", 0, 10), curve(10, [0.5, 0.6, 0.6])),
        (cfg("entropy", 1, 10), curve(10, [0.5, 0.6, 0.7])),
        (cfg("entropy", 0, 20), curve(20, [0.1, 0.1, 0.1])),
        (cfg("entropy", 1, 20), curve(20, [0.1, 0.2, 0.2])),
    ])
    b = write_store(tmp_path / "b.sqlite", [
        (cfg("random", 0, 10), curve(10, [0.5, 0.5, 0.5])),
        (cfg("random", 1, 10), curve(10, [0.4, 0.5, 0.6])),
    ])
    return [a, b]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two real stores on digits: random in one, entropy in the other, seeds 0-2."""
    root = tmp_path_factory.mktemp("sim")
    a, b = root / "random.sqlite", root / "entropy.sqlite"
    common = dict(dataset="digits", seeds=[0, 1, 2], rounds=3, batch=10, init=20)
    api.simulate(str(a), strategies=["random"], **common)  # type: ignore[arg-type]
    api.simulate(str(b), strategies=["entropy"], **common)  # type: ignore[arg-type]
    return [a, b]


# -- pure functions ----------------------------------------------------------------------------
def test_labels_to_target_hand_made() -> None:
    xs, mean = [20, 30, 40, 50], [0.5, 0.8, 0.9, 0.95]
    assert labels_to_target(xs, mean, 0.9) == 40  # reaching exactly counts
    assert labels_to_target(xs, mean, 0.85) == 40
    assert labels_to_target(xs, mean, 0.8) == 30
    assert labels_to_target(xs, mean, 0.1) == 20
    assert labels_to_target(xs, mean, 0.951) is None
    assert labels_to_target(xs, [0.5, np.nan, 0.7, 0.9], 0.6) == 40  # NaN never reaches
    assert labels_to_target(xs, [0.9, 0.1, 0.1, 0.1], 0.8) == 20  # first, not last


def test_per_seed_aulc_hand_made_and_duplicates_averaged() -> None:
    g = GroupCurve(label="entropy", runs=[run_curve(0, [10, 20, 40], [0.2, 0.6, 0.8]),
                                          run_curve(1, [10, 20, 40], [0.5, 0.5, 0.5]),
                                          run_curve(1, [10, 20, 40], [0.3, 0.3, 0.3])])
    aulc = per_seed_aulc(g)
    assert aulc == pytest.approx({0: 18 / 30, 1: 0.4})
    assert normalised_aulc([10, 20, 40], [0.2, 0.6, 0.8]) == pytest.approx(aulc[0])


def test_paired_wilcoxon_equals_scipy_and_counts_seeds_that_beat() -> None:
    a = {0: 0.71, 1: 0.74, 2: 0.69, 3: 0.80, 4: 0.68, 5: 0.77, 9: 0.99}  # seed 9 has no partner; 4 is a tie
    b = {0: 0.70, 1: 0.70, 2: 0.72, 3: 0.71, 4: 0.68, 5: 0.70, 7: 0.10}
    res = paired_wilcoxon(a, b)
    seeds = [0, 1, 2, 3, 4, 5]
    ref = wilcoxon([a[s] for s in seeds], [b[s] for s in seeds])
    assert res.p_value == pytest.approx(float(ref.pvalue))
    assert res.statistic == pytest.approx(float(ref.statistic))
    assert res.n_pairs == 6
    assert res.n_better == 4  # seeds 0, 1, 3, 5 (a tie does not beat)
    assert res.reason is None


def test_paired_wilcoxon_says_why_there_is_no_p_value() -> None:
    one = paired_wilcoxon({0: 0.9, 1: 0.8}, {0: 0.5})
    assert one.p_value is None and one.n_pairs == 1 and one.n_better == 1
    assert "need 2" in (one.reason or "") and one.describe().startswith("n/a (")
    zero = paired_wilcoxon({0: 0.5, 1: 0.6}, {0: 0.5, 1: 0.6})
    assert zero.p_value is None and zero.n_better == 0 and "zero" in (zero.reason or "")


# -- grouping and pairing -----------------------------------------------------------------------
def test_grouping_never_mixes_configs_and_pairs_within_family(two_families: list[Path], tmp_path: Path) -> None:
    res = compare(two_families, tmp_path / "out", ceiling=False)
    rows = {(r.family, r.group): r for r in res.rows}
    # a group is labelled within its family: the family's title says the batch, the legend says the strategy
    assert set(rows) == {("digits / logreg / batch=10", "entropy"), ("digits / logreg / batch=20", "entropy"),
                         ("digits / logreg / batch=10", "random")}
    b10, b20 = rows[("digits / logreg / batch=10", "entropy")], rows[("digits / logreg / batch=20", "entropy")]
    rnd = rows[("digits / logreg / batch=10", "random")]
    assert (b10.seeds, b20.seeds) == (2, 2)
    assert b10.final_mean == pytest.approx(0.65) and b20.final_mean == pytest.approx(0.15)
    assert b10.labels == 40 and b20.labels == 60
    # AULC of batch 10 = mean of per-seed trapezoids (0.575, 0.6); batch 20 = (0.1, 0.175)
    assert b10.aulc_mean == pytest.approx(0.5875) and b20.aulc_mean == pytest.approx(0.1375)
    # two families -> two figures; the batch-20 family has no random runs -> no baseline
    assert len(res.families) == 2 and len(res.pngs) == 2
    assert b10.family != b20.family and rnd.family == b10.family
    assert b20.baseline == "no baseline" and b20.test is None
    assert rnd.baseline == "(baseline)" and rnd.test is None
    assert b10.baseline == "random" and b10.test is not None
    assert b10.test.n_pairs == 2 and b10.test.n_better == 2  # 0.575 > 0.5, 0.6 > 0.5
    assert b10.select_seconds == pytest.approx(0.25)  # the final evaluation selects nothing
    assert b10.train_seconds == pytest.approx(0.5)
    assert "batch" in " ".join(res.group_lines())


def test_missing_baseline_is_a_warning_not_an_error(two_families: list[Path], tmp_path: Path) -> None:
    seen: list[str] = []
    res = compare(two_families, tmp_path / "out", baseline="nope", ceiling=False, warn=seen.append)
    assert any("baseline strategy 'nope'" in w and "--baseline" in w for w in res.warnings)
    assert seen == res.warnings
    assert all(r.baseline == "no baseline" and r.test is None for r in res.rows)
    assert "no baseline" in res.summary_md.read_text()


# -- outputs ------------------------------------------------------------------------------------
def test_html_report_embeds_every_png_and_references_nothing_outside(two_families: list[Path],
                                                                     tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = compare(two_families, out, ceiling=False)
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == len(res.pngs) == 2
    page = res.html.read_text(encoding="utf-8")
    assert res.html == out / "report.html"
    assert page.count(IMG) == len(pngs)
    assert re.search(r"https?://", page) is None
    assert "<script" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    for r in res.rows:
        assert html.escape(r.group) in page and html.escape(r.family) in page
    assert "no baseline" in page


def test_summary_files_hold_one_row_per_group(two_families: list[Path], tmp_path: Path) -> None:
    res = compare(two_families, tmp_path / "out", ceiling=False)
    with open(res.summary_csv, newline="") as fh:
        records = list(csv.DictReader(fh))
    assert sorted((r["family"], r["group"]) for r in records) == [
        ("digits / logreg / batch=10", "entropy"), ("digits / logreg / batch=10", "random"),
        ("digits / logreg / batch=20", "entropy")]
    assert all(r["labels_to_90"] == "n/a (no ceiling)" for r in records)
    md = res.summary_md.read_text().splitlines()
    assert sum(line.startswith("| ") for line in md) == 2 + 3  # header, rule, three groups


# -- errors -------------------------------------------------------------------------------------
def test_unknown_metric_is_a_one_line_error(two_families: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="macro_f1") as exc:
        compare(two_families, tmp_path / "out", metric="f2", ceiling=False)
    assert "\n" not in str(exc.value)


def test_no_runs_with_metrics_is_a_one_line_error(tmp_path: Path) -> None:
    db = tmp_path / "empty.sqlite"
    store = Store(db)
    store.create_run(cfg("random", 0))
    store.close()
    with pytest.raises(DataError, match="has metrics yet.*al-loop simulate") as exc:
        compare([db], tmp_path / "out", ceiling=False)
    assert "\n" not in str(exc.value)


def test_out_dir_not_writable_is_a_one_line_error(two_families: list[Path], tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="--out") as exc:
        compare(two_families, blocker / "out", ceiling=False)
    assert "\n" not in str(exc.value)


# -- ceiling ------------------------------------------------------------------------------------
def test_ceiling_is_cached_and_not_retrained(simulated: list[Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache" / "ceilings.json"
    calls: list[int] = []
    real = compare_mod.train_ceiling

    def counting(config: RunConfig, seed: int) -> dict[str, float]:
        calls.append(seed)
        return real(config, seed)

    monkeypatch.setattr(compare_mod, "train_ceiling", counting)
    first = compare(simulated, tmp_path / "o1", cache_path=cache)
    assert first.ceilings_trained == 3 and sorted(calls) == [0, 1, 2]
    entries = json.loads(cache.read_text())
    assert len(entries) == 3 and all({"accuracy", "macro_f1"} <= set(v) for v in entries.values())
    ceiling = first.families[0].ceiling
    assert ceiling is not None and 0.9 < ceiling <= 1.0

    def must_not_train(config: RunConfig, seed: int) -> dict[str, float]:
        raise AssertionError("the ceiling should come from the cache")

    monkeypatch.setattr(compare_mod, "train_ceiling", must_not_train)
    before = cache.read_text()
    second = compare(simulated, tmp_path / "o2", cache_path=cache)
    assert second.ceilings_trained == 0 and second.families[0].ceiling == ceiling
    other = compare(simulated, tmp_path / "o3", metric="macro_f1", cache_path=cache)  # both metrics cached
    assert other.ceilings_trained == 0
    assert cache.read_text() == before
    # another al-loop version may train another model: its ceilings are not reused
    import al_loop

    monkeypatch.setattr(al_loop, "__version__", al_loop.__version__ + ".post1")
    monkeypatch.setattr(compare_mod, "train_ceiling", counting)
    calls.clear()
    third = compare(simulated, tmp_path / "o4", cache_path=cache)
    assert third.ceilings_trained == 3 and sorted(calls) == [0, 1, 2]
    assert len(json.loads(cache.read_text())) == 6


# -- end to end -----------------------------------------------------------------------------------
def _store_aulcs(db: Path) -> dict[int, float]:
    store = Store(db, readonly=True)
    try:
        out = {}
        for run in store.runs():
            assert run.id is not None
            rows = store.metrics(run.id)
            out[run.seed] = normalised_aulc([m.n_labels for m in rows], [m.accuracy for m in rows])
        return out
    finally:
        store.close()


def test_end_to_end_across_two_stores(simulated: list[Path], tmp_path: Path) -> None:
    a, b = simulated
    out = tmp_path / "report"
    res = compare([a, b, a], out, cache_path=tmp_path / "ceilings.json")  # a store named twice is read once
    rows = {r.group: r for r in res.rows}
    assert set(rows) == {"random", "entropy"} and len(res.families) == 1
    assert all(r.seeds == 3 and r.labels == 50 for r in rows.values())
    assert all(len(g.runs) == 3 for g in res.families[0].groups)
    ent = rows["entropy"]
    assert ent.baseline == "random" and ent.test is not None
    ra, ea = _store_aulcs(a), _store_aulcs(b)
    ref = wilcoxon([ea[s] for s in (0, 1, 2)], [ra[s] for s in (0, 1, 2)])
    assert ent.test.p_value == pytest.approx(float(ref.pvalue))
    assert ent.test.n_better == sum(ea[s] > ra[s] for s in (0, 1, 2))
    assert ent.aulc_mean == pytest.approx(np.mean(list(ea.values())))
    ceiling = res.families[0].ceiling
    assert ceiling is not None and ent.ceiling == ceiling
    g = next(g for g in res.families[0].groups if g.label == "entropy")
    xs, vals = g.aligned()
    for f in compare_mod.TARGET_FRACTIONS:  # labels-to-target agree with the mean curve
        assert ent.labels_to[f] == labels_to_target(xs, vals.mean(axis=0), f * ceiling)
    assert {p.name for p in out.iterdir()} >= {"summary.md", "summary.csv", "report.html"}
    assert res.html.read_text().count(IMG) == len(list(out.glob("*.png"))) == 1


def test_cli_command_registered_on_an_app(simulated: list[Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test app."""

    add_compare_command(app)
    monkeypatch.setenv("AL_LOOP_CACHE_DIR", str(tmp_path / "cachedir"))
    a, b = simulated
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["compare", "--db", str(a), "--db", str(b), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "random: 3 run(s)" in result.stdout and "entropy: 3 run(s)" in result.stdout
    assert (tmp_path / "cachedir" / "ceilings.json").exists()  # default cache path honours the variable
    assert (out / "report.html").exists()

    result = CliRunner().invoke(app, ["compare", "--db", str(a), "--out", str(tmp_path / "c2"), "--no-ceiling",
                                      "--baseline", "margin"])
    assert result.exit_code == 0, result.output
    assert "baseline strategy 'margin'" in result.output
    with open(tmp_path / "c2" / "summary.csv", newline="") as fh:
        assert [r["ceiling"] for r in csv.DictReader(fh)] == [""]

    result = CliRunner().invoke(app, ["compare", "--db", str(a), "--out", str(out), "--metric", "f2"])
    assert isinstance(result.exception, ConfigError)


# -- families across datasets: names, settings, readable figures, order -----------------------------
def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def file_cfg(tmp_path: Path, name: str, strategy: str, seed: int, **kw: object) -> RunConfig:
    params = {"features": str(tmp_path / "data" / f"{name}.npy"), "labels": str(tmp_path / "data" / f"{name}-y.npy"),
              "label_column": "label"}
    return RunConfig(dataset="file", strategy=strategy, seed=seed, rounds=2, batch=10, init=20,
                     dataset_params=params, **kw)  # type: ignore[arg-type]


STRATS = ("random", "entropy", "margin", "kcenter", "badge", "cal", "typiclust", "probcover", "least_confidence",
          "fass", "switch")


@pytest.fixture()
def three_datasets(tmp_path: Path) -> Path:
    """digits, customers.npy and tickets.npy: three families, 11 strategies x 3 seeds in the customers one."""
    runs: list[tuple[RunConfig, list[tuple[int, float]]]] = []
    for i, strat in enumerate(STRATS):
        for seed in range(3):
            runs.append((file_cfg(tmp_path, "customers", strat, seed),
                         curve(10, [0.3 + 0.01 * i, 0.4 + 0.02 * i + 0.001 * seed, 0.5 + 0.02 * i])))
    for seed in range(3):
        runs.append((file_cfg(tmp_path, "tickets", "random", seed, learner="mlp"), curve(10, [0.6, 0.7, 0.8])))
        runs.append((file_cfg(tmp_path, "tickets", "margin", seed, learner="mlp"), curve(10, [0.6, 0.8, 0.9])))
        runs.append((cfg("random", seed), curve(10, [0.5, 0.6, 0.7])))
        runs.append((cfg("entropy", seed), curve(10, [0.5, 0.55, 0.6])))
    return write_store(tmp_path / "mixed.sqlite", runs)


def test_families_of_different_datasets_have_short_names_and_short_legends(three_datasets: Path,
                                                                           tmp_path: Path) -> None:
    res = compare([three_datasets], tmp_path / "out", ceiling=False)
    titles = [f.title for f in res.families]
    assert titles == ["customers / logreg", "digits / logreg", "tickets / mlp"]  # the file's name, not "file"
    for fam in res.families:
        assert all("{" not in g.label and "dataset_params" not in g.label for g in fam.groups)
    assert {g.label for g in res.families[0].groups} == set(STRATS)
    assert compare_mod.data_name(res.families[2].config) == "tickets"
    assert compare_mod.data_name(cfg("random", 0)) == "digits"


def test_one_readable_figure_per_family_however_long_the_legend(three_datasets: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = compare([three_datasets], out, ceiling=False)
    assert len(res.pngs) == len(res.families) == 3 and len(set(res.pngs)) == 3
    crowded = res.families[0]
    for g in crowded.groups:  # long labels, as a parameter sweep gives them
        g.label += " [prune=true, space=embedding, k=10, metric=cosine]"
    fig = compare_mod.curves_figure(crowded.groups, "accuracy", crowded.title)
    axes_px = fig.axes[0].get_window_extent().width
    legend = fig.axes[0].get_legend().get_window_extent()
    assert axes_px >= 600  # never squeezed: the axes keep their width, the legend widens the image
    assert legend.x0 >= fig.axes[0].get_window_extent().x1  # outside: it covers no line
    path = compare_mod.save_figure(crowded.groups, out / "long.png", "accuracy", crowded.title)
    width, _ = _png_size(path)
    assert width >= axes_px + legend.width
    for png in res.pngs:
        assert _png_size(png)[0] >= 600


def test_report_lists_the_run_settings_of_each_family(three_datasets: Path, tmp_path: Path) -> None:
    res = compare([three_datasets], tmp_path / "out", ceiling=False)
    page = res.html.read_text(encoding="utf-8")
    md = res.summary_md.read_text(encoding="utf-8")
    for fam in res.families:
        settings = dict(fam.settings)
        assert set(settings) >= {"data", "learner", "rounds", "batch", "init", "init strategy", "seeds", "test split"}
        assert settings["rounds"] == "2" and settings["batch"] == "10" and settings["init"] == "20"
        assert settings["seeds"] == "3: 0, 1, 2" and settings["init strategy"] == "random"
        assert settings["test split"] == "25% held out, stratified (split seed 0)"
        for key, value in fam.settings:
            assert f"<tr><th>{html.escape(key)}</th><td>{html.escape(value)}</td></tr>" in page
            assert f"- {key}: {value}" in md
    assert dict(res.families[2].settings)["learner"] == "mlp"
    assert dict(res.families[0].settings)["data"].startswith("customers (file: features=")


def test_tables_are_sorted_by_aulc_within_each_family(three_datasets: Path, tmp_path: Path) -> None:
    res = compare([three_datasets], tmp_path / "out", ceiling=False)
    families = [r.family for r in res.rows]
    assert families == sorted(families)  # family by family
    for fam in res.families:
        aulcs = [r.aulc_mean for r in res.rows if r.family == fam.title]
        assert aulcs == sorted(aulcs, reverse=True) and len(set(aulcs)) > 1
    md_groups = [line.split(" | ")[1] for line in res.summary_md.read_text().splitlines()[4:]
                 if line.startswith("| customers")]
    assert md_groups == list(reversed(STRATS))  # the later strategies of the fixture climb faster
    with open(res.summary_csv, newline="") as fh:
        assert [r["group"] for r in csv.DictReader(fh) if r["family"] == "customers / logreg"] == md_groups


# -- Wilcoxon with few seeds ----------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 4, 5, 6, 7, 8])
def test_min_p_formula_equals_scipy_on_all_positive_differences(n: int) -> None:
    diffs = np.arange(1, n + 1) * 0.01  # every difference of one sign: the most extreme statistic
    assert compare_mod.min_wilcoxon_p(n) == pytest.approx(float(wilcoxon(diffs).pvalue))
    assert compare_mod.min_wilcoxon_p(n) == pytest.approx(2 / 2 ** n)


def test_seeds_needed_for_p_below_005_is_six() -> None:
    assert compare_mod.seeds_needed(0.05) == 6
    assert compare_mod.min_wilcoxon_p(5) >= 0.05 > compare_mod.min_wilcoxon_p(6)
    assert compare_mod.seeds_needed(0.01) == 8


def _seed_stores(tmp_path: Path, n_seeds: int) -> Path:
    runs = []
    for seed in range(n_seeds):
        runs.append((cfg("random", seed), curve(10, [0.5, 0.55, 0.6])))
        runs.append((cfg("margin", seed), curve(10, [0.5, 0.7 + 0.01 * seed, 0.8])))
    return write_store(tmp_path / f"seeds{n_seeds}.sqlite", runs)


def test_three_seeds_show_the_smallest_p_and_recommend_six(tmp_path: Path) -> None:
    res = compare([_seed_stores(tmp_path, 3)], tmp_path / "out", ceiling=False)
    margin = next(r for r in res.rows if r.group == "margin")
    assert margin.test is not None and margin.test.p_value == pytest.approx(0.25)
    assert margin.test.min_p == pytest.approx(0.25)
    cell = "0.25 (min 0.25 with 3 seeds)"
    assert compare_mod.format_row(margin)[compare_mod.TABLE_HEADERS.index("p (Wilcoxon, AULC)")] == cell
    md, page = res.summary_md.read_text(), res.html.read_text(encoding="utf-8")
    assert cell in md and html.escape(cell) in page
    with open(res.summary_csv, newline="") as fh:
        rec = next(r for r in csv.DictReader(fh) if r["group"] == "margin")
    assert float(rec["p_value"]) == pytest.approx(0.25) and float(rec["p_min"]) == pytest.approx(0.25)
    assert len(res.notes) == 1
    note = res.notes[0]
    assert "3 paired seeds" in note and "0.25" in note and "--seeds 6" in note and "\n" not in note
    assert f"Note: {note}" in md and html.escape(note) in page


def test_six_seeds_can_reach_005_and_need_no_note(tmp_path: Path) -> None:
    res = compare([_seed_stores(tmp_path, 6)], tmp_path / "out", ceiling=False)
    margin = next(r for r in res.rows if r.group == "margin")
    assert margin.test is not None and margin.test.p_value == pytest.approx(2 / 64)
    assert margin.test.p_text() == "0.0312 (min 0.0312 with 6 seeds)"
    assert res.notes == [] and "Note:" not in res.summary_md.read_text()


# -- one palette for compare and curves ---------------------------------------------------------------
@pytest.mark.parametrize("n", [3, 11, 20, 25, 70])
def test_palette_gives_distinct_styles(n: int) -> None:
    styles = compare_mod.palette(n)
    assert len(styles) == n
    assert len({(tuple(s["color"]), s["linestyle"]) for s in styles}) == n
    if n <= 60:
        assert len({tuple(s["color"]) for s in styles}) == n  # colour alone tells them apart


def test_curves_and_compare_draw_with_the_same_palette(three_datasets: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from al_loop import reports

    calls: list[int] = []
    real = compare_mod.palette

    def spy(n: int) -> list[dict[str, object]]:
        calls.append(n)
        return real(n)

    monkeypatch.setattr(compare_mod, "palette", spy)
    groups = [g for g in reports.group_curves(reports.load_curves([str(three_datasets)]))
              if g.runs[0].config.dataset == "file" and g.runs[0].config.learner == "logreg"]
    assert len(groups) == 11
    png = reports.plot_curves(groups, tmp_path / "curves.png")
    assert calls == [11] and _png_size(png)[0] >= 600
    fig = compare_mod.curves_figure(groups, "accuracy", "t")
    colours = [tuple(line.get_color()) for line in fig.axes[0].get_lines()]
    assert colours == [tuple(s["color"]) for s in real(11)] and len(set(colours)) == 11
    ax_box = fig.axes[0].get_window_extent()
    assert fig.axes[0].get_legend().get_window_extent().x0 >= ax_box.x1  # the legend is outside
    calls.clear()
    compare([three_datasets], tmp_path / "out", ceiling=False)
    assert sorted(calls) == [2, 2, 11]
