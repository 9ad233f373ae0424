"""Prefect flows: thin orchestration of the stockpipe library, one module per flow."""
