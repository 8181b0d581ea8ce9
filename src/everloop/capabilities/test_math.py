"""Capability ``test_math``: four arithmetic tools, used to exercise tool calling in tests."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from everloop.capabilities.base import Capability, SideEffect, ToolContext, ToolError
from everloop.domain.messages import JsonObject, JsonValue

_PARAMETERS: JsonObject = {
    "type": "object",
    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}


def _divide(a: float, b: float) -> float:
    if b == 0:
        raise ToolError("division by zero")
    return a / b


@dataclass(frozen=True, slots=True)
class ArithmeticTool:
    """Tool ``{a: number, b: number} -> {"result": x}`` for one binary operation."""

    name: str
    description: str
    operation: Callable[[float, float], float] = field(repr=False)
    parameters: JsonObject = field(default_factory=lambda: dict(_PARAMETERS))
    side_effect: ClassVar[SideEffect] = SideEffect.PURE

    async def call(self, arguments: JsonObject, context: ToolContext) -> JsonValue:
        a, b = arguments["a"], arguments["b"]
        assert isinstance(a, int | float) and isinstance(b, int | float)  # schema-checked
        result = self.operation(a, b)
        if not math.isfinite(result):
            raise ToolError("result is not a finite number")
        return {"result": result}


def build_test_math_capability() -> Capability:
    return Capability(
        id="test_math",
        name="Test math",
        description="Basic arithmetic tools (add, subtract, multiply, divide) for testing.",
        category="testing",
        tools=(
            ArithmeticTool("add", "Add two numbers: a + b.", operator.add),
            ArithmeticTool("subtract", "Subtract two numbers: a - b.", operator.sub),
            ArithmeticTool("multiply", "Multiply two numbers: a * b.", operator.mul),
            ArithmeticTool("divide", "Divide two numbers: a / b.", _divide),
        ),
    )
