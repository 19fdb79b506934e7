"""/v1/threads/runs and /v1/threads/{thread_id}/runs[/...]"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from starlette.responses import StreamingResponse

from assistd.http.deps import Page, Project, Svc, json_body
from assistd.http.errors import SERVER_ERROR
from assistd.http.sse import assistant_stream, event_stream_response
from assistd.protocol.common import ListResponse
from assistd.protocol.runs import (
    TERMINAL_STATUSES,
    CreateRunRequest,
    CreateThreadAndRunRequest,
    ModifyRunRequest,
    RunObject,
    RunStepObject,
    SubmitToolOutputsRequest,
)
from assistd.services.run_steps import check_include
from assistd.services.run_streams import RunStream

router = APIRouter(tags=["runs"])


async def include_param(request: Request) -> list[str]:
    """``include[]`` as the SDK sends it (bracketed), or plain repeated ``include``."""
    query = request.query_params
    return [*query.getlist("include[]"), *query.getlist("include")]


Include = Annotated[list[str], Depends(include_param)]


def _answer(
    svc: Svc,
    response: Response,
    run: RunObject,
    stream: RunStream | None,
    with_content: bool = False,
) -> RunObject | StreamingResponse:
    if stream is not None:
        events = stream.relay(with_content=with_content)
        return event_stream_response(assistant_stream(events, SERVER_ERROR))
    if run.status not in TERMINAL_STATUSES:
        response.headers["openai-poll-after-ms"] = str(svc.settings.poll_after_ms)
    return run


@router.post("/threads/runs", response_model=None)
async def create_thread_and_run(
    svc: Svc,
    project: Project,
    response: Response,
    body: Annotated[CreateThreadAndRunRequest, Depends(json_body(CreateThreadAndRunRequest))],
) -> RunObject | StreamingResponse:
    run, stream = await svc.runs.create_thread_and_run(project, body)
    return _answer(svc, response, run, stream)


@router.post("/threads/{thread_id}/runs", response_model=None)
async def create_run(
    svc: Svc,
    project: Project,
    response: Response,
    thread_id: str,
    include: Include,
    body: Annotated[CreateRunRequest, Depends(json_body(CreateRunRequest))],
) -> RunObject | StreamingResponse:
    with_content = check_include(include)
    run, stream = await svc.runs.create(project, thread_id, body)
    return _answer(svc, response, run, stream, with_content)


@router.get("/threads/{thread_id}/runs")
async def list_runs(
    svc: Svc, project: Project, thread_id: str, page: Page
) -> ListResponse[RunObject]:
    return await svc.runs.list(project, thread_id, page)


@router.get("/threads/{thread_id}/runs/{run_id}", response_model=None)
async def get_run(
    svc: Svc,
    project: Project,
    response: Response,
    thread_id: str,
    run_id: str,
    include: Include,
    stream: bool = False,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> RunObject | StreamingResponse:
    """With ``stream=true`` (an assistd extension): the run's event stream, from its first
    retained event or after ``Last-Event-ID``."""
    if stream:
        with_content = check_include(include)
        attached = await svc.runs.attach(project, thread_id, run_id, last_event_id)
        return event_stream_response(
            assistant_stream(attached.relay(with_content=with_content), SERVER_ERROR)
        )
    run = await svc.runs.get(project, thread_id, run_id)
    return _answer(svc, response, run, None)


@router.post("/threads/{thread_id}/runs/{run_id}")
async def modify_run(
    svc: Svc,
    project: Project,
    thread_id: str,
    run_id: str,
    body: Annotated[ModifyRunRequest, Depends(json_body(ModifyRunRequest))],
) -> RunObject:
    return await svc.runs.modify(project, thread_id, run_id, body)


@router.post("/threads/{thread_id}/runs/{run_id}/cancel", response_model=None)
async def cancel_run(
    svc: Svc, project: Project, response: Response, thread_id: str, run_id: str
) -> RunObject | StreamingResponse:
    run = await svc.runs.cancel(project, thread_id, run_id)
    return _answer(svc, response, run, None)


@router.post("/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", response_model=None)
async def submit_tool_outputs(
    svc: Svc,
    project: Project,
    response: Response,
    thread_id: str,
    run_id: str,
    body: Annotated[SubmitToolOutputsRequest, Depends(json_body(SubmitToolOutputsRequest))],
) -> RunObject | StreamingResponse:
    run, stream = await svc.runs.submit_tool_outputs(project, thread_id, run_id, body)
    # The service publishes thread.run.queued on the run's channel, which the stream
    # (subscribed before that) relays: nothing opens this stream but the worker's events.
    return _answer(svc, response, run, stream)


@router.get("/threads/{thread_id}/runs/{run_id}/steps")
async def list_run_steps(
    svc: Svc, project: Project, thread_id: str, run_id: str, page: Page, include: Include
) -> ListResponse[RunStepObject]:
    return await svc.run_steps.list(project, thread_id, run_id, page, include)


@router.get("/threads/{thread_id}/runs/{run_id}/steps/{step_id}")
async def get_run_step(
    svc: Svc, project: Project, thread_id: str, run_id: str, step_id: str, include: Include
) -> RunStepObject:
    return await svc.run_steps.get(project, thread_id, run_id, step_id, include)
