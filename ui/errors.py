"""Turn domain errors into messages on the page: never a stack trace in front of a class."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from pipelines.errors import SwapSpotError

log = logging.getLogger("swapspot")
F = TypeVar("F", bound=Callable[..., Any])

UNEXPECTED = (
    "Something went wrong on our side while doing that. Please try again; if it keeps happening, "
    "tell the person running this app (the details are in its console)."
)


def user_errors(fn: F) -> F:
    """Decorator for event handlers: `SwapSpotError` -> its message; anything else -> a calm generic one."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except SwapSpotError as error:
            raise gr.Error(str(error), print_exception=False) from None
        except Exception:
            log.exception("unexpected error in %s", getattr(fn, "__name__", "handler"))
            raise gr.Error(UNEXPECTED, print_exception=False) from None

    return wrapper  # type: ignore[return-value]
