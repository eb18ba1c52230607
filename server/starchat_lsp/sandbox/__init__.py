"""Run a model's Python code and tests in a separate, limited process: the checked-fix pipeline
(`verify`) runs every candidate fix here, and the eval harness every answer.

The child gets a fresh temporary folder, a wall-clock and CPU time limit, a memory limit, a cap on
file sizes, no network (its own empty network namespace when `unshare -rn` works, and always an
audit hook that refuses sockets and new processes), no files outside its folder but Python's own
and the system's shared data (the same hook: reading ~/.ssh or the workspace is refused, writing
anywhere else too), and its own process group so that everything it starts dies with it. Model
output never runs in the caller's process. `runner` starts and judges the child; `child_program`
is what the child runs.
"""

from starchat_lsp.sandbox.runner import (
    STATUSES,
    CheckResult,
    Limits,
    network_namespace_works,
    run_python_tests,
)

__all__ = ["STATUSES", "CheckResult", "Limits", "network_namespace_works", "run_python_tests"]
