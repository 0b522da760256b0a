"""The sandbox that user-written templates run in, with a time and size budget per render.

Jinja's `ImmutableSandboxedEnvironment` keeps a template out of Python internals
(`{{ ''.__class__ }}`) and away from mutating data; it does not bound the work a template does.
Why the budget is checked *inside* the render and not by a watchdog thread: a thread cannot be
killed, so a render abandoned after a timeout would keep burning the worker's CPU (and the GIL)
until it finishes by itself, which for nested loops is hours. Instead each render carries a
`_Budget` (in a context variable, so concurrent renders in threads or tasks do not share it) and
the template is made to consult it at every point where work can pile up:

- every `{% for %}` iterates through a guard (the parsed template is rewritten before compiling)
  that counts iterations and checks the deadline: an endless loop stops at the first check past
  the limit, within a few microseconds of it;
- every printed piece is counted, also inside `{% set %}` blocks and macros that are never
  printed, so buffered output cannot grow without bound;
- every call, filter, intercepted operator (`+ * % **`), `~` and literal list/dict is checked
  against the deadline and its result against the size cap;
- the few single operations that can allocate far more than their inputs in C, where no check
  can interrupt them (`'x' * n`, `center(n)`, `'%999999999d'`, `replace('', big)`, `join`
  over many big items, `sum` over lists), are refused *before* they run.

What remains possible: a single C-level operation on inputs that all passed the caps (at most
`max_output_chars` each) runs to completion before the next check, so a render can overshoot the
time limit by one such operation (milliseconds). A process boundary would bound even that, at the
cost of a fork per render; not worth it for templates written by the workspace's own users.
"""

from __future__ import annotations

import functools
import re
import time
import types
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from jinja2 import StrictUndefined, Template, nodes, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from orchestrator.rendering.errors import RenderErrorCode

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """Per-render budget. `clock` reads this thread's CPU seconds: a render is synchronous, so
    that is the template's own cost, and a worker descheduled on busy cores (or the wall clock
    jumping) never fails a trivial template with `timeout` (seen at 1 in 100,000 sends under
    load with `time.monotonic`). Tests pass a fake one."""

    time_limit: float = 0.5
    max_output_chars: int = 256 * 1024
    max_loop_iterations: int = 100_000
    max_source_chars: int = 64 * 1024
    clock: Callable[[], float] = field(default=time.thread_time)

    @property
    def max_value_chars(self) -> int:
        """One intermediate value (a string, or a list as it would print)."""
        return self.max_output_chars

    @property
    def max_produced_chars(self) -> int:
        """Everything printed, buffered blocks included; a block printed twice counts twice."""
        return 4 * self.max_output_chars


DEFAULT_LIMITS: Final = RenderLimits()

# Names a template cannot spell (they contain a space), so a user cannot call the guards.
_LOOP_GUARD: Final = "loop guard"
_OUTPUT_GUARD: Final = "output guard"
_VALUE_GUARD: Final = "value guard"

_MAX_EXPONENT_BITS: Final = 64 * 1024


