"""What an upload import answers (buildings, streets, a residents' ledger): its report as a response model.

Counts are exact; the lists of issues (features skipped or repaired) and rejected rows are capped as the importers
cap them (:data:`spatial.io.report.MAX_ISSUES`, :data:`spatial.io.residents.MAX_REJECTED`), the exact numbers are
``issue_count`` / ``rejected_count``. A rejected row names its spreadsheet line (1-based, the header counted), the
column's header and letter, and the reason; an ID or phone number in a reason is masked.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from spatial.io.report import ImportReport
from spatial.io.residents import ResidentsReport

ETAG = r'^(W/)?"[a-z][0-9a-f]{16}"$'


class TallyPublic(BaseModel):
    read: int = Field(ge=0, description="features read from the file")
    inserted: int = Field(ge=0, description="new rows (would be, in a dry run)")
    already_present: int = Field(ge=0, description="rows stored by an earlier import of the same origin")
    merged: int = Field(0, ge=0, description="street edges folded into their reverse twin")
    repaired: int = Field(0, ge=0)
    skipped: dict[str, int] = Field(default_factory=dict, description="features left out, by reason")


class IssuePublic(BaseModel):
    feature: str = Field(max_length=300, description="e.g. 'feature 12 (fid 13)'")
    reason: str = Field(max_length=1000)


class ConnectivityPublic(BaseModel):
    pieces: int = Field(ge=0, description="connected pieces of the street network (one-way rules ignored)")
    total_km: float = Field(ge=0)
    largest_share: float = Field(ge=0, le=1, description="share of the length in the longest piece")


class LayerImportPublic(BaseModel):
    """A buildings or streets import: per kind of row (buildings; street_nodes, street_edges) what was read,
    inserted, already present, skipped and why."""

    kind: str = Field(pattern="^(buildings|streets)$")
    file: str = Field(max_length=200)
    layers: list[str]
    origin: str = Field(max_length=500, description="rows are keyed on (origin, origin_ref): importing the same "
                                                    "file again inserts nothing")
    dry_run: bool
    written: bool
    read: int = Field(ge=0)
    inserted: int = Field(ge=0)
    already_present: int = Field(ge=0)
    tallies: dict[str, TallyPublic]
    issue_count: int = Field(ge=0)
    issues: list[IssuePublic] = Field(description="at most 1,000; issue_count is exact")
    notes: list[str]
    connectivity: ConnectivityPublic | None = None
    elapsed_s: float = Field(ge=0, description="seconds")
    basis: str | None = Field(None, pattern=ETAG, description="send as If-Match with the import")


class RejectedRowPublic(BaseModel):
    line: int = Field(ge=1, description="spreadsheet line, 1-based, the header counted")
    column: str = Field(max_length=200, description="the column's header (its field name if the file has none)")
    letter: str | None = Field(None, pattern="^[A-Z]{1,3}$", description="spreadsheet column letter")
    reason: str = Field(max_length=1000)


class MergeCountsPublic(BaseModel):
    persons_inserted: int = Field(ge=0)
    persons_updated: int = Field(ge=0)
    persons_moved: int = Field(ge=0, description="to another household")
    persons_moved_out: int = Field(ge=0, description="absent from the ledger (see area)")
    persons_unchanged: int = Field(ge=0)
    history: int = Field(ge=0, description="history rows written")
    households_created: int = Field(ge=0)
    households_updated: int = Field(ge=0)


class ResidentsImportPublic(BaseModel):
    """A residents' ledger (实有人口): rows read, every rejected row, what the merge did (would do, in a dry run;
    absent when rows were rejected and skip_errors was not asked: nothing would be written)."""

    kind: str = Field("residents", pattern="^residents$")
    file: str = Field(max_length=200)
    dry_run: bool
    written: bool
    skip_errors: bool
    read: int = Field(ge=0, description="rows read (empty rows not counted)")
    rejected_count: int = Field(ge=0)
    rejected: list[RejectedRowPublic] = Field(description="in line order; at most 100,000")
    counts: MergeCountsPublic | None = None
    notes: list[str]
    elapsed_s: float = Field(ge=0, description="seconds")
    basis: str | None = Field(None, pattern=ETAG, description="send as If-Match with the import")


def layer_import(kind: str, report: ImportReport, *, dry_run: bool) -> dict:
    """The answer for a buildings or streets import (``dry_run``: the report of a check, nothing written)."""
    c = report.connectivity
    return LayerImportPublic(
        kind=kind, file=report.file, layers=list(report.layers), origin=report.origin, dry_run=dry_run,
        written=not dry_run, read=report.read, inserted=report.inserted, already_present=report.already_present,
        tallies={k: TallyPublic(read=t.read, inserted=t.inserted, already_present=t.already_present, merged=t.merged,
                                repaired=t.repaired, skipped=dict(t.skipped)) for k, t in report.tallies.items()},
        issue_count=report.issue_count, issues=[IssuePublic(feature=f[:300], reason=r[:1000])
                                                for f, r in report.issues],
        notes=report.notes, elapsed_s=round(report.elapsed_s, 3),
        connectivity=None if c is None else ConnectivityPublic(pieces=c.pieces, total_km=round(c.total_m / 1000, 3),
                                                                largest_share=round(c.largest_share, 4)),
    ).model_dump()


def residents_import(report: ResidentsReport, *, skip_errors: bool, dry_run: bool) -> dict:
    """The answer for a residents' ledger (``dry_run``: what was asked; a refused import is not written either)."""
    m = report.counts
    counts = None if m is None else MergeCountsPublic(
        persons_inserted=m.inserted, persons_updated=m.updated, persons_moved=m.moved, persons_moved_out=m.moved_out,
        persons_unchanged=m.unchanged, history=m.history, households_created=m.households_created,
        households_updated=m.households_updated)
    return ResidentsImportPublic(
        file=report.file, dry_run=dry_run, written=report.written, skip_errors=skip_errors,
        read=report.tally("persons").read, rejected_count=report.issue_count,
        rejected=[RejectedRowPublic(line=e.line, column=e.column[:200], letter=e.letter, reason=e.reason[:1000])
                  for e in report.rejected], counts=counts, notes=report.notes, elapsed_s=round(report.elapsed_s, 3),
    ).model_dump()
