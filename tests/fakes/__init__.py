"""Stand-ins for the backends, speaking their real wire formats over real HTTP."""
