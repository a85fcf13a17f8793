"""What every command shares: options, settings from flags/env/.env, the async runner, errors → exit codes.

Only the CLI reads ``os.environ``, loads ``.env``, imports click/rich, prints and picks exit codes.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click

from litellm_usersync.errors import (
    AuthError,
    ConfigError,
    CsvError,
    InputError,
    ProxyError,
    RefusedError,
    UnavailableError,
    UsersyncError,
)
from litellm_usersync.masking import mask_text
from litellm_usersync.models import RunReport
from litellm_usersync.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_CONCURRENCY,
    DEFAULT_TIMEOUT_S,
    ClientSettings,
)
from litellm_usersync.usecases import Hooks

F = TypeVar("F", bound=Callable[..., Any])


class ExitCode(enum.IntEnum):
    """The documented exit codes. Only the CLI knows them."""

    OK = 0  #: everything applied, or nothing to do
    FAILED = 1  #: some rows failed; the others were applied and reported
    UNUSABLE = 2  #: nothing could be done: usage/input/config error, bad credentials, proxy unreachable
    REFUSED = 3  #: a safety brake refused the run; nothing changed
    INTERRUPTED = 130  #: stopped by SIGINT/SIGTERM; what ran is reported


class CliExit(click.exceptions.Exit):
    pass


def load_dotenv_once() -> None:
    """Read ``.env`` from the working directory only (like the seed); real environment variables win.

    Never from a parent directory: a ``.env`` further up (a home folder, another project) must not point the
    run at another proxy or give it another key.
    """
    try:
        from dotenv import load_dotenv
    except ImportError:  # pragma: no cover - dotenv is a hard dependency
        return
    path = os.path.join(os.getcwd(), ".env")
    if os.path.isfile(path):
        load_dotenv(path, override=False)


@dataclass
class Context:
    """What the group puts in ``click.Context.obj``. Tests inject a transport here."""

    transport: Any = None
    sleep: Callable[[float], Awaitable[None]] | None = None


def common_options(f: F) -> F:
    """``--base-url``, ``--master-key``, ``--debug``, ``--concurrency``, ``--timeout``, ``--bulk``."""
    decorators = [
        click.option(
            "--base-url",
            envvar="LITELLM_BASE_URL",
            default=DEFAULT_BASE_URL,
            show_default=True,
            help="LiteLLM Proxy server base URL (env LITELLM_BASE_URL).",
        ),
        click.option(
            "--master-key",
            envvar="LITELLM_MASTER_KEY",
            default=None,
            help="Master key (default: env LITELLM_MASTER_KEY, also read from .env).",
        ),
        click.option(
            "--debug",
            is_flag=True,
            help="On stderr: why each user is in the plan and each step (commands that plan), then every "
            "request and response (secrets masked).",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 64),
            default=DEFAULT_CONCURRENCY,
            show_default=True,
            help="Requests in flight at once.",
        ),
        click.option(
            "--timeout",
            "timeout_s",
            type=click.FloatRange(1, 600),
            default=DEFAULT_TIMEOUT_S,
            show_default=True,
            help="Seconds to wait for one response.",
        ),
        click.option(
            "--bulk/--no-bulk",
            default=True,
            show_default=True,
            help="Use the proxy's batch endpoints when it has them (LiteLLM >= 1.100).",
        ),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def build_settings(
    base_url: str, master_key: str | None, concurrency: int, timeout_s: float, bulk: bool
) -> ClientSettings:
    if not master_key:
        raise ConfigError(
            "no master key: pass --master-key, set LITELLM_MASTER_KEY, or put LITELLM_MASTER_KEY=... in .env"
        )
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"--base-url must start with http:// or https:// (got {base_url!r})")
    return ClientSettings(
        base_url=base_url,
        master_key=master_key,
        concurrency=concurrency,
        timeout_s=timeout_s,
        bulk="auto" if bulk else "never",
    )


class _EchoHandler(logging.Handler):
    """Log records as plain lines on the *current* stderr (a progress bar redirects it: lines go above the bar),
    every ``sk-…`` key masked (the one masker), whichever module logged it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(mask_text(self.format(record)), err=True)
        except Exception:  # pragma: no cover - logging must never break a run
            self.handleError(record)


