"""Rows of any schema as hypothesis draws them, for property tests that must hold on any data."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from ml.schema import Kind, Schema


def rows_strategy(contract: Schema) -> st.SearchStrategy[dict[str, Any]]:
    """One valid row of features for a schema, as hypothesis draws it."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for feature in contract.features:
        if feature.kind is Kind.NUMERIC:
            low = feature.minimum if feature.minimum is not None else -1e6
            high = feature.maximum if feature.maximum is not None else 1e6
            value: st.SearchStrategy[Any] = st.floats(low, high, allow_nan=False, allow_infinity=False)
        else:
            value = st.sampled_from(feature.categories)
        fields[feature.name] = st.one_of(st.none(), value) if feature.nullable else value
    return st.fixed_dictionaries(fields)
