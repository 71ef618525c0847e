"""The command line's exit statuses and its SIGTERM exception, shared by every subcommand."""

from __future__ import annotations

__all__ = ["EXIT_INTERRUPTED", "EXIT_TERMINATED", "EXIT_USAGE", "Terminated"]

#: a bad command line, configuration or input (argparse's status too)
EXIT_USAGE = 2
#: stopped by Ctrl-C (128 + SIGINT): finished units are kept
EXIT_INTERRUPTED = 130
#: stopped by SIGTERM (128 + SIGTERM): finished units are kept
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread: the run stops as on Ctrl-C (finished units kept)."""
