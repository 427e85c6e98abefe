"""Prefect flows: the catalog's business processes, wired from the tasks in `tasks/`."""
