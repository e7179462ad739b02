"""What the read-and-report commands show: status, resume's progress and summary, --metric, strategies, compare."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from al_loop import api, reports, run_status
from al_loop.config import RunConfig
from al_loop.registry import STRATEGIES
from al_loop.schema import SCHEMA_VERSION
from al_loop.store import Store
from al_loop.strategy_help import first_sentence, parameter_docs, plain_text, strategy_help
from al_loop.types import RunStatus
from tests.test_cli import SMALL, one_line_error, run_cli
from tests.test_compare import cfg, curve, write_store

ROOT = Path(__file__).resolve().parents[1]


def table_rows(out: str) -> dict[str, list[str]]:
    """Rows of a rich table printed to ``out``, keyed by their first cell."""
    rows = {}
    for line in out.splitlines():
        for bar in ("│", "┃"):  # body rows, header row
            if line.startswith(bar):
                cells = [c.strip() for c in line.strip(bar).split(bar)]
                rows[cells[0]] = cells
    return rows


def config(strategy: str, seed: int = 0, **kw: object) -> RunConfig:
    return RunConfig(dataset="digits", strategy=strategy, seed=seed, rounds=2, batch=5, init=10, **kw)  # type: ignore[arg-type]


# -- status ---------------------------------------------------------------------------------------------
@pytest.fixture()
def ended_runs(tmp_path: Path, capsys, monkeypatch) -> Path:
    """Run 1 finished by simulate; 2 running (round 0); 3 failed, 4 abandoned, 5 exhausted, with notes."""
    db = tmp_path / "s.sqlite"
    code, _, _ = run_cli(["simulate", "--strategy", "entropy", "--db", str(db), *SMALL], capsys, monkeypatch)
    assert code == 0
    store = Store(db)
    try:
        store.create_run(config("margin"))
        ended = [(RunStatus.FAILED, "learner cnn needs square images"), (RunStatus.ABANDONED, "given up by user"),
                 (RunStatus.EXHAUSTED, "the unlabeled pool ran out")]
        for status, note in ended:
            run_id = store.create_run(config("random"))
            store.record_final_metric(run_id, None, status, note=note)
    finally:
        store.close()
    return db


def test_status_shows_finished_not_the_training_state_of_the_last_round(ended_runs: Path, capsys,
                                                                        monkeypatch) -> None:
    code, out, _ = run_cli(["status", "--db", str(ended_runs)], capsys, monkeypatch)
    assert code == 0
    rows = table_rows(out)
    header = rows["run"]
    state, rnd, note = header.index("state"), header.index("round"), header.index("note")
    assert rows["1"][state] == "finished" and rows["1"][rnd] == "2/2"  # not TRAINING at round 3
    assert rows["2"][state] == "TRAINING" and rows["2"][rnd] == "0/2"  # a running run shows its round state
    assert (rows["3"][state], rows["3"][note]) == ("failed", "learner cnn needs square images")
    assert (rows["4"][state], rows["4"][note]) == ("abandoned", "given up by user")
    assert (rows["5"][state], rows["5"][note]) == ("exhausted", "the unlabeled pool ran out")
    assert "TRAINING" not in " ".join(" ".join(rows[r]) for r in ("1", "3", "4", "5"))
    assert rows["1"][header.index("labels")] == "20"


def test_status_fast_path_reads_what_the_store_reads(ended_runs: Path) -> None:
    fast = run_status._fast_lines(ended_runs)
    assert fast is not None and fast == run_status._store_lines(ended_runs)
    assert [ln.status for ln in fast] == ["finished", "running", "failed", "abandoned", "exhausted"]
    assert run_status.EXPECTED_SCHEMA_VERSION == SCHEMA_VERSION  # else status silently takes the slow path


def test_status_imports_neither_numpy_nor_sqlalchemy(ended_runs: Path) -> None:
    code = ("import json, sys; from al_loop.cli import main; sys.argv = ['al-loop', 'status', '--db', sys.argv[1]]\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "print(json.dumps(sorted(m for m in ('numpy', 'sqlalchemy', 'sqlmodel', 'sklearn', 'scipy', "
            "'matplotlib', 'torch') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code, str(ended_runs)], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    assert "finished" in out.stdout
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_status_of_a_missing_store_is_an_error_and_creates_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    db = tmp_path / "typo.sqlite"
    code, _, err = run_cli(["status", "--db", str(db)], capsys, monkeypatch)
    assert code == 2 and "does not exist" in one_line_error(err) and str(db) in err
    assert not db.exists()


def test_status_refuses_another_applications_database_unchanged(tmp_path: Path, capsys, monkeypatch) -> None:
    db = tmp_path / "other.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
    con.commit()
    con.close()
    before = db.read_bytes()
    code, _, err = run_cli(["status", "--db", str(db)], capsys, monkeypatch)
    assert code == 2 and "another application" in one_line_error(err)
    assert db.read_bytes() == before


def test_status_of_an_older_schema_names_the_upgrade_command(ended_runs: Path, capsys, monkeypatch) -> None:
    con = sqlite3.connect(ended_runs)
    con.execute("UPDATE al_meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION - 1),))
    con.commit()
    con.close()
    before = ended_runs.read_bytes()
    code, _, err = run_cli(["status", "--db", str(ended_runs)], capsys, monkeypatch)
    assert code == 2 and "al-loop db upgrade" in one_line_error(err)
    assert ended_runs.read_bytes() == before


# -- resume: progress and the summary of what it finished -----------------------------------------------
def _unfinished(db: Path, strategy: str, seeds: int) -> None:
    """Runs created and left at round 0, as a killed `simulate` leaves them."""
    configs = api.plan_simulation("digits", [strategy], seeds=list(range(seeds)), rounds=2, batch=5, init=10)
    store = Store(db)
    try:
        for c in configs:
            store.create_run(c)
    finally:
        store.close()


def test_resume_shows_a_progress_bar_and_the_summary_of_the_runs_it_finished(tmp_path: Path, capsys,
                                                                             monkeypatch) -> None:
    db = tmp_path / "r.sqlite"
    run_cli(["simulate", "--strategy", "random", "--db", str(db), *SMALL], capsys, monkeypatch)
    _unfinished(db, "margin", 2)
    code, out, err = run_cli(["resume", "--db", str(db)], capsys, monkeypatch)
    assert code == 0, err
    assert "rounds" in err and "8/8" in err  # 2 runs x (2 rounds + round 0 + the final evaluation)
    assert "resumed 2 run(s)" in err
    rows = table_rows(out)
    assert "margin" in rows and "random" not in rows  # only what this resume finished
    assert rows["margin"][1] == "2"  # both seeds
    assert "accuracy" in out


def test_resume_metric_macro_f1_shows_that_metric(tmp_path: Path, capsys, monkeypatch) -> None:
    db = tmp_path / "m.sqlite"
    _unfinished(db, "entropy", 1)
    code, out, _ = run_cli(["resume", "--db", str(db), "--metric", "macro_f1"], capsys, monkeypatch)
    assert code == 0
    expected = reports.summary_rows(reports.group_curves(reports.load_curves([str(db)], "macro_f1")))[0]
    assert f"{expected['final_mean']:.4f} ± {expected['final_std']:.4f}" in table_rows(out)["entropy"]
    assert "macro_f1" in out


@pytest.mark.parametrize("command", ["simulate", "resume"])
def test_unknown_summary_metric_is_a_one_line_error_that_writes_nothing(command: str, tmp_path: Path, capsys,
                                                                        monkeypatch) -> None:
    db = tmp_path / "x.sqlite"
    if command == "resume":
        _unfinished(db, "random", 1)
    before = db.read_bytes() if db.exists() else None
    code, _, err = run_cli([command, "--db", str(db), "--metric", "f2", *(SMALL if command == "simulate" else [])],
                           capsys, monkeypatch)
    assert code == 2
    assert "unknown metric 'f2'; use --metric accuracy, macro_f1 or (multi-label runs) micro_f1, hamming_loss" in one_line_error(err)
    assert (db.read_bytes() if db.exists() else None) == before
    if command == "resume":
        store = Store(db, readonly=True)
        try:
            assert store.unfinished_runs() == [1] and store.metrics(1) == []
        finally:
            store.close()


# -- simulate --metric on imbalanced data --------------------------------------------------------------------
@pytest.fixture()
def imbalanced(tmp_path: Path) -> tuple[Path, Path]:
    """400 items, 3 overlapping classes of 86%, 9% and 5%: accuracy looks good, macro-F1 does not."""
    rng = np.random.default_rng(7)
    y = np.repeat([0, 1, 2], [344, 36, 20])
    X = rng.normal(size=(400, 4)) + np.eye(3, 4)[y] * 1.2
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    return tmp_path / "X.npy", tmp_path / "y.npy"


def test_simulate_metric_macro_f1_shows_macro_f1_in_the_summary(imbalanced: tuple[Path, Path], tmp_path: Path,
                                                                capsys, monkeypatch) -> None:
    X, y = imbalanced
    db = tmp_path / "imb.sqlite"
    code, out, err = run_cli(["simulate", "--features", str(X), "--labels", str(y), "--strategy", "random",
                              "--seeds", "2", "--rounds", "2", "--batch", "10", "--init", "10", "--db", str(db),
                              "--metric", "macro_f1"], capsys, monkeypatch)
    assert code == 0, err
    f1 = reports.summary_rows(reports.group_curves(reports.load_curves([str(db)], "macro_f1")))[0]
    acc = reports.summary_rows(reports.group_curves(reports.load_curves([str(db)], "accuracy")))[0]
    assert float(acc["final_mean"]) - float(f1["final_mean"]) > 0.1  # what accuracy hides
    row = table_rows(out)["random"]
    assert f"{f1['final_mean']:.4f} ± {f1['final_std']:.4f}" in row
    assert f"{acc['final_mean']:.4f} ± {acc['final_std']:.4f}" not in row
    title = " ".join(line for line in out.splitlines() if not line.startswith(("│", "┃", "┏", "┡", "└")))
    assert "macro_f1" in title and "accuracy" not in title
    assert "final macro_f1" in out


# -- strategies ---------------------------------------------------------------------------------------------
def _bundled() -> list[str]:
    """al-loop's own strategies (other tests register their own in the same process)."""
    return [n for n in STRATEGIES.names() if STRATEGIES.origin(n) is None]


