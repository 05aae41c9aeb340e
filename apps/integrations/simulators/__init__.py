"""Local HTTP simulators of the external providers (see ``runner.start_simulators``)."""
