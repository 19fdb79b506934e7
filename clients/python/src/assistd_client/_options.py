"""The Chat Completions keywords besides ``messages``, ``model``, ``stream`` and ``extra_body``.

One ``TypedDict`` that every ``create``/``acreate`` signature unpacks (``**kwargs:
Unpack[ChatCompletionOptions]``), so the 35-odd keywords are written once instead of in each of
the twelve signatures. The value types are the SDK's own (its parameter types less ``| Omit``:
leaving a key out is what omits it), imported only for type checkers: at run time nothing here
touches them, so an older ``openai`` that lacks one of them still imports this module.
"""

from __future__ import annotations

# typing's own TypedDict: total=False needs no NotRequired from typing_extensions on 3.9.
from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Literal

    from openai import NotGiven, Timeout
    from openai._types import Headers, Query, SequenceNotStr
    from openai.types.chat import (
        ChatCompletionAudioParam,
        ChatCompletionPredictionContentParam,
        ChatCompletionStreamOptionsParam,
        ChatCompletionToolChoiceOptionParam,
        ChatCompletionToolUnionParam,
        completion_create_params,
    )
    from openai.types.shared_params import Metadata, ReasoningEffort

__all__ = ["ChatCompletionOptions"]


class ChatCompletionOptions(TypedDict, total=False):
    """Every keyword of the SDK's ``chat.completions.create`` but the four the methods name."""

    audio: ChatCompletionAudioParam | None
    frequency_penalty: float | None
    function_call: completion_create_params.FunctionCall
    functions: Iterable[completion_create_params.Function]
    logit_bias: dict[str, int] | None
    logprobs: bool | None
    max_completion_tokens: int | None
    max_tokens: int | None
    metadata: Metadata | None
    modalities: list[Literal["text", "audio"]] | None
    moderation: completion_create_params.Moderation | None
    n: int | None
    parallel_tool_calls: bool
    prediction: ChatCompletionPredictionContentParam | None
    presence_penalty: float | None
    prompt_cache_key: str | None
    prompt_cache_options: completion_create_params.PromptCacheOptions
    prompt_cache_retention: Literal["in_memory", "24h"] | None
    reasoning_effort: ReasoningEffort | None
    response_format: completion_create_params.ResponseFormat
    safety_identifier: str | None
    seed: int | None
    service_tier: Literal["auto", "default", "flex", "scale", "priority", "fast"] | None
    stop: str | SequenceNotStr[str] | None
    store: bool | None
    stream_options: ChatCompletionStreamOptionsParam | None
    temperature: float | None
    tool_choice: ChatCompletionToolChoiceOptionParam
    tools: Iterable[ChatCompletionToolUnionParam]
    top_logprobs: int | None
    top_p: float | None
    user: str
    verbosity: Literal["low", "medium", "high"] | None
    web_search_options: completion_create_params.WebSearchOptions
    # The SDK's per-request options (extra_body is a named parameter: it is merged).
    extra_headers: Headers | None
    extra_query: Query | None
    timeout: float | Timeout | NotGiven | None
