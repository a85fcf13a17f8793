"""Applying a plan to the proxy: the executor, its phases and the invitations after add."""
