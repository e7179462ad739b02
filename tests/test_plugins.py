"""Plugins from the command line: ``--plugin MODULE``, entry points, and runs that record what they need."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from al_loop.registry import LEARNERS, STRATEGIES, plugins_for

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from al_loop.cli import main; main()"]

PLUGIN = textwrap.dedent('''
    """A user's plugin: a k-nearest-neighbour learner and a 'lowest id first' strategy."""
    from dataclasses import dataclass

    import numpy as np
    from sklearn.neighbors import KNeighborsClassifier

    from al_loop import LEARNERS, STRATEGIES, Selection, Strategy
    from al_loop.learners import SklearnLearner


    @LEARNERS.register("knn")
    def make_knn(pool=None):
        return SklearnLearner(KNeighborsClassifier(n_neighbors=3))


    @STRATEGIES.register("lowest_id")
    @dataclass
    class LowestId(Strategy):
        requires = frozenset()

        def _select(self, view, ctx, budget):
            ids = np.sort(ctx.unlabeled_ids)[:budget]
            return Selection(ids=ids, scores=np.zeros(len(ids)))
''')


def _cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(CLI + args, capture_output=True, text=True, cwd=cwd, env=full_env, timeout=300)


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    return lines[0]


def test_plugin_learner_and_strategy_run_resume_and_are_recorded(tmp_path: Path) -> None:
    (tmp_path / "userplug.py").write_text(PLUGIN)
    db = tmp_path / "p.sqlite"
    args = ["simulate", "--dataset", "iris", "--learner", "knn", "--strategy", "lowest_id", "--rounds", "2",
            "--batch", "5", "--init", "6", "--db", str(db)]
    missing = _cli(args, tmp_path)
    assert "unknown strategy 'lowest_id'" in _one_line(missing) and "--plugin" in _one_line(missing)
    assert not db.exists()
    done = _cli(["--plugin", "userplug", *args], tmp_path)
    assert done.returncode == 0, done.stderr
    import sqlite3

    con = sqlite3.connect(db)
    config = json.loads(con.execute("SELECT config_json FROM runs").fetchone()[0])
    picks = [r[0] for r in con.execute("SELECT pool_id FROM selections WHERE round = 1 ORDER BY rank")]
    con.close()
    assert config["plugins"] == ["userplug"]
    assert picks == sorted(picks)  # lowest_id picked them
    # an unfinished run of the plugin: resume imports the recorded module without --plugin
    con = sqlite3.connect(db)
    con.execute("UPDATE runs SET status = 'running'")
    con.execute("INSERT INTO rounds (run_id, idx, state, budget, created_at, updated_at) "
                "SELECT run_id, max(idx) + 1, 'TRAINING', 0, created_at, updated_at FROM rounds GROUP BY run_id")
    con.execute("UPDATE runs SET config_json = json_set(config_json, '$.rounds', 3)")
    con.commit()
    con.close()
    again = _cli(["resume", "--db", str(db)], tmp_path)
    assert again.returncode == 0, again.stderr
    (tmp_path / "userplug.py").unlink()
    con = sqlite3.connect(db)
    con.execute("UPDATE runs SET status = 'running'")
    con.execute("UPDATE runs SET config_json = json_set(config_json, '$.rounds', 4)")
    con.execute("INSERT INTO rounds (run_id, idx, state, budget, created_at, updated_at) "
                "SELECT run_id, max(idx) + 1, 'TRAINING', 0, created_at, updated_at FROM rounds GROUP BY run_id")
    con.commit()
    con.close()
    gone = _cli(["resume", "--db", str(db)], tmp_path)
    assert gone.returncode == 2 and "Traceback" not in gone.stderr, gone.stderr
    line = gone.stderr.strip().splitlines()[-1]  # after the progress bar
    assert "run 1 needs the plugin module 'userplug'" in line and "--plugin userplug" in line
    con = sqlite3.connect(db)
    assert con.execute("SELECT status FROM runs").fetchone()[0] == "running"  # the environment's fault, not the run's
    con.close()


def test_a_missing_plugin_module_is_one_line(tmp_path: Path) -> None:
    line = _one_line(_cli(["--plugin", "no_such_plugin_xyz", "strategies"], tmp_path))
    assert "no_such_plugin_xyz" in line and "cannot be imported" in line


def test_entry_points_register_without_any_flag(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "epplug").mkdir(parents=True)
    (site / "epplug" / "__init__.py").write_text(PLUGIN.replace('"knn"', '"knn_ep"').replace('"lowest_id"',
                                                                                           '"lowest_id_ep"'))
    dist = site / "epplug-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: epplug\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[al_loop.strategies]\nepplug = epplug\n")
    proc = _cli(["strategies"], tmp_path, env={"PYTHONPATH": f"{ROOT}:{site}"})
    assert proc.returncode == 0, proc.stderr
    assert "lowest_id_ep" in proc.stdout


def test_bundled_names_need_no_plugin() -> None:
    assert plugins_for(["entropy", "random"], "logreg", "digits", "simulated") == ()
    assert STRATEGIES.origin("entropy") is None and LEARNERS.origin("logreg") is None
