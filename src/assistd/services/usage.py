"""Token usage per project, model and UTC day, and the projects' token budgets.

Runs count their tokens in the executor (in the transaction each turn already writes);
chat completions count theirs here when they end. Budgets are tokens per UTC calendar
month: once a project's usage this month reaches its budget, new runs and chat
completions are refused with OpenAI's ``insufficient_quota``. A run already going is not
cut off, so a project can overshoot its budget by what its runs in flight still use.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from assistd import clock
from assistd.errors import InvalidRequestError, QuotaExceededError
from assistd.protocol.chat import CompletionUsage
from assistd.protocol.usage import UsageDaily, UsageList
from assistd.store import usage
from assistd.store.database import Database


def parse_date(value: str | None, param: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(
            f"Invalid value for '{param}': expected a date as YYYY-MM-DD, got '{value}'.",
            param=param,
            code="invalid_value",
        ) from None


class UsageService:
    def __init__(self, db: Database, budgets: Mapping[str, int] | None = None) -> None:
        self.db = db
        self.budgets = dict(budgets or {})

    async def record(self, project: str, model: str, used: CompletionUsage) -> None:
        """Count one chat completion in the project's usage today."""
        async with self.db.write() as conn:
            counted = usage.counted(
                project,
                model,
                usage.day_of(clock.now()),
                prompt_tokens=used.prompt_tokens,
                completion_tokens=used.completion_tokens,
            )
            await usage.add(conn, counted)

    async def check_budget(self, project: str) -> None:
        """Raise ``insufficient_quota`` when the project spent its budget this month (one
        indexed read, only for a project that has a budget)."""
        budget = self.budgets.get(project)
        if budget is None:
            return
        month = usage.day_of(clock.now()).replace(day=1)
        async with self.db.read() as conn:
            spent = await usage.tokens_since(conn, project, month)
        if spent >= budget:
            raise QuotaExceededError()

    async def daily(
        self,
        project: str,
        *,
        start_date: str | None = None,
        end_date: str | None = None,
        model: str | None = None,
    ) -> UsageList:
        """The project's usage by day and model, ``start_date`` to ``end_date`` inclusive."""
        start = parse_date(start_date, "start_date")
        end = parse_date(end_date, "end_date")
        if start is not None and end is not None and end < start:
            raise InvalidRequestError(
                "Invalid value for 'end_date': it must not be before 'start_date'.",
                param="end_date",
                code="invalid_value",
            )
        async with self.db.read() as conn:
            rows = await usage.daily(conn, project, start=start, end=end, model=model)
        return UsageList(
            data=[
                UsageDaily(
                    date=row.day.isoformat(),
                    model=row.model,
                    prompt_tokens=row.prompt_tokens,
                    completion_tokens=row.completion_tokens,
                    total_tokens=row.prompt_tokens + row.completion_tokens,
                    requests=row.requests,
                )
                for row in rows
            ]
        )
