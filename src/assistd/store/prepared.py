"""Statements of the run path built once, their values passed as parameters.

Building a SQLAlchemy statement and computing its cache key costs more than SQLite takes
to run it (a run's ~20 statements took several ms of CPU); a statement object built once
keeps its cache key, so executing it again costs only the execution. Values go in as
``p_<column>`` parameters, typed like their column (JSON columns are serialised).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa


def param(table: sa.Table, column: str) -> sa.BindParameter[Any]:
    """The parameter standing for a value of ``column``."""
    return sa.bindparam(f"p_{column}", type_=table.c[column].type)


def setting(table: sa.Table, columns: tuple[str, ...]) -> dict[str, sa.BindParameter[Any]]:
    """``.values()`` of an UPDATE setting ``columns`` from their parameters."""
    return {column: param(table, column) for column in columns}


def params(values: Mapping[str, Any], **keys: Any) -> dict[str, Any]:
    """The parameters of ``values`` (column → value) and of ``keys`` (name → value)."""
    return {f"p_{column}": value for column, value in {**values, **keys}.items()}
