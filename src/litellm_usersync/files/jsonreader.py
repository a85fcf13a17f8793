"""Typed access to one object of a JSON document the tool reads back (a saved plan): each field checked for
its type, every problem an :class:`InputError` naming its place (``plan file: items[3].action.role: …``) — pure."""

from __future__ import annotations

from collections.abc import Mapping

from litellm_usersync.errors import InputError
from litellm_usersync.identity import PROXY_ROLES

MISSING = object()


class JsonReader:
    """Typed access to one JSON object, with ``where`` naming it in error messages."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, Mapping):
            raise InputError(f"plan file: {where}: expected an object, got {type_name(data)}")
        self.data = data
        self.where = where

    def get(self, name: str, default: object = MISSING) -> object:
        if name not in self.data:
            if default is MISSING:
                raise InputError(f"plan file: {self.where}: missing field {name!r}")
            return default
        return self.data[name]

    def _bad(self, name: str, expected: str, value: object) -> InputError:
        return InputError(f"plan file: {self.where}.{name}: expected {expected}, got {type_name(value)}")

    def get_str(self, name: str, default: object = MISSING) -> str:
        v = self.get(name, default)
        if not isinstance(v, str):
            raise self._bad(name, "a string", v)
        return v

    def opt_str(self, name: str) -> str | None:
        v = self.get(name, None)
        if v is not None and not isinstance(v, str):
            raise self._bad(name, "a string or null", v)
        return v

    def get_bool(self, name: str, default: object = MISSING) -> bool:
        v = self.get(name, default)
        if not isinstance(v, bool):
            raise self._bad(name, "true or false", v)
        return v

    def get_int(self, name: str, default: object = MISSING) -> int:
        v = self.get(name, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self._bad(name, "an integer", v)
        return v

    def opt_int(self, name: str) -> int | None:
        v = self.get(name, None)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise self._bad(name, "an integer or null", v)
        return v

    def opt_float(self, name: str) -> float | None:
        v = self.get(name, None)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise self._bad(name, "a number or null", v)
        return None if v is None else float(v)

    def get_float(self, name: str, default: object = MISSING) -> float:
        v = self.get(name, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self._bad(name, "a number", v)
        return float(v)

    def get_strs(self, name: str, default: object = MISSING) -> tuple[str, ...]:
        v = self.get(name, default)
        if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
            raise self._bad(name, "a list of strings", v)
        return tuple(v)

    def get_pairs(self, name: str, default: object = MISSING) -> tuple[tuple[str, str], ...]:
        v = self.get(name, default)
        if not isinstance(v, list) or not all(
            isinstance(x, list) and len(x) == 2 and all(isinstance(y, str) for y in x) for x in v
        ):
            raise self._bad(name, "a list of [string, string] pairs", v)
        return tuple((x[0], x[1]) for x in v)

    def get_list(self, name: str, default: object = MISSING) -> list[object]:
        v = self.get(name, default)
        if not isinstance(v, list):
            raise self._bad(name, "a list", v)
        return v

    def get_role(self, name: str) -> str:
        v = self.get_str(name)
        if v not in PROXY_ROLES:
            raise InputError(
                f"plan file: {self.where}.{name}: unknown role {v!r}; expected one of {', '.join(PROXY_ROLES)}"
            )
        return v


def type_name(value: object) -> str:
    if value is None:
        return "null"
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)
