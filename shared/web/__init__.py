"""aiohttp building blocks every service wires into its app factory."""
