import math

import pytest

from chaos.tolerance import check_tolerance, jsonpath_lite, validate_tolerance


@pytest.mark.parametrize("tol,value,ok", [
    (True, True, True), (True, False, False), (True, 1, False), (False, False, True),
    (3, 3, True), (3, 3.0, True), (3, 4, False), (2.5, "2.5", True), (1, True, False),
    ([0, 10], 5, True), ([0, 10], 10, True), ([0, 10], 10.01, False), ([None, 1], -99, True),
    ([0, None], math.inf, True), ([0, 10], math.nan, False), ([0, 10], "abc", False),
    ([0, 10], None, False), ("ok", "ok", True), ("ok", "ko", False),
    ({"type": "range", "min": 1}, 0.5, False), ({"type": "regex", "pattern": "^r[0-9]$"}, "r1",
                                                  True),
    ({"type": "regex", "pattern": "^r[0-9]$"}, "r10", False),
    ({"type": "jsonpath", "path": "$.a.b[1]", "expect": [0, 1]}, {"a": {"b": [9, 0.5]}}, True),
    ({"type": "jsonpath", "path": "$.a.b[2]"}, {"a": {"b": [9, 0.5]}}, False),
    ({"type": "jsonpath", "path": "$.device_lost", "expect": False}, {"device_lost": False},
     True),
])
def test_check_tolerance(tol, value, ok):
    got, why = check_tolerance(tol, value)
    assert got is ok, why
    assert why


def test_jsonpath_lite_quoted_and_errors():
    assert jsonpath_lite({"a b": [{"c": 1}]}, "$['a b'][0].c") == 1
    with pytest.raises(ValueError, match="must start"):
        jsonpath_lite({}, "a.b")
    with pytest.raises(ValueError, match="cannot parse"):
        jsonpath_lite({}, "$.a..b")


@pytest.mark.parametrize("tol,msg", [
    ({"type": "nope"}, "tolerance type"), ({"type": "regex"}, "needs 'pattern'"),
    ({"type": "regex", "pattern": "("}, "bad regex"), ([1, 2, 3], "two items"),
    ({"type": "jsonpath", "path": "x"}, "must start"), (None, "unsupported"),
])
def test_validate_tolerance_rejects(tol, msg):
    with pytest.raises(ValueError, match=msg):
        validate_tolerance(tol)
