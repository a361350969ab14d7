"""Pure analyses on plain data (shapely geometries, numpy arrays, lists): grid plans, tessellation, micro-grids,
balanced plans, tour orders (TSP), the Chinese postman, checkpoint siting, opening hours. No database access:
the store loads their inputs and writes their answers (e.g. ``store/plans.py`` around ``balance.py``)."""
