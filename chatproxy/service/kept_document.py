"""Own what a chat document's item keeps as it came, beside its message:

- its `response`: what a reply keeps of the Responses request that asked for it
  (`placing.Kept`), which `GET /v1/responses/{id}` echoes. A request's own are checked by its
  route; an imported one is checked here, so that a Response built from it is one the SDKs read
  (a time as a number, `tools` a list, ...);
- its `tokens` (`Tokens`): the counts of a reply's usage and their breakdowns, as the model
  provider named them, held to what `upstream.answers.usage_counts` keeps.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from chatproxy.tokens import (
    MAX_DETAIL_NAME,
    MAX_DETAILS,
    MAX_TOKEN_COUNT,
    USAGE_DETAILS,
    is_count,
)


def _usage(value: dict[str, Any]) -> dict[str, Any]:
    """A reply's `tokens` as `usage_counts` keeps them: counts, and the breakdowns (by their
    names) objects of at most MAX_DETAILS counts."""
    for name, entry in value.items():
        if name not in USAGE_DETAILS:
            if not is_count(entry):
                raise ValueError(f"{name}: must be a count from 0 to {MAX_TOKEN_COUNT}")
        elif not isinstance(entry, dict) or len(entry) > MAX_DETAILS:
            raise ValueError(f"{name}: must be an object of at most {MAX_DETAILS} counts")
        elif not all(is_count(n) and len(k) <= MAX_DETAIL_NAME for k, n in entry.items()):
            raise ValueError(f"{name}: each must be a count, named in {MAX_DETAIL_NAME} characters")
    return value


Tokens = Annotated[dict[str, Any], AfterValidator(_usage)]  # the counts and their breakdowns


class KeptDoc(BaseModel):
    """The kept settings by the type a Response gives them; others are kept as they are (none
    is echoed)."""

    model_config = ConfigDict(extra="allow", strict=True)

    created_at: float | None = None
    input_first: int | None = Field(default=None, ge=0)
    previous_response_id: str | None = None
    conversation: str | None = None
    instructions: str | list[Any] | None = None
    metadata: dict[str, str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    truncation: str | None = None
    store: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    reasoning: dict[str, Any] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    top_logprobs: int | None = None
    prompt_cache_key: str | None = None

    @field_validator("created_at")
    @classmethod
    def _time(cls, value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and 0 <= value < 2**53):
            raise ValueError("must be a time in seconds (a finite number, at least 0)")
        return value