def test_every_bundled_strategy_has_a_use_when_line() -> None:
    assert len(_bundled()) >= 13
    for name in _bundled():
        cls = STRATEGIES.get(name)
        assert isinstance(cls.__dict__.get("use_when"), str) and len(cls.use_when) > 20, name
        if dataclasses.is_dataclass(cls):
            assert "use_when" not in {f.name for f in dataclasses.fields(cls)}  # a ClassVar, not a parameter


def test_strategies_lists_parameters_defaults_and_use_when_without_markup(capsys, monkeypatch) -> None:
    code, out, _ = run_cli(["strategies"], capsys, monkeypatch)
    assert code == 0
    for name in _bundled():
        assert f"{name}  (needs " in out
    assert out.count("use when: ") >= len(_bundled())
    assert "first=max_norm" in out and "dtype=float32" in out  # badge
    assert "prune=false" in out and "n_groups=256" in out  # kcenter
    assert "k=10" in out and "Labeled neighbours per candidate (10 in the paper)." in out  # cal
    assert "Distance between view.embed vectors." in out  # ``view.embed`` stripped
    for markup in ("``", ":class:", ":func:", ":math:", ":mod:", ":meth:", "`"):
        assert markup not in out, markup
    margin = out.split("margin  (needs ")[1].split("\n\n")[0]
    assert "parameters: none" in margin


