from sqlalchemy import text


def test_extensions_present(db):
    postgis, pgr = db.execute(text("SELECT postgis_lib_version(), pgr_version()")).one()
    assert postgis.startswith("3.")
    assert pgr.startswith("3.")
