"""Prefect tasks: thin @task wrappers over the pure functions beside them."""
