"""remember_secret is a set: 20,000 keys cost nothing to remember and one pass to mask (issue 14)."""

from __future__ import annotations

import time

from litellm_usersync.masking import SecretSet, mask_text
from litellm_usersync.proxy.client import ProxyClient
from litellm_usersync.settings import ClientSettings


def test_secret_set_masks_token_and_odd_secrets() -> None:
    secrets = SecretSet(["master+key/with=odd", "0b8e7a52-uuid-like-invitation", "short"])
    text = 'master+key/with=odd {"id": "0b8e7a52-uuid-like-invitation"} short'
    masked = mask_text(text, secrets)
    assert "master+key/with=odd" not in masked and "maste…" in masked
    assert "0b8e7a52-uuid-like-invitation" not in masked and "0b8e7…" in masked
    assert masked.endswith(" short")  # 5 characters or fewer are never secrets (nor masked)
    assert "short" not in secrets and len(secrets) == 2


def test_remember_secret_is_bounded_for_twenty_thousand_keys() -> None:
    client = ProxyClient(ClientSettings(base_url="http://127.0.0.1:9", master_key="sk-master-key-1234"))
    keys = [f"sk-generated-{i:06d}-abcdef" for i in range(20_000)]
    started = time.perf_counter()
    for k in keys:
        client.remember_secret(k)
        client.remember_secret(k)  # remembering twice keeps one copy
    masked = client.mask(f"created {keys[12_345]} and invitation x for sk-master-key-1234")
    elapsed = time.perf_counter() - started
    assert len(client._t.secrets) == 20_001
    assert keys[12_345] not in masked and "sk-ge…" in masked
    assert "sk-master-key-1234" not in masked
    # a linear list took seconds here (a `not in` per remember, a replace per secret per mask)
    assert elapsed < 1.0, elapsed


def test_non_token_text_around_a_secret_is_kept() -> None:
    secrets = SecretSet(["invite-1234567890"])
    assert mask_text("url=/ui?invitation_id=invite-1234567890&x=1", secrets) == "url=/ui?invitation_id=invit…&x=1"
