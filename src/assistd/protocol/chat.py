"""Chat Completions wire models: the create body, ``chat.completion`` and its chunks.

The request side is lenient where OpenAI is (unknown fields are dropped, nulls mean "not
given") and typed where a wrong value would reach the model. Fields assistd only forwards
(penalties, ``logit_bias``, ``user``, ``metadata``...) are listed in ``PASSTHROUGH`` so that
an upstream receives them unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from assistd.protocol.common import (
    FunctionName,
    FunctionTool,
    JsonObjectFormat,
    JsonSchemaFormat,
    Metadata,
    RequestModel,
    TextFormat,
    WireModel,
)

# Create-body fields sent on to the backend as they are (``ChatRequest.extra``).
PASSTHROUGH = (
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "user",
    "metadata",
    "store",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "verbosity",
)


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---- request: messages -----------------------------------------------------------------


class TextPart(_Part):
    type: Literal["text"]
    text: str


class ImageUrl(_Part):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImageUrlPart(_Part):
    type: Literal["image_url"]
    image_url: ImageUrl


class InputAudio(_Part):
    data: str
    format: Literal["wav", "mp3"]


class InputAudioPart(_Part):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FileInput(_Part):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(_Part):
    type: Literal["file"]
    file: FileInput


class RefusalPart(_Part):
    type: Literal["refusal"]
    refusal: str


UserPart = Annotated[
    TextPart | ImageUrlPart | InputAudioPart | FilePart, Field(discriminator="type")
]
AssistantPart = Annotated[TextPart | RefusalPart, Field(discriminator="type")]


class SystemMessage(_Part):
    role: Literal["system"]
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(_Part):
    role: Literal["developer"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Part):
    role: Literal["user"]
    content: str | list[UserPart]
    name: str | None = None


class CalledFunction(_Part):
    name: str
    arguments: str


class AssistantToolCall(_Part):
    id: str
    type: Literal["function"]
    function: CalledFunction


class AssistantMessage(_Part):
    role: Literal["assistant"]
    # null only with tool_calls (OpenAI's rule; checked by the service).
    content: str | list[AssistantPart] | None = None
    refusal: str | None = None
    name: str | None = None
    tool_calls: list[AssistantToolCall] | None = None


class ToolMessage(_Part):
    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str


ChatMessage = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]


# ---- request: the body -----------------------------------------------------------------


class StreamOptions(_Part):
    include_usage: bool | None = None


class NamedFunction(_Part):
    name: FunctionName


class NamedToolChoice(_Part):
    type: Literal["function"]
    function: NamedFunction


ChatResponseFormat = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")
]


class CreateChatCompletionRequest(RequestModel):
    messages: list[ChatMessage] = Field(min_length=1)
    # Optional only with ``assistant`` (the service checks): the assistant's model is used.
    model: str | None = None
    # assistd's extension: answer as this assistant (its instructions, tools and settings).
    assistant: str | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: list[FunctionTool] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ChatResponseFormat | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = Field(default=None, max_length=4)
    seed: int | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = (
        None
    )
    # Forwarded untouched (see PASSTHROUGH).
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, int] | None = None
    user: str | None = None
    metadata: Metadata = None
    store: bool | None = None
    service_tier: str | None = None
    safety_identifier: str | None = Field(default=None, max_length=64)
    prompt_cache_key: str | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    # The deprecated function-calling fields: typed loosely only to refuse them clearly
    # (dropping them silently would turn a function call into plain text).
    functions: Any = None
    function_call: Any = None


# ---- responses -------------------------------------------------------------------------


class _Sparse(WireModel):
    """Omits null fields, as OpenAI's deltas do (``{"content": "Hi"}``, not 5 nulls)."""

    @model_serializer(mode="wrap")
    def _drop_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if value is not None}


class FunctionCallOut(WireModel):
    name: str
    arguments: str


class ToolCallOut(WireModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCallOut


class CompletionMessage(WireModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: None = None
    annotations: list[Any] = Field(default_factory=list)
    tool_calls: list[ToolCallOut] | None = None

    @model_serializer(mode="wrap")
    def _omit_no_calls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # OpenAI leaves ``tool_calls`` out of a message without calls (not null, not []).
        data: dict[str, Any] = handler(self)
        if data.get("tool_calls") is None:
            data.pop("tool_calls", None)
        return data


FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


class CompletionChoice(WireModel):
    index: int = 0
    message: CompletionMessage
    finish_reason: FinishReason
    logprobs: None = None


class CompletionUsage(WireModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionObject(WireModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage
    system_fingerprint: str | None = None


class FunctionDelta(_Sparse):
    name: str | None = None
    arguments: str | None = None


class ToolCallDeltaOut(_Sparse):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionDelta | None = None


class ChunkDelta(_Sparse):
    role: Literal["assistant"] | None = None
    content: str | None = None
    # assistd's extension (answers of an assistant): the annotations over this delta's text.
    annotations: list[Any] | None = None
    tool_calls: list[ToolCallDeltaOut] | None = None


class ChunkChoice(WireModel):
    index: int = 0
    delta: ChunkDelta
    logprobs: None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(WireModel):
    """One streamed chunk; ``usage`` is sent only when the client asked for it."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
