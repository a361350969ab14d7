"""The PostGIS store: embedded cluster, engine, schema (models + migrations) and one query module per concern."""
