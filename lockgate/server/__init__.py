"""The aiohttp application: factory, routes, middleware and shared keys."""