class LimitExceeded(BaseException):
    """Raised by the guards. A `BaseException` so that no `except Exception` inside Jinja's
    runtime or a filter can swallow it; `render_guarded` callers catch it at the boundary."""

    def __init__(self, code: RenderErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: RenderErrorCode = code
        self.message = message


class _Budget:
    __slots__ = ("deadline", "iterations_left", "limits", "output_left", "produced_left")

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.deadline = limits.clock() + limits.time_limit
        self.iterations_left = limits.max_loop_iterations
        self.produced_left = limits.max_produced_chars
        self.output_left = limits.max_output_chars

    def tick(self) -> None:
        if self.limits.clock() > self.deadline:
            raise LimitExceeded(
                "timeout", f"rendering took longer than {self.limits.time_limit:g} s"
            )

    def iterate(self) -> None:
        self.iterations_left -= 1
        if self.iterations_left < 0:
            raise LimitExceeded(
                "too_large",
                f"loops ran more than {self.limits.max_loop_iterations} iterations in all",
            )
        self.tick()

    def produce(self, size: int) -> None:
        self.produced_left -= size
        if self.produced_left < 0:
            raise LimitExceeded(
                "too_large",
                f"the template produced more than {self.limits.max_produced_chars} characters",
            )

    def emit(self, size: int) -> None:
        self.output_left -= size
        if self.output_left < 0:
            raise LimitExceeded(
                "too_large", f"the output is longer than {self.limits.max_output_chars} characters"
            )
        self.tick()

    def allow(self, size: int) -> None:
        if size > self.limits.max_value_chars:
            raise LimitExceeded(
                "too_large",
                f"a value would be longer than {self.limits.max_value_chars} characters",
            )

    def checked(self, value: _T) -> _T:
        self.tick()
        self.allow(_weight(value, self.limits.max_value_chars))
        return value


_BUDGET: ContextVar[_Budget] = ContextVar("render_budget")


def _budget() -> _Budget:
    return _BUDGET.get()


def _weight(value: object, limit: int) -> int:
    """Roughly how many characters `value` prints as, counted only until `limit` is passed."""
    if isinstance(value, str):
        return len(value)
    children: Iterable[object]
    if isinstance(value, Mapping):
        children = (item for pair in value.items() for item in pair)
    elif isinstance(value, list | tuple | set | frozenset):
        children = value
    else:
        return 1
    total = len(value)
    for child in children:
        total += _weight(child, limit - total)
        if total > limit:
            break
    return total


# --- refusing amplifying operations before they run ---------------------------------------------

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_SPEC = re.compile(r"\{[^{}]*:([^{}]*)(\{)?")
_DIGITS = re.compile(r"\d+")


def _check_percent_format(fmt: str, limit: int) -> None:
    for width, precision in _PERCENT_SPEC.findall(fmt):
        for number in (width, precision):
            if number == "*" or (number and int(number) > limit):
                raise LimitExceeded("too_large", "format widths are limited")


def _check_brace_format(fmt: str, limit: int) -> None:
    for spec, nested in _BRACE_SPEC.findall(fmt):
        if nested or any(int(digits) > limit for digits in _DIGITS.findall(spec)):
            raise LimitExceeded("too_large", "format widths are limited")


def _argument(args: Sequence[Any], kwargs: Mapping[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def _size_argument(args: Sequence[Any], kwargs: Mapping[str, Any], index: int, name: str) -> int:
    value = _argument(args, kwargs, index, name)
    return value if isinstance(value, int) else 0


def _replace_size(text: str, old: object, new: object) -> int:
    if not isinstance(old, str) or not isinstance(new, str) or len(new) <= len(old):
        return len(text)
    hits = text.count(old) if old else len(text) + 1
    return len(text) + hits * (len(new) - len(old))


def _precheck(
    budget: _Budget, name: str, subject: Any, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> None:
    """`subject` is the filter's value or the string a method is bound to."""
    limit = budget.limits.max_value_chars
    if name in {"center", "ljust", "rjust", "zfill"}:
        budget.allow(_size_argument(args, kwargs, 0, "width"))
    elif name == "expandtabs" and isinstance(subject, str):
        size = _size_argument(args, kwargs, 0, "tabsize")
        budget.allow(len(subject) + subject.count("\t") * size)
    elif name == "indent" and isinstance(subject, str):
        width = _argument(args, kwargs, 0, "width")
        step = len(width) if isinstance(width, str) else _size_argument(args, kwargs, 0, "width")
        budget.allow(len(subject) + (subject.count("\n") + 1) * step)
    elif name == "slice":
        budget.allow(_size_argument(args, kwargs, 0, "slices"))
    elif name == "replace" and isinstance(subject, str):
        old = _argument(args, kwargs, 0, "old")
        new = _argument(args, kwargs, 1, "new")
        budget.allow(_replace_size(subject, old, new))
    elif name == "format" and isinstance(subject, str):
        _check_percent_format(subject, limit)
        _check_brace_format(subject, limit)
    elif name == "sum":
        start = _argument(args, kwargs, 1, "start")
        if start is not None and not isinstance(start, int | float):
            raise LimitExceeded("forbidden", "sum adds numbers only")


def _precheck_join(budget: _Budget, separator: object, items: Sequence[Any]) -> None:
    limit = budget.limits.max_value_chars
    size = len(separator) * max(len(items) - 1, 0) if isinstance(separator, str) else 0
    budget.allow(size)
    for item in items:
        size += _weight(item, limit - size)
        budget.allow(size)


# --- the guards the rewritten template calls ---------------------------------------------------


@pass_context  # never folded into a constant at compile time, when no budget exists
def _loop_guard(_context: Context, iterable: Iterable[Any]) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.iterate()
        yield item


@pass_context
def _output_guard(_context: Context, value: Any) -> Any:
    budget = _budget()
    budget.produce(len(value) if isinstance(value, str) else _weight(value, budget.produced_left))
    budget.tick()
    return value


@pass_context
def _value_guard(_context: Context, value: Any) -> Any:
    return _budget().checked(value)


class _InsertGuards(NodeTransformer):
    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _guarded(_LOOP_GUARD, node.iter)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_guarded(_OUTPUT_GUARD, child) for child in node.nodes]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _guarded(_VALUE_GUARD, node)

    def visit_List(self, node: nodes.List) -> nodes.Node:
        self.generic_visit(node)
        return _guarded(_VALUE_GUARD, node)

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        self.generic_visit(node)
        return _guarded(_VALUE_GUARD, node)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        self.generic_visit(node)
        # A tuple in store context is an unpacking target (`for a, b in ...`), not a value.
        return _guarded(_VALUE_GUARD, node) if node.ctx == "load" else node


def _guarded(name: str, node: nodes.Node) -> nodes.Expr:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a built-in filter; `functools.wraps` copies Jinja's pass-argument marker, so the
    wrapper receives the same leading context/environment argument the filter expects."""
    passes_leading = hasattr(func, "jinja_pass_arg")

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.tick()
        leading = 1 if passes_leading else 0
        value, rest = args[leading], args[leading + 1 :]
        if name == "join":
            value = value if isinstance(value, Sequence) else list(value)
            separator = _argument(rest, kwargs, 0, "d")
            _precheck_join(budget, "" if separator is None else separator, value)
            args = (*args[:leading], value, *rest)
        else:
            _precheck(budget, name, value, rest, kwargs)
        return budget.checked(func(*args, **kwargs))

    return guarded


def _bound_string_method(obj: Any) -> tuple[str, str] | None:
    """The method name and bound string of `'...'.method`, seeing through the sandbox's
    wrapper around `str.format`."""
    method = getattr(obj, "__wrapped__", obj)
    if isinstance(method, types.BuiltinMethodType | types.MethodType):
        bound = getattr(method, "__self__", None)
        if isinstance(bound, str):
            return method.__name__, bound
    return None


class GuardedSandbox(ImmutableSandboxedEnvironment):
    """`ImmutableSandboxedEnvironment` whose calls and operators spend the render's budget."""

    intercepted_binops = frozenset({"+", "*", "%", "**"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape, undefined=StrictUndefined, auto_reload=False)
        # Lorem ipsum has no place in a campaign and `lipsum(n=10**9)` would only be a hazard.
        del self.globals["lipsum"]
        self.filters = {name: _guard_filter(name, func) for name, func in self.filters.items()}
        self.filters[_LOOP_GUARD] = _loop_guard
        self.filters[_OUTPUT_GUARD] = _output_guard
        self.filters[_VALUE_GUARD] = _value_guard

    def guard(self, template: nodes.Template) -> nodes.Template:
        guarded = _InsertGuards().visit(template)
        assert isinstance(guarded, nodes.Template)
        guarded.set_environment(self)
        return guarded

    def call(
        __self,  # Jinja's own signature: the dunder names keep `**kwargs` free of clashes
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        budget = _budget()
        budget.tick()
        method = _bound_string_method(__obj)
        if method is not None:
            name, bound = method
            if name == "join" and args:
                items = args[0] if isinstance(args[0], Sequence) else list(args[0])
                _precheck_join(budget, bound, items)
                args = (items, *args[1:])
            else:
                _precheck(budget, name, bound, args, kwargs)
        return budget.checked(super().call(__context, __obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.tick()
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(times, int) and not isinstance(sequence, int | float):
                    weight = _weight(sequence, budget.limits.max_value_chars)
                    budget.allow(weight * max(times, 0))
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if left.bit_length() * right > _MAX_EXPONENT_BITS:
                raise LimitExceeded("too_large", "the power is too large")
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left, budget.limits.max_value_chars)
        return budget.checked(super().call_binop(context, operator, left, right))


def compile_guarded(environment: GuardedSandbox, source: str) -> Template:
    """Parse, insert the guards, compile. Raises Jinja's `TemplateSyntaxError` family."""
    return environment.from_string(environment.guard(environment.parse(source)))


def render_guarded(
    template: Template, variables: Mapping[str, object], limits: RenderLimits
) -> str:
    """Render `template` (from `compile_guarded`) under a fresh budget. Raises `LimitExceeded`
    or whatever the template raised (`UndefinedError`, `SecurityError`, `TypeError`...)."""
    budget = _Budget(limits)
    token = _BUDGET.set(budget)
    stream = template.generate(variables)
    assert isinstance(stream, Generator)  # closed below if a limit stops the render midway
    try:
        chunks: list[str] = []
        for chunk in stream:
            budget.emit(len(chunk))
            chunks.append(chunk)
        return "".join(chunks)
    finally:
        stream.close()
        _BUDGET.reset(token)
