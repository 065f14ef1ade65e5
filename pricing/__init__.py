"""dropprice pricing core: intensity index, demand model, price policy, simulator.

Pure functions over arrays and tables: no sockets, no Redis, no servers.
"""

__all__: list[str] = []
