"""Wire types shared by several resources: the request base, metadata, tools, lists."""

from __future__ import annotations

import functools
import logging
import re
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    model_validator,
)
from pydantic_core import PydanticCustomError

logger = logging.getLogger("assistd.protocol")


@functools.cache
def _known_fields(model: type[BaseModel]) -> frozenset[str]:
    """The names and aliases ``model`` reads from a request (computed once per model)."""
    fields = model.model_fields
    return frozenset(fields) | {f.alias or name for name, f in fields.items()}


METADATA_MAX_PAIRS = 16
METADATA_MAX_KEY = 64
METADATA_MAX_VALUE = 512
# The largest integer a plain INTEGER column holds on every database (PostgreSQL's is 32-bit).
INT32_MAX = 2**31 - 1
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are tolerated, logged and dropped.

    OpenAI clients from several SDK generations send fields we may not know yet; refusing
    them would break drop-in use. Only the field names are logged, never their values.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @model_validator(mode="wrap")
    @classmethod
    def _log_unknown_fields(
        cls, data: Any, handler: ModelWrapValidatorHandler[RequestModel]
    ) -> RequestModel:
        if isinstance(data, dict):
            known = _known_fields(cls)
            unknown = sorted(str(k) for k in data if k not in known)
            if unknown:
                logger.info("ignoring unknown fields in %s: %s", cls.__name__, unknown)
        return handler(data)

    def given(self) -> dict[str, Any]:
        """Fields the client set to a non-null value (null means "not given")."""
        return {
            name: getattr(self, name)
            for name in self.model_fields_set
            if getattr(self, name) is not None
        }


class WireModel(BaseModel):
    """Base of every response object: serialised with every field, nulls included."""

    model_config = ConfigDict(extra="forbid")


def _check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > METADATA_MAX_PAIRS:
        raise PydanticCustomError(
            "object_above_max_properties",
            "Invalid 'metadata': too many properties. Expected an object with at most "
            "{limit} properties, but got an object with {count} properties instead.",
            {"limit": METADATA_MAX_PAIRS, "count": len(value)},
        )
    for key, item in value.items():
        if len(key) > METADATA_MAX_KEY:
            raise PydanticCustomError(
                "string_above_max_length",
                "Invalid 'metadata': key '{key}...' is too long. Expected a key with maximum "
                "length {limit}, but got a key with length {length} instead.",
                {"key": key[:16], "limit": METADATA_MAX_KEY, "length": len(key)},
            )
        if len(item) > METADATA_MAX_VALUE:
            raise PydanticCustomError(
                "string_above_max_length",
                "Invalid 'metadata.{key}': string too long. Expected a string with maximum "
                "length {limit}, but got a string with length {length} instead.",
                {"key": key[:64], "limit": METADATA_MAX_VALUE, "length": len(item)},
            )
    return value


Metadata = Annotated[dict[str, str] | None, AfterValidator(_check_metadata)]


def _check_name(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise PydanticCustomError(
            "invalid_value",
            "Invalid name '{name}': it must be 1 to 64 characters of a-z, A-Z, 0-9, "
            "underscores or dashes.",
            {"name": value[:80]},
        )
    return value


FunctionName = Annotated[str, AfterValidator(_check_name)]


# ---- tools -----------------------------------------------------------------------------


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: FunctionName
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class CodeInterpreterTool(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["code_interpreter"]


class RankingOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ranker: Literal["auto", "default_2024_08_21"] = "auto"
    score_threshold: float = Field(ge=0, le=1)


class FileSearchSettings(BaseModel):
    model_config = ConfigDict(extra="ignore")

    max_num_results: int | None = Field(default=None, ge=1, le=50)
    ranking_options: RankingOptions | None = None


class FileSearchTool(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["file_search"]
    file_search: FileSearchSettings | None = None


class FunctionTool(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    function: FunctionDefinition


Tool = Annotated[CodeInterpreterTool | FileSearchTool | FunctionTool, Field(discriminator="type")]


def dump_tools(tools: list[Tool]) -> list[dict[str, Any]]:
    """Tools as stored and echoed: the fields the client gave, without nulls."""
    return [t.model_dump(mode="json", exclude_none=True) for t in tools]


# ---- response_format -------------------------------------------------------------------


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]


class JsonObjectFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["json_object"]


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: FunctionName
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = (
    Literal["auto"]
    | Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]
)


def dump_response_format(value: ResponseFormat | None) -> Any:
    if value is None or isinstance(value, str):
        return value
    return value.model_dump(mode="json", by_alias=True, exclude_none=True)


# ---- tool_resources --------------------------------------------------------------------


class CodeInterpreterResources(BaseModel):
    model_config = ConfigDict(extra="ignore")

    file_ids: list[str] = Field(default_factory=list, max_length=20)


class VectorStoreHelper(BaseModel):
    model_config = ConfigDict(extra="ignore")

    file_ids: list[str] = Field(default_factory=list)
    chunking_strategy: dict[str, Any] | None = None
    metadata: Metadata = None


class FileSearchResources(BaseModel):
    model_config = ConfigDict(extra="ignore")

    vector_store_ids: list[str] | None = Field(default=None, max_length=1)
    vector_stores: list[VectorStoreHelper] | None = Field(default=None, max_length=1)


class ToolResources(BaseModel):
    model_config = ConfigDict(extra="ignore")

    code_interpreter: CodeInterpreterResources | None = None
    file_search: FileSearchResources | None = None


# ---- lists and deletion ----------------------------------------------------------------

T = TypeVar("T")


class ListResponse(WireModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool


class DeletedResponse(WireModel):
    id: str
    object: str
    deleted: bool = True
