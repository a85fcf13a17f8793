"""The public API: a sorted ``__all__`` whose every name is importable from the package."""

from __future__ import annotations

import importlib

import litellm_usersync


def test_all_is_sorted_and_unique() -> None:
    names = list(litellm_usersync.__all__)
    assert names == sorted(names)
    assert len(names) == len(set(names))


def test_every_name_in_all_is_importable() -> None:
    module = importlib.import_module("litellm_usersync")
    for name in litellm_usersync.__all__:
        assert hasattr(module, name), name
        namespace: dict[str, object] = {}
        exec(f"from litellm_usersync import {name}", namespace)
        assert namespace[name] is getattr(module, name)


def test_the_library_entry_points_are_public() -> None:
    for name in ("ProxyClient", "read_users_csv", "read_snapshot", "build_plan", "apply_plan", "render_plan"):
        assert name in litellm_usersync.__all__


def test_version_is_a_string() -> None:
    assert isinstance(litellm_usersync.__version__, str)
    assert litellm_usersync.__version__.count(".") == 2


def test_exported_errors_share_one_root() -> None:
    root = litellm_usersync.UsersyncError
    for name in litellm_usersync.__all__:
        obj = getattr(litellm_usersync, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, root), name
