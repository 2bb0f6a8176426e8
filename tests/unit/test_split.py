"""Properties of splitting a closed fund's rest over its funding sources (settlement.split)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from settlement.split import split_within_caps

caps_lists = st.lists(st.integers(min_value=0, max_value=10**13), min_size=1, max_size=12)


@given(caps=caps_lists, data=st.data())
def test_parts_sum_to_the_rest_and_stay_within_each_net_grant(caps: list[int], data: st.DataObject) -> None:
    amount = data.draw(st.integers(min_value=0, max_value=sum(caps)), label="amount")
    parts = split_within_caps(amount, caps)
    assert len(parts) == len(caps)
    assert sum(parts) == amount  # never a cent lost or made
    assert all(0 <= p <= c for p, c in zip(parts, caps, strict=True))
    total = sum(caps)
    if total:  # pro rata: each part within a cent of its exact share amount * cap / total
        assert all(abs(p * total - amount * c) < total for p, c in zip(parts, caps, strict=True))


@given(caps=caps_lists, extra=st.integers(min_value=1, max_value=10**6))
def test_more_than_the_net_grants_is_refused(caps: list[int], extra: int) -> None:
    with pytest.raises(ValueError, match="more than the caps allow"):
        split_within_caps(sum(caps) + extra, caps)


def test_ties_go_in_source_order() -> None:
    # 1 cent over three equal net grants: the first source in code order gets it
    assert split_within_caps(1, [5, 5, 5]) == [1, 0, 0]
    assert split_within_caps(2, [5, 5, 5]) == [1, 1, 0]
    # a source with nothing left to get back gets nothing, even with a cent to spare
    assert split_within_caps(3, [0, 2, 2]) == [0, 2, 1]
