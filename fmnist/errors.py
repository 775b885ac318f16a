"""User-facing errors: one line that says what is wrong and how to fix it. Every subpackage raises them, so
this module stays a leaf.

Never imports: tensorflow, keras, fmnist.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class UserError(Exception):
    """Bad input from the user (config, data, workdir): reported as one line, exit code 2."""

    exit_code = 2


class ConfigError(UserError):
    """A config key or value that cannot work."""


class DataError(UserError):
    """Missing, corrupt or unreadable data."""


class TrainingError(UserError):
    """Training cannot go on (repeated non-finite loss): exit code 3."""

    exit_code = 3


class LeaseLost(UserError):
    """Another run took the workdir over: every worker stopped at one loop boundary, writing nothing more (code 4)."""

    exit_code = 4


class Interrupted(UserError):
    """Stopped by SIGTERM/SIGINT after saving a checkpoint: exit code 143, like a plain SIGTERM."""

    exit_code = 143


EXIT_USER_ERROR = 2


def exit_on_user_error(fn: Callable[..., T]) -> Callable[..., T]:
    """Runs `fn`; a UserError becomes one line on stderr and exit code 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            print(f"fmnist: {'stopped' if isinstance(e, Interrupted) else 'error'}: {e}", file=sys.stderr, flush=True)
            sys.exit(e.exit_code)

    return wrapper