def test_plain_text_strips_rst_markup() -> None:
    assert plain_text("uses ``view.embed`` (see :class:`~al_loop.view.ModelView`)") == "uses view.embed (see ModelView)"
    assert plain_text(":math:`k^2` and :func:`strategies.submodular.maximize`") == "k^2 and strategies.submodular.maximize"
    assert plain_text("*weak*  and **strong**\n  `ref`_") == "weak and strong ref"
    assert plain_text(":ref:`the guide <guide-label>`") == "the guide"
    assert first_sentence("Where distances are measured. Default pca: ...") == "Where distances are measured."


def test_parameter_docs_reads_grouped_names_and_type_only_entries() -> None:
    docs = parameter_docs(STRATEGIES.get("fass"))
    assert docs["lam"] == docs["epsilon"] == "see strategies.submodular.build_function."
    assert docs["measure"] == '{"entropy", "margin", "least_confidence"}'
    info = strategy_help("fass", STRATEGIES.get("fass"))
    assert [p.name for p in info.parameters][:2] == ["beta", "function"]
    assert all(p.doc for p in info.parameters)


# -- compare on the command line: the note on too few seeds ---------------------------------------------------
def test_compare_command_prints_the_smallest_p_and_the_seed_note(tmp_path: Path, capsys, monkeypatch) -> None:
    runs = []
    for seed in range(3):
        runs.append((cfg("random", seed), curve(10, [0.5, 0.55, 0.6])))
        runs.append((cfg("margin", seed), curve(10, [0.5, 0.7 + 0.01 * seed, 0.8])))
    db = write_store(tmp_path / "three.sqlite", runs)
    code, out, err = run_cli(["compare", "--db", str(db), "--out", str(tmp_path / "out"), "--no-ceiling"],
                             capsys, monkeypatch)
    assert code == 0, err
    assert "0.25 (min 0.25 with 3 seeds)" in out
    note = [line for line in out.splitlines() if line.startswith("note: ")]
    assert len(note) == 1 and "--seeds 6" in note[0]
    assert "settings: data digits" in out


def test_curves_command_with_eleven_strategies_puts_the_legend_outside(tmp_path: Path, capsys,
                                                                      monkeypatch) -> None:
    names = ["random", "entropy", "margin", "kcenter", "badge", "cal", "typiclust", "probcover", "least_confidence",
             "fass", "switch"]
    db = write_store(tmp_path / "eleven.sqlite",
                     [(cfg(n, 0), curve(10, [0.3, 0.4 + 0.01 * i, 0.5 + 0.02 * i])) for i, n in enumerate(names)])
    png = tmp_path / "c.png"
    code, out, err = run_cli(["curves", "--db", str(db), "--out", str(png)], capsys, monkeypatch)
    assert code == 0, err
    width = int.from_bytes(png.read_bytes()[16:20], "big")
    assert width > 7.5 * 110  # the axes' figure plus the legend beside it
    assert all(n in table_rows(out) for n in names)