def setup_logging(debug: bool) -> None:
    """``--debug``: everything on stderr, timestamped. Without it: warnings, and the one line per retry
    (``retrying (2/5) in 1.0 s: ...``) so that waiting on a dead proxy is never silent."""
    root = logging.getLogger("litellm_usersync")
    root.handlers.clear()
    retry = logging.getLogger("litellm_usersync.retry")
    retry.handlers.clear()
    retry.propagate = True
    if debug:
        handler = _EchoHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
    else:
        root.setLevel(logging.WARNING)
        root.addHandler(_EchoHandler())  # warnings: masked too (not Python's unmasked last-resort handler)
        retry.setLevel(logging.INFO)
        retry.addHandler(_EchoHandler())
        retry.propagate = False


def make_hooks(debug: bool, *, say: Callable[[str], None] | None = None, **given: Any) -> Hooks[Any]:
    """The use cases' hooks as the CLI fills them: notices on stdout (``say``) and stderr, a progress bar on a
    terminal (none with ``--debug``: the log lines are the progress), the signal messages, and the transport
    the tests inject through the click context."""
    from ._progress import progress_bar

    ctx = click.get_current_context(silent=True)
    obj = ctx.find_object(Context) if ctx else None
    return Hooks(
        say=say or out,
        warn=err,
        progress=lambda enabled: progress_bar(enabled and not debug),
        signalled=on_signal,
        transport=obj.transport if obj else None,
        sleep=obj.sleep if obj else None,
        **given,
    )


def on_signal(sig: signal.Signals, second: bool) -> None:
    """What a person sees on SIGINT/SIGTERM: the bar frozen, what happens next, how to abort."""
    from ._progress import freeze_progress_bars

    freeze_progress_bars()  # a bar that keeps redrawing would overwrite what follows
    if second:
        err("Second signal: stopping now; writing the API keys received so far.")
        return
    again = "press Ctrl-C again to abort" if sig == signal.SIGINT else f"send {sig.name} again to abort"
    err(f"\n{sig.name} received: finishing the requests in flight, then writing the report ({again}).")


def err(text: str) -> None:
    click.echo(text, err=True)


def out(text: str = "") -> None:
    click.echo(text)


