"""The proxy client and what reads through it: every request to the LiteLLM Proxy goes through here."""
