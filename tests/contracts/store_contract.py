"""Contract suite of the store: the invariants of ``al_loop.store``'s docstring."""

from __future__ import annotations

import numpy as np
import pytest

from al_loop.config import RunConfig
from al_loop.errors import StoreError
from al_loop.schema import MetricRow
from al_loop.store import Store
from al_loop.types import Answer, RoundState


class StoreContract:
    def make_store(self, tmp_path) -> Store:
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path) -> Store:
        s = self.make_store(tmp_path)
        yield s
        s.close()

    @pytest.fixture
    def run_id(self, store: Store) -> int:
        return store.create_run(RunConfig(dataset="digits", strategy="random", seed=1))

    def test_new_run_starts_in_training_round_zero(self, store: Store, run_id: int) -> None:
        rnd = store.current_round(run_id)
        assert (rnd.idx, rnd.state) == (0, RoundState.TRAINING.value)
        assert store.config(run_id).seed == 1

    def test_selection_outbox_metric_commit_together(self, store: Store, run_id: int) -> None:
        metric = MetricRow(run_id=run_id, round=0, n_labels=0, accuracy=0.5, macro_f1=0.4, train_seconds=0,
                           select_seconds=0)
        store.commit_selection(run_id, 0, np.array([5, 3]), np.array([1.0, 0.5]), [None, None], metric)
        assert store.current_round(run_id).state == RoundState.SELECTED.value
        assert sorted(r.key for r in store.outbox(run_id, 0)) == [f"{run_id}:0:3", f"{run_id}:0:5"]
        assert [m.accuracy for m in store.metrics(run_id)] == [0.5]

    def test_failed_commit_leaves_nothing(self, store: Store, run_id: int) -> None:
        with pytest.raises(ValueError):  # zip(strict=True): fewer predictions than ids
            store.commit_selection(run_id, 0, np.array([1, 2]), np.array([0.0, 0.0]), [None], None)
        assert store.current_round(run_id).state == RoundState.TRAINING.value
        assert store.outbox(run_id, 0) == [] and len(store.selected_ids(run_id)) == 0

    def test_an_item_is_selected_once_per_run(self, store: Store, run_id: int) -> None:
        store.commit_selection(run_id, 0, np.array([1]), np.array([0.0]), [None], None)
        store.mark_sent(run_id, 0, {f"{run_id}:0:1": "r1"})
        store.set_state(run_id, 0, RoundState.DISPATCHED, RoundState.AWAITING)
        store.set_state(run_id, 0, RoundState.AWAITING, RoundState.LABELED)
        store.next_round(run_id, 0)
        with pytest.raises(StoreError, match="already selected"):
            store.commit_selection(run_id, 1, np.array([1]), np.array([0.0]), [None], None)
        assert store.current_round(run_id).state == RoundState.TRAINING.value

    def test_rounds_only_move_forward(self, store: Store, run_id: int) -> None:
        with pytest.raises(StoreError, match="expected"):
            store.set_state(run_id, 0, RoundState.AWAITING, RoundState.LABELED)
        with pytest.raises(StoreError, match="not LABELED"):
            store.next_round(run_id, 0)

    def test_dispatched_only_when_all_sent(self, store: Store, run_id: int) -> None:
        store.commit_selection(run_id, 0, np.array([1, 2]), np.zeros(2), [None, None], None)
        store.mark_sent(run_id, 0, {f"{run_id}:0:1": "a"})
        assert store.current_round(run_id).state == RoundState.SELECTED.value
        store.mark_sent(run_id, 0, {f"{run_id}:0:2": "b"})
        assert store.current_round(run_id).state == RoundState.DISPATCHED.value

    def test_answers_upsert_newest_wins_and_invalid_quarantined(self, store: Store, run_id: int) -> None:
        classes = ["a", "b"]
        store.apply_answers(run_id, 0, [Answer(1, "labeled", "a", annotation_id="x", updated_at="2026-01-02")], classes)
        store.apply_answers(run_id, 0, [Answer(1, "labeled", "b", annotation_id="x", updated_at="2026-01-01")], classes)
        assert [r.label for r in store.labels(run_id)] == ["a"]  # older edit ignored
        store.apply_answers(run_id, 0, [Answer(1, "labeled", "b", annotation_id="x", updated_at="2026-01-03")], classes)
        assert [r.label for r in store.labels(run_id)] == ["b"]
        counts = store.apply_answers(run_id, 0, [Answer(2, "labeled", "zebra", annotation_id="y")], classes)
        assert counts["quarantined"] == 1
        assert [r.pool_id for r in store.labels(run_id)] == [1]
        assert store.quarantine(run_id)[0].answer == "zebra"
        store.apply_answers(run_id, 0, [Answer(1, "deleted", annotation_id="x")], classes)
        assert store.labels(run_id) == []

    def test_same_answer_twice_is_one_row(self, store: Store, run_id: int) -> None:
        a = Answer(4, "labeled", "a", annotation_id="z", updated_at="2026-01-01")
        store.apply_answers(run_id, 0, [a], ["a"])
        counts = store.apply_answers(run_id, 0, [a], ["a"])
        assert counts["unchanged"] == 1 and len(store.labels(run_id)) == 1

    def test_integrity_check_ok(self, store: Store, run_id: int) -> None:
        assert store.integrity_ok()

    # The newest answer of an item decides (docs/reliability.md, "answers of several annotators").

    def _labeled(self, store: Store, run_id: int, n: int = 3) -> None:
        store.commit_selection(run_id, 0, np.arange(1, n + 1), np.zeros(n), [None] * n, None)
        answers = [Answer(i, "labeled", "a", annotation_id=f"a{i}", updated_at="2026-01-02T10:00:00.000000Z",
                          annotator="ann@x") for i in range(1, n + 1)]
        store.apply_answers(run_id, 0, answers, ["a", "b"])

    def test_an_invalid_newest_answer_of_another_annotator_removes_the_label(self, store: Store, run_id: int) -> None:
        self._labeled(store, run_id)
        bob = Answer(1, "rejected", reason="choice 'zebra' is not a class", annotation_id="b1",
                     updated_at="2026-01-02T11:00:00.000000Z", annotator="bob@x",
                     disagreement="invalid(bob@x) vs a(ann@x)")
        counts = store.apply_answers(run_id, 0, [bob], ["a", "b"])
        assert counts["quarantined"] == 1
        assert [r.pool_id for r in store.labels(run_id)] == [2, 3]
        (q,) = store.quarantine(run_id)
        assert (q.pool_id, q.annotation_id) == (1, "b1") and "annotators differ: invalid(bob@x) vs a(ann@x)" in q.reason
        prog = store.round_progress(run_id, 0)
        assert (prog["labeled"], prog["quarantined"], prog["waiting"]) == (2, 1, 0)

    def test_an_edit_to_an_invalid_choice_removes_the_label_the_same_way(self, store: Store, run_id: int) -> None:
        self._labeled(store, run_id)
        edit = Answer(2, "rejected", reason="choice 'zebra' is not a class", annotation_id="a2",
                      updated_at="2026-01-02T11:00:00.000000Z", annotator="ann@x")
        store.apply_answers(run_id, 0, [edit], ["a", "b"])
        assert [r.pool_id for r in store.labels(run_id)] == [1, 3]
        assert store.round_progress(run_id, 0)["waiting"] == 0
        # fixed later (a valid newest answer): labelled again, the quarantine row stays as history
        store.apply_answers(run_id, 0, [Answer(2, "labeled", "b", annotation_id="a2",
                                               updated_at="2026-01-02T12:00:00.000000Z")], ["a", "b"])
        assert [r.label for r in store.labels(run_id)] == ["a", "b", "a"]
        prog = store.round_progress(run_id, 0)
        assert (prog["labeled"], prog["quarantined"]) == (3, 0)

    def test_an_invalid_answer_older_than_the_label_leaves_it(self, store: Store, run_id: int) -> None:
        self._labeled(store, run_id)
        late = Answer(3, "rejected", reason="no choice", annotation_id="c3", updated_at="2026-01-02T09:00:00+00:00")
        store.apply_answers(run_id, 0, [late], ["a", "b"])
        assert [r.pool_id for r in store.labels(run_id)] == [1, 2, 3]

    def test_stamps_in_other_formats_compare_as_times(self, store: Store, run_id: int) -> None:
        store.apply_answers(run_id, 0, [Answer(1, "labeled", "a", annotation_id="x",
                                               updated_at="2026-01-02T10:00:00.5Z")], ["a", "b"])
        # a microsecond later, written with an offset: newer as a time, "older" as a string ('0' < 'Z')
        store.apply_answers(run_id, 0, [Answer(1, "labeled", "b", annotation_id="x",
                                               updated_at="2026-01-02T10:00:00.500001+00:00")], ["a", "b"])
        assert [r.label for r in store.labels(run_id)] == ["b"]
        # 09:30 UTC written as 10:30+01:00: older as a time, "newer" as a string: ignored
        store.apply_answers(run_id, 0, [Answer(1, "labeled", "a", annotation_id="x",
                                               updated_at="2026-01-02T10:30:00+01:00")], ["a", "b"])
        assert [r.label for r in store.labels(run_id)] == ["b"]
