"""Named scenarios, registered by name (see ``scenarios.registry``)."""
