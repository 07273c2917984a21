"""The conformance suite against a real llama-server (see conftest.py)."""
