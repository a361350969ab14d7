"""OGC API – Features helpers: CRS URIs and axis order (:mod:`.crs`), response documents (:mod:`.documents`)."""
