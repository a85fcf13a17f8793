"""The proxy's operations, one module per thing they change: users, teams and memberships, keys, invitations.

Each is a part of :class:`~litellm_usersync.proxy.client.ProxyClient`; only these modules know the paths.
"""
