"""Structured logs: one event name, key=value context, request id and actor.

Never amounts as floats, never beneficiary data: flows log ids and codes only.
Tracebacks are plain: the console renderer's default (rich) prints every
frame's local variables, and a request handler's locals hold the request
headers (the bearer token) and the body (beneficiary references).

Database errors are logged without the values they quote: PostgreSQL's DETAIL
echoes the row ("Key (code)=(V-...) already exists", "Failing row contains
(..., beneficiary_ref, ...)"), and a message may quote an input value
('invalid input syntax for type uuid: "..."'); asyncpg's own encoding errors
quote the query argument. The SQLSTATE class, the constraint's name (in the
message) and the frames stay: enough to find the bug, nothing a family owns.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from typing import Any, TextIO

import asyncpg
import structlog

# 'invalid input syntax for type uuid: "x"', 'invalid input value for enum state: "x"'
_QUOTED_VALUE = re.compile(r'(:\s*)"(?:[^"\\]|\\.)*"')
# asyncpg: "invalid input for query argument $1: 'the value' (expected str, got int)"
_ARGUMENT_VALUE = re.compile(r"(query argument \$\d+:).*", re.DOTALL)


def _scrubbed_message(exc_type: type[BaseException], text: str) -> str:
    if issubclass(exc_type, asyncpg.PostgresError):
        text = text.split("\nDETAIL:", 1)[0].split("\nHINT:", 1)[0]
        return _QUOTED_VALUE.sub(r'\1"<redacted>"', text)
    if issubclass(exc_type, asyncpg.InterfaceError):
        return _ARGUMENT_VALUE.sub(r"\1 <redacted>", text)
    return text


def format_exception_safely(exc_info: Any) -> str:
    """The plain traceback of ``exc_info`` (frames, no locals), database errors' values redacted."""
    te = traceback.TracebackException(*exc_info)
    pending: list[traceback.TracebackException] = [te]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if current.exc_type is not None:
            current._str = _scrubbed_message(current.exc_type, current._str)  # type: ignore[attr-defined]
        pending.extend(x for x in (current.__cause__, current.__context__) if x is not None)
        pending.extend(getattr(current, "exceptions", None) or [])
    return "".join(te.format()).rstrip("\n")


def _console_traceback(sio: TextIO, exc_info: Any) -> None:
    sio.write("\n" + format_exception_safely(exc_info))


def configure_logging(fmt: str = "console", level: str = "info") -> None:
    """structlog for our own lines; the standard logging module (uvicorn, asyncpg, litestar)
    goes through the same renderer, so a production log is one JSON object per line."""
    lvl = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: list[Any]
    if fmt == "json":
        renderer = [
            structlog.processors.ExceptionRenderer(format_exception_safely),
            structlog.processors.JSONRenderer(),
        ]
    else:
        renderer = [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), exception_formatter=_console_traceback)]
    structlog.configure(
        processors=shared + renderer,
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(lvl)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # uvicorn's loggers reach the root handler even where uvicorn's own dictConfig ran
    # before (it gives them handlers and stops their propagation)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True
    # libraries speak from warnings up; uvicorn sets its own loggers' levels (its startup lines)
    root.setLevel(max(lvl, logging.WARNING))


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
