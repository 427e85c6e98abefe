"""sonic-catalog's command line: one module per sub-command in `sonic_catalog.commands`."""
