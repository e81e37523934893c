"""The filter language over leads: saved views use it, and any later feature that selects
leads by their fields (workflow-rule conditions) reuses it as is. A filter is a tree:

    {"op": "and" | "or", "conditions": [node, …]}                    a group
    {"field": F, "op": "equals" | "contains" | "starts_with", "value": v}
    {"field": F, "op": "is_empty"}
    {"field": F, "op": "in", "value": [v, …]}                         1 to 1000 values
    {"field": F, "op": "between", "value": [low, high]}

F is a standard lead field (`company`), the lead's `status` or `source`, or a custom field
(`custom:<key>`). Each operator is its
own model, told apart by `op` (a discriminated union), so a node of the wrong shape or type
is refused where the request is read, never in SQL. Standard fields hold text and take text
values; a custom field's values are checked against its type where the filter runs, since
that type is the organisation's data.

Pydantic models rather than dataclasses: this is the one definition of the language, and
the API publishes it as JSON Schema from here.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from crm.domain.drafts import LEAD_FIELDS
from crm.domain.rules import CUSTOM_FIELD_KEY

MAX_DEPTH = 5  # groups inside groups
MAX_CONDITIONS = 100  # nodes in one group
MAX_VALUES = 1000  # values of one `in`
MAX_TEXT = 1000

SORTABLE: tuple[str, ...] = (*LEAD_FIELDS, "created_at", "updated_at", "id")
CUSTOM_PREFIX = "custom:"

FieldName = Annotated[str, Field(pattern=rf"^(?:{'|'.join(LEAD_FIELDS)}|{CUSTOM_PREFIX}{CUSTOM_FIELD_KEY})$", description="a lead field, or custom:<key>")]
# What a filter may also select on: the stage and where the lead came from (not editable
# fields, so not a FieldName a web form could write).
FILTERED: tuple[str, ...] = (*LEAD_FIELDS, "status", "source")
FilterField = Annotated[str, Field(pattern=rf"^(?:{'|'.join(FILTERED)}|{CUSTOM_PREFIX}{CUSTOM_FIELD_KEY})$", description="a lead field, status, source, or custom:<key>")]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Value = Text | Number


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Condition(_Node):
    field: FilterField

    @property
    def custom_key(self) -> str | None:
        """The key of the custom field this condition is on, or None for a standard field."""
        return self.field[len(CUSTOM_PREFIX) :] if self.field.startswith(CUSTOM_PREFIX) else None

    def values(self) -> list[str | float]:
        return []

    @model_validator(mode="after")
    def _text_for_standard_fields(self) -> _Condition:
        if self.custom_key is None and any(not isinstance(v, str) for v in self.values()):
            raise ValueError(f"{self.field} holds text: its values must be strings")
        return self


class Equals(_Condition):
    op: Literal["equals"]
    value: Value

    def values(self) -> list[str | float]:
        return [self.value]


class TextMatch(_Condition):
    """contains / starts_with: a text pattern, matched literally (no wildcards)."""

    op: Literal["contains", "starts_with"]
    value: Text

    def values(self) -> list[str | float]:
        return [self.value]


class IsEmpty(_Condition):
    op: Literal["is_empty"]
    value: None = None  # accepted for clients that always send one


class In(_Condition):
    op: Literal["in"]
    value: list[Value] = Field(min_length=1, max_length=MAX_VALUES)

    def values(self) -> list[str | float]:
        return list(self.value)


class Between(_Condition):
    op: Literal["between"]
    value: tuple[Value, Value]

    def values(self) -> list[str | float]:
        return list(self.value)


class Group(_Node):
    op: Literal["and", "or"]
    conditions: list[Filter] = Field(min_length=1, max_length=MAX_CONDITIONS)

    @model_validator(mode="after")
    def _bounded_depth(self) -> Group:
        if height(self) > MAX_DEPTH:
            raise ValueError(f"filters nest at most {MAX_DEPTH} levels")
        return self


Condition = Equals | TextMatch | IsEmpty | In | Between
Filter = Annotated[Group | Equals | TextMatch | IsEmpty | In | Between, Field(discriminator="op")]
Group.model_rebuild()


class SortKey(_Node):
    field: str = Field(pattern=rf"^(?:{'|'.join(SORTABLE)})$")
    desc: bool = False


DEFAULT_SORT = (SortKey(field="created_at", desc=True),)
FILTER = TypeAdapter(Filter)
SORT = TypeAdapter(list[SortKey])


def height(node: Filter) -> int:
    """Levels of groups in `node` (0 for a single condition)."""
    if isinstance(node, Group):
        return 1 + max(height(child) for child in node.conditions)
    return 0
