"""``--param`` values are coerced by the strategy's dataclass field types; what does not fit is one line."""

from __future__ import annotations

from typing import Any, Literal

import pytest

from al_loop.errors import ConfigError
from al_loop.params import _Mismatch, coerce, parse_params


@pytest.mark.parametrize("text, tp, expected", [
    ("true", bool, True), ("Yes", bool, True), ("1", bool, True), ("false", bool, False), ("NO", bool, False),
    ("0", bool, False), ("10", int, 10), ("-3", int, -3), ("2.5", float, 2.5), ("10", float, 10.0),
    ("fl", str, "fl"), ('"fl"', str, "fl"), ("none", float | None, None), ("0.2", float | None, 0.2),
    ("auto", float | str, "auto"), ("0.3", float | str, 0.3), ("40", int | str, 40),
    ("dense", Literal["auto", "dense"], "dense"), ("1,2,3", tuple[int, ...], (1, 2, 3)),
    ("[1, 2]", tuple[int, ...], (1, 2)), ("a,b", list[str], ["a", "b"]), ("0.5,3", tuple[float, int], (0.5, 3)),
    ('{"k": 3}', dict[str, Any], {"k": 3}), ("[1]", Any, [1]), ("plain", Any, "plain"),
])
def test_coerce_by_field_type(text, tp, expected) -> None:
    value = coerce(text, tp)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("text, tp, want", [
    ("maybe", bool, "a bool"), ("2.5", int, "an int"), ("ten", int, "an int"), ("x", float, "a float"),
    ("inf", float, "a finite float"), ("x", float | None, "a float or none"),
    ("sparce", Literal["auto", "sparse"], "one of auto, sparse"), ("1,2,3", tuple[int, int], "2 comma-separated"),
    ("1,x", tuple[int, ...], "an int"), ("3", dict[str, Any], "a JSON object"),
])
def test_mismatch_names_the_type(text, tp, want) -> None:
    with pytest.raises(_Mismatch) as err:
        coerce(text, tp)
    assert err.value.want.startswith(want)


def test_literal_mismatch_suggests_the_close_value() -> None:
    with pytest.raises(_Mismatch) as err:
        coerce("sparce", Literal["auto", "sparse"])
    assert "did you mean sparse?" in err.value.fix


@pytest.mark.parametrize("items, needle", [
    (["kcenter.prune=maybe"], "--param kcenter.prune='maybe' is not a bool; write true or false"),
    (["cal.k=2.5"], "--param cal.k='2.5' is not an int; write a whole number like 10"),
    (["prune=2"], "--param kcenter.prune='2' is not a bool"),
    (["similar.rare_share=lots"], "--param similar.rare_share='lots' is not a float or none"),
    (["fass.beta=nan"], "--param fass.beta='nan' is not a finite float"),
    (["switch.first_params=3"], "--param switch.first_params='3' is not a JSON object"),
    (["kcenter.prun=true"], "strategy 'kcenter' has no parameter 'prun'; did you mean 'prune'?"),
    (["n_group=2"], "has a parameter 'n_group'; did you mean 'n_groups' (kcenter)?"),
])
def test_parse_params_refuses_in_one_line(items, needle) -> None:
    with pytest.raises(ConfigError) as err:
        parse_params(items, ["kcenter", "cal", "similar", "fass", "switch"])
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_parse_params_stores_typed_values() -> None:
    params = parse_params(["kcenter.prune=yes", "cal.k=7", "probcover.delta=auto", "similar.rare_share=none",
                           "fass.beta=4"], ["kcenter", "cal", "probcover", "similar", "fass"])
    assert params["kcenter"] == {"prune": True} and params["cal"] == {"k": 7}
    assert params["probcover"] == {"delta": "auto"} and params["similar"] == {"rare_share": None}
    assert params["fass"] == {"beta": 4.0} and isinstance(params["fass"]["beta"], float)
