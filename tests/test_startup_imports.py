"""What ``chatopsbot run`` imports at startup: nothing only another command or a cron job needs.

Every module a bot process imports stays resident for its life (issue #18: idle RSS under
50 MB); these are the ones that once crept in, or would be easy to pull in again.
"""

from __future__ import annotations

import subprocess
import sys

#: Modules an idle bot without cron jobs never uses, and what each costs if imported anyway.
NOT_AT_STARTUP = (
    "croniter",  # and dateutil, ctypes: ~1 MiB; imported by the first cron job
    "difflib",  # ~150 KiB; a typo's "did you mean" imports it
    "chatopsbot.console",  # chatopsbot console
    "chatopsbot.shell",  # chatopsbot shell
    "chatopsbot.demo",  # chatopsbot demo
    "chatopsbot.zoom.fake",  # the shell's, console's and tests' fake Zoom
    "chatopsbot.testing",  # the plugin authors' test kit
)

# What `chatopsbot run` imports before it serves: the CLI, the default storage backend and
# every installed plugin, found the way load_plugins finds them.
PROBE = f"""
import importlib.metadata, sys
import chatopsbot.cli, chatopsbot.storage.sqlite
for entry in importlib.metadata.entry_points(group="chatopsbot"):
    entry.load()
print(" ".join(name for name in {NOT_AT_STARTUP!r} if name in sys.modules))
"""


def test_run_startup_imports_no_module_only_other_commands_need():
    found = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.split() == []
