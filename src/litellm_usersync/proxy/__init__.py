"""The proxy client and what reads through it: every request to the LiteLLM Proxy goes through here.

``ProxyClient`` (``client``) is composed of ``transport`` + ``retries``, ``answers``, ``features`` +
``detection``, ``reads``, ``recovery`` and ``endpoints/``; ``snapshot`` reads the live state through it.
"""

from .answers import CreatedUser, Page, RowErrorKind, RowResult
from .client import ProxyClient

__all__ = ["CreatedUser", "Page", "ProxyClient", "RowErrorKind", "RowResult"]
