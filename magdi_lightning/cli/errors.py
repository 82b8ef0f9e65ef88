"""How the command-line tools end on a mistake the user can fix: one paragraph, exit code 2.

A wrong value, a malformed data file or a missing path is not a bug, so it must not end in a
traceback (Hydra prints one for any exception escaping the task function). Wrap the body of
a CLI's task function in :func:`user_errors`; set ``HYDRA_FULL_ERROR=1`` to get the full
traceback anyway.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.errors import InstantiationException

from magdi_lightning.errors import RecordError, UserError
from magdi_lightning.runtime.runs import ResumeError

__all__ = ["USAGE_ERROR", "user_errors"]

#: Exit code of a run that stopped on a user error (the code argparse uses for bad usage).
USAGE_ERROR = 2


#: What :func:`user_errors` reports as a user error rather than a bug.
_USER_ERRORS: tuple[type[BaseException], ...] = (UserError, RecordError, ResumeError,
                                                  FileNotFoundError)


@contextmanager
def user_errors(prog: str) -> Iterator[None]:
    """Turn a user error raised inside the block into ``prog: error: ...`` and exit code 2."""
    try:
        yield
    except (*_USER_ERRORS, InstantiationException) as err:
        # hydra.utils.instantiate wraps what a constructor raised: report the user error.
        cause = err.__cause__ if isinstance(err, InstantiationException) else err
        if not isinstance(cause, _USER_ERRORS) or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"{prog}: error: {cause}", file=sys.stderr)
        raise SystemExit(USAGE_ERROR) from None
