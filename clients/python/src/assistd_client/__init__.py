"""The ``openai`` SDK's clients plus ``client.assistants``, for assistd.

``OpenAI`` and ``AsyncOpenAI`` are the SDK's own clients with one resource added::

    client.assistants.chat.completions.create(assistant="asst_...", messages=[...])

which is the stock call ``client.chat.completions.create(model="", messages=[...],
extra_body={"assistant": "asst_..."})``: ``model`` may be left out (the assistant's model is
used) and every other Chat Completions keyword is accepted and passed through. Everything else
(``client.chat``, ``client.beta``, ``with_options``, errors, retries) is the SDK, untouched.

Typing. ``create`` and ``acreate`` are overloaded on ``stream`` (``ChatCompletion``, or the SDK's
``Stream``/``AsyncStream`` of ``ChatCompletionChunk`` with ``stream=True``). The other keywords
are one ``TypedDict`` (``ChatCompletionOptions``) unpacked as ``**kwargs`` rather than explicit
parameters: written once instead of in each of the twelve signatures, so this stays small and
easy to keep in step with the SDK, while mypy and editors still check each keyword's name and
type (the SDK's own parameter types). It also forwards only what the caller passed, so an older
SDK never receives a keyword it does not know unless the caller wrote it.
"""

from __future__ import annotations

from functools import cached_property

import openai

from ._options import ChatCompletionOptions
from ._resources import (
    AssistantChat,
    AssistantCompletions,
    Assistants,
    AsyncAssistantChat,
    AsyncAssistantCompletions,
    AsyncAssistants,
)

__version__ = "0.1.0"

__all__ = [
    "AssistantChat",
    "AssistantCompletions",
    "Assistants",
    "AsyncAssistantChat",
    "AsyncAssistantCompletions",
    "AsyncAssistants",
    "AsyncOpenAI",
    "ChatCompletionOptions",
    "OpenAI",
]


class OpenAI(openai.OpenAI):
    """``openai.OpenAI`` with ``assistants``; ``copy``/``with_options`` keep the class."""

    @cached_property
    def assistants(self) -> Assistants:
        return Assistants(self)


class AsyncOpenAI(openai.AsyncOpenAI):
    """``openai.AsyncOpenAI`` with ``assistants``; ``copy``/``with_options`` keep the class."""

    @cached_property
    def assistants(self) -> AsyncAssistants:
        return AsyncAssistants(self)
