"""gridgov's domain: the model, geometry, coordinate systems, analyses and the PostGIS store.

Two layers are kept apart:

* :mod:`spatial.geometry` is pure Shapely/pyproj code that never touches a database;
* :mod:`spatial.store` holds the schema, migrations, the embedded cluster and every SQL query.

Nothing here imports a web framework, so the CLI, notebooks and tests use it directly.
"""
