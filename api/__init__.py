"""HTTP only: parse, call one domain function, return a schema. No SQL here (it lives in spatial.store)."""
