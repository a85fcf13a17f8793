"""The one masking module: one rule for a masked secret (``sk-ab…``), one regex for keys in free text."""

from __future__ import annotations

import pytest

from litellm_usersync.files.audit import scrub
from litellm_usersync.masking import mask_secret, mask_text
from litellm_usersync.proxy.client import ProxyClient
from litellm_usersync.settings import ClientSettings


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        ("", ""),
        ("sk-1", "…"),
        ("sk-ab", "…"),
        ("sk-abc", "sk-ab…"),
        ("sk-abcdef1234567890", "sk-ab…"),
    ],
)
def test_mask_secret(value: str | None, expected: str) -> None:
    assert mask_secret(value) == expected


def test_mask_secret_never_contains_the_tail() -> None:
    secret = "sk-0123456789abcdefSECRETTAIL"
    masked = mask_secret(secret)
    assert "SECRETTAIL" not in masked
    assert masked == "sk-01…"
    assert mask_secret(secret, keep=8) == "sk-01234…"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key sk-abc here", "key sk-ab… here"),
        ("key sk-abcd here", "key sk-ab… here"),
        ("two sk-Z9xxxxxxxx, sk-mayyyyy.", "two sk-Z9…, sk-ma…."),
        ("a task-abcdef is not a key", "a task-abcdef is not a key"),
        ("sk-ab alone is too short to be a key", "sk-ab alone is too short to be a key"),
    ],
)
def test_mask_text_masks_every_key_in_free_text(text: str, expected: str) -> None:
    assert mask_text(text) == expected


def test_a_key_in_text_is_masked_as_mask_secret_masks_it() -> None:
    key = "sk-0123456789abcdefSECRETTAIL"
    assert mask_text(f"got {key}") == f"got {mask_secret(key)}"


def test_the_client_the_audit_log_and_the_module_agree() -> None:
    """The three maskers of old (client, audit log, identity) had three regexes: now they are one."""
    master = "master-0123456789"  # not sk-shaped: only masked because it is a given secret
    text = f"Bearer {master}: sk-short1 and sk-Z9abcdefghijklmnop"
    client = ProxyClient(ClientSettings(base_url="http://127.0.0.1:9", master_key=master))
    expected = "Bearer maste…: sk-sh… and sk-Z9…"
    assert mask_text(text, [master]) == expected
    assert client.mask(text) == expected
    assert scrub(text, (master,)) == expected
