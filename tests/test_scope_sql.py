"""The scope predicate of a division (spatial.store.scope.scope_sql) keeps exactly the codes that start with its
prefix, as PostgreSQL compares them (the database's collation), and is an index range, not a per-row filter."""

from __future__ import annotations

import random

from sqlalchemy import text

from spatial.access import Scope
from spatial.store.scope import scope_sql


def test_a_division_scope_keeps_the_codes_with_its_prefix_and_reads_an_index_range(db):
    rng = random.Random(15)
    prefix = "440304002"
    codes = {prefix + "000", prefix + "999", "440304001999", "440304003000", "44030400", prefix}
    codes |= {"44030400" + "".join(rng.choice("0123456789") for _ in range(4)) for _ in range(300)}
    db.execute(text("CREATE TEMPORARY TABLE coded (community_code varchar(12), grid_id integer)"))
    db.execute(text("INSERT INTO coded SELECT unnest(CAST(:codes AS text[])), 0"), {"codes": sorted(codes)})
    predicate, params = scope_sql(Scope(prefix=prefix), grid_col="grid_id", community_col="community_code")
    kept = set(db.execute(text(f"SELECT community_code FROM coded WHERE {predicate}"), params).scalars())
    assert kept == {c for c in codes if c.startswith(prefix)} and prefix + "999" in kept and "44030400" not in kept
    db.execute(text("CREATE INDEX ON coded (community_code)"))
    db.execute(text("ANALYZE coded"))
    db.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(db.execute(text(f"EXPLAIN SELECT count(*) FROM coded WHERE {predicate}"), params).scalars())
    assert "Index Cond: (((community_code)::text >= " in plan and "Filter" not in plan, plan