def stdout_is_tty() -> bool:
    """A person is reading stdout (plans are grouped and truncated, colour is on)."""
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def colour_enabled(*, err: bool = False) -> bool:
    """Colour only on a terminal, and never with ``NO_COLOR`` set to anything (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    return stderr_is_tty() if err else stdout_is_tty()


_MARK_COLOURS = {"+ ": "green", "- ": "red", "~ ": "yellow", "✓ ": "green"}


def colourize(text: str) -> str:
    """Colour a rendered plan or result by each line's mark: ``+`` green, ``-`` red, ``~`` yellow, ``✗`` bold.

    Only the CLI styles text; the renderers stay plain (and so do pipes, files and ``NO_COLOR``).
    """
    lines = []
    for line in text.split("\n"):
        body = line.lstrip(" ")
        indent = line[: len(line) - len(body)]
        colour = _MARK_COLOURS.get(body[:2])
        cut = body.find("✗")
        head, tail = (body[:cut], body[cut:]) if cut >= 0 else (body, "")
        styled = click.style(head, fg=colour) if colour and head else head
        if tail:
            styled += click.style(tail, bold=True)
        lines.append(indent + styled)
    return "\n".join(lines)


def out_marked(text: str = "") -> None:
    """``out`` for plan and result lines: coloured by their marks on a terminal, plain otherwise."""
    if colour_enabled():
        click.echo(colourize(text), color=True)
    else:
        click.echo(text)


def plan_limit(show_all: bool) -> int | None:
    """How many users of each kind a plan lists: all when piped (a file or grep wants every line) or with
    ``--show-all``; the first ``TTY_LISTED`` on a terminal."""
    from litellm_usersync.render.report import TTY_LISTED

    return None if show_all or not stdout_is_tty() else TTY_LISTED


def show_all_option(f: F) -> F:
    return click.option(
        "--show-all",
        is_flag=True,
        help="List every user of the plan on a terminal too (by default a terminal shows the first "
        "20 of each kind and the counts; piped output always lists all).",
    )(f)


@contextlib.contextmanager
def handle_errors(debug: bool, *, unusable: int = ExitCode.UNUSABLE) -> Iterator[None]:
    """Turn our exceptions into one ``Error: ...`` line and the right exit code.

    ``unusable`` replaces exit code 2 (``--detailed-exitcode`` reserves 2 for "changes pending", so errors
    are 1 there, as in terraform).
    """
    try:
        yield
    except CliExit as exc:
        if exc.exit_code == ExitCode.UNUSABLE and unusable != ExitCode.UNUSABLE:
            raise CliExit(unusable) from None
        raise
    except KeyboardInterrupt:
        err("Aborted: requests in flight may or may not have been applied; run again (a dry run shows what is left).")
        raise CliExit(ExitCode.INTERRUPTED) from None
    except CsvError as exc:
        err(f"Error: {len(exc.problems)} problem(s) in the CSV; nothing was sent to the proxy:")
        for p in exc.problems:
            err(f"  {p}")
        raise CliExit(unusable) from None
    except RefusedError as exc:
        err(f"Refused: {exc}")
        raise CliExit(ExitCode.REFUSED) from None
    except AuthError as exc:
        _traceback_if(debug)
        err(
            f"Error: Unauthorized by the proxy at {_base_url()}: {str(exc).rstrip('.')}. "
            "Check --master-key / LITELLM_MASTER_KEY, and that --base-url / LITELLM_BASE_URL is the proxy you mean."
        )
        raise CliExit(unusable) from None
    except UnavailableError as exc:
        _traceback_if(debug)
        err(f"Error: Connection failed: {exc}. Check --base-url and that the proxy is running.")
        raise CliExit(unusable) from None
    except (InputError, ConfigError) as exc:
        err(f"Error: {exc}")
        raise CliExit(unusable) from None
    except ProxyError as exc:
        _traceback_if(debug)
        hint = ""
        if exc.status == 404 and exc.method == "GET":
            hint = f" Is {_base_url()} the proxy's root URL (without /v1 or another path)?"
        elif exc.status == 403:
            hint = " The credentials in use may not do this: use the master key or a proxy admin's key."
        err(f"Error: the proxy answered: {exc}.{hint}")
        raise CliExit(unusable) from None
    except UsersyncError as exc:
        _traceback_if(debug)
        err(f"Error: {exc}")
        raise CliExit(unusable) from None


def _base_url() -> str:
    ctx = click.get_current_context(silent=True)
    value = ctx.params.get("base_url") if ctx else None
    return str(value or DEFAULT_BASE_URL)


def _traceback_if(debug: bool) -> None:
    """With --debug the traceback goes to stderr too; the exit code stays the documented one."""
    if debug:
        import traceback

        err(traceback.format_exc().rstrip())


def stderr_is_tty() -> bool:
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"


def exit_for_report(report: RunReport, *, failed: bool) -> NoReturn:
    """The exit code after a run: aborted (credentials refused mid-run), interrupted, some rows failed, or OK."""
    if report.aborted:
        err(f"Error: the run stopped: {report.aborted}. What was done is in the report.")
        raise CliExit(ExitCode.FAILED if report.applied_any else ExitCode.UNUSABLE)
    if report.interrupted:
        raise CliExit(ExitCode.INTERRUPTED)
    raise CliExit(ExitCode.FAILED if failed else ExitCode.OK)


#: what ``--output`` means on every command: the format of what is printed on stdout
OUTPUT_FORMATS = ("text", "json", "markdown")


def output_option(f: F) -> F:
    """``--output text|json|markdown``: the format of stdout, the same on every command (docs/output.md)."""
    return click.option(
        "--output",
        type=click.Choice(OUTPUT_FORMATS),
        default="text",
        show_default=True,
        help="text: for people; json: one JSON document (schemas in docs/output.md); markdown: a summary "
        "and a table, e.g. for a pull-request comment.",
    )(f)


def printer(output: str) -> Callable[..., None]:
    """``out`` for text output (coloured by line marks on a terminal); a no-op when the command prints one
    JSON or Markdown document instead."""
    return out_marked if output == "text" else (lambda *_args: None)


def print_json(doc: Any) -> None:
    import json

    click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
