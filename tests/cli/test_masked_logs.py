"""The CLI's log lines go through the one masker: a key logged by any module is shown as ``sk-ab…``."""

from __future__ import annotations

import logging

import pytest

from litellm_usersync.cli._common import setup_logging

KEY = "sk-0123456789abcdefSECRETTAIL"


@pytest.mark.parametrize("debug", [True, False])
def test_a_key_in_any_log_line_is_masked_on_stderr(debug: bool, capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(debug)
    try:
        # the retry line is shown even without --debug; with --debug every module's lines are
        logging.getLogger("litellm_usersync.retry").info("retrying (2/5) in 1.0 s: 500 for key %s", KEY)
        logging.getLogger("litellm_usersync.apply.executor").warning("a warning naming %s", KEY)
    finally:
        setup_logging(False)
        logging.getLogger("litellm_usersync.retry").handlers.clear()
        logging.getLogger("litellm_usersync").handlers.clear()
    shown = capsys.readouterr().err
    assert "SECRETTAIL" not in shown and KEY not in shown
    assert "retrying (2/5) in 1.0 s: 500 for key sk-01…" in shown
    assert "a warning naming sk-01…" in shown
