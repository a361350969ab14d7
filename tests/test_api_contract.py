"""The OpenAPI document says what the code enforces (issue 13, item 6): schemathesis' ``--checks all`` in-process.

What ``schemathesis run --checks all`` checks over ``/openapi.json`` with an admin token, on top of the checks
of :mod:`tests.test_fuzz_api`: a request the schema allows is not refused with a 4xx other than 401, 403, 404,
409 or 429 (``positive_data_acceptance``: the schema states every length, range, pattern and enum the code
enforces, so generated clients are right), a request the schema forbids is refused
(``negative_data_rejection``), a method the path does not offer is a 405 (``unsupported_method``) carrying
``Allow`` (``allow_header_conformance``), a required header left out is refused, and no authentication is
ignored (``ignored_auth``).

The app and the demo database are those of :func:`tests.test_fuzz_api.fuzz_env` (a fresh database of its own,
since this module is a module of its own). Only schema-valid (positive) cases are steered towards stored objects,
so that they reach past "404 not found"; a negative case is sent as generated, since replacing a member by a
stored value could make it valid. Every failure is collected (not only the first of each operation) and the
test reports them by kind and operation; ``GRIDGOV_FUZZ_SCALE`` and ``GRIDGOV_FUZZ_VERBOSE`` work as there.

Requests the schema allows that the code refuses for a reason JSON Schema cannot state are listed in
:data:`UNSTATABLE`, each with the reason (the map, the stored data, the caller's account, one value and another);
every other failure of every check fails the test, as does a 500. The normal suite draws 3 generated cases per
operation (the full run 10) on top of the coverage cases, sends at most :data:`HEAVY`'s count of schema-valid
cases of the slowest operations and lowers solver times and list lengths (:data:`CHEAPER`): about 6,500 requests,
some 2 minutes of the test process's CPU after a 20-second setup (4 to 5 minutes of wall time on a 2-core machine
shared with other work; 10 minutes before the budgets). ``GRIDGOV_CONTRACT=1``
sends every case (several minutes): run it, and ``GRIDGOV_FUZZ_SCALE=10`` (new random cases each time), after
changing a model or a router;
``GRIDGOV_CONTRACT_ONLY=<regular expression>`` runs the operations it finds.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter, defaultdict
from typing import Any
from xml.etree import ElementTree

import jsonschema
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import CHECKS as REGISTRY
from schemathesis.checks import load_all_checks
from schemathesis.core.failures import Failure
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.hypothesis.builder import HypothesisTestConfig, HypothesisTestMode, create_test

from tests.test_fuzz_api import (  # noqa: F401 - fuzz_env is a fixture
    ENDINGS, RANDOM, SCALE, VERBOSE, VERSIONED_EDITS, FuzzEnv, _label, _operations, _steer, fuzz_env)

# Checks of a stateful run (links between operations), which a run of single operations cannot exercise.
STATEFUL = {"use_after_free", "ensure_resource_availability", "object_level_authorization"}

# Generated cases per operation, on top of the examples and the coverage cases, and at least this many requests:
# the normal suite's run (about 2 minutes on 2 cores) and the full one (GRIDGOV_CONTRACT=1).
FULL = os.environ.get("GRIDGOV_CONTRACT") == "1"
EXAMPLES = 10 if FULL else 3
MINIMUM_REQUESTS = 4000 if FULL else 3000
HEAVY = {"POST /api/inspection/siting": 4, "POST /api/plans/propose": 3, "GET /api/export/communities/{code}": 5,
         "GET /api/field/campaigns/{campaign_id}/unvisited": 5, "GET /api/inspection/coverage": 6,
         "GET /api/inspection/coverage/report.html": 4, "GET /api/audit": 12, "POST /api/plans/adopt": 6}
"""Operations whose schema-valid cases cost seconds each (a solver, a walking network, a GeoPackage, thousands of
households masked), with how many of those the normal run sends (the first: the examples, then the coverage
cases' boundary values); their schema-violating cases, refused at once, are all sent. The full run
(``GRIDGOV_CONTRACT=1``) sends every case. Together they took two thirds of the normal run (6 of 10 minutes on a
loaded machine)."""

ONLY = os.environ.get("GRIDGOV_CONTRACT_ONLY", "")
"""A regular expression over "METHOD /path": run only the operations it finds (to look into one failure)."""

_ANY = r".*"
_GRID_EDITS = r"(PATCH|POST|PUT) /api/grids(/merge|/\{code\}(/boundary|/split|/retire|/revert)?)"
UNSTATABLE: list[tuple[str, set[int], str, str, str]] = [
    # -- the map: where a point may lie depends on its crs and on the service area, not on its form
    (_ANY, {422}, "InvalidInput", r"outside the service area|lies outside longitude|coordinates out of range for|"
     r"is not a longitude/latitude|cannot be (converted|transformed)", "position off the map (depends on crs)"),
    (_ANY, {422}, "InvalidInput", r"ring \d+ is not closed|polygon is not valid|empty or has no area|zero length|"
     r"an enclosure is one polygon|the enclosure covers|from the perimeter|enclosure's perimeter|exactly two parts|"
     r"share no border", "geometry: ring closure, validity, area, distance to a perimeter"),
    (_ANY, {400}, "UnknownCRS", r"Unknown coordinate system '[^']*\d'", "an EPSG code PROJ does not know"),
    (r"GET /ogc/.*", {400}, "InvalidInput", r"filter|CQL2|cql2|not an RFC 3339 instant",
     "a CQL2 text that does not parse (a grammar), a calendar date that does not exist"),
    (r"GET /(ogc|api/layers)/.*", {400, 422}, "InvalidInput", r"bbox '[^']*' is reversed",
     "a bbox's lower corner below its upper corner (one number compared with another)"),
    # -- the stored data: versions, existence and kind of what a value names
    (_ANY, {412}, "StaleEdit", r"", "the version sent is not the stored one"),
    (_ANY, {422}, "InvalidInput", r"is not a community code|no households (in|live)|nothing left to visit|"
     r"no open campaign|needs a campaign|buildings to visit; ask for the nearest|is empty.*nothing to export|"
     r"are not candidates of this enclosure|has no (openings|checkpoints|lanes)|cannot be reached on the|"
     r"from the lanes around the grid|applies to sealed openings only|only grids of the same community|"
     r"no answer within the time limit", "what the stored data holds"),
    # -- one value required or forbidden depending on another (OpenAPI parameters have no anyOf; these bodies
    #    keep optional members that a client may leave out or send as null)
    (_GRID_EDITS + r"|POST /api/plans/adopt|(PATCH|PUT) /api/divisions/\{code\}(/boundary)?", {428},
     "PreconditionRequired", r"If-Match",
     "If-Match is required unless preview: true (adopt: always, answered 428 as RFC 6585 says, not 422)"),
    (r"(PATCH|POST|PUT) /api/grids.*", {422}, "InvalidInput", r"say why", "reason is required unless preview: true"),
    (r"(POST|PATCH) /api/field/households/\{household_id\}.*", {428}, "PreconditionRequired", r"If-Match",
     "a ledger edit needs If-Match (answered 428 as RFC 6585 says, not 422 as a required header would be)"),
    (r"PATCH /api/field/households/\{household_id\}(/persons/\{person_id\})?", {422}, "InvalidInput",
     r"nothing to change", "at least one member to change besides the note"),
    (r"GET /api/inspection/(coverage|coverage/report\.html)", {422}, "InvalidInput", r"give enclosure_id or division",
     "one of two query parameters"),
    (r"GET /api/export/communities/\{code\}", {422}, "InvalidInput", r"needs a purpose", "purpose with reveal=true"),
    (r"(POST|PUT) /api/forms.*", {422}, "InvalidInput", r"unknown columns .* for source|unknown filter .* for "
     r"source|filter \w+: value .* must be|group_by must be one of .* for source",
     "a template's columns, filters and grouping depend on its source, a filter's value on the filter"),
    (r"GET /api/forms/\{name\}/run", {422}, "InvalidInput", r"say why you need the full values",
     "reason with reveal=true"),
    (r"PATCH /api/inspection/openings/\{opening_id\}", {422}, "InvalidInput",
     r"nothing to change|applies to status 'checkpoint' only", "at least one change; checkpoint with that status"),
    (r"POST /api/field/campaigns", {422}, "InvalidInput", r"either a list of grid codes(,| or) one division code|"
     r"over a community or subdistrict", "grid_codes, division_code or risk_zone_id, one of them (district: admins only)"),
    # -- risk zones: what a designation names depends on its kind, levels on the scheme configured
    (r"(PATCH|POST) /api/risk-zones/\{zone_id\}(/lift)?", {428}, "PreconditionRequired", r"If-Match",
     "a change or lift needs If-Match (428 as RFC 6585 says, not 422 as a required header would be)"),
    (r"POST /api/risk-zones(/suggestions)?", {422}, "InvalidInput", r"names its building and its unit|send a geometry "
     r"for a drawn polygon|has no level|no level scheme|division code must be",
     "a target's reference by its kind; a level of the scheme stored in the database (schemes are data)"),
    (r"POST /api/inspection/patrols/streets", {422}, "InvalidInput", r"give grid_id or grid_code", "one of two"),
    (r"POST /api/inspection/patrols", {422}, "InvalidInput", r"choose at least one|stops per patrol",
     "1–300 stops over three lists"),
    (r"POST /api/inspection/siting", {422}, "InvalidInput", r"maximal covering needs p|must be kept, more than p|"
     r"must be between 1 and|either an enclosure_id or a risk_zone_id",
     "p with max_cover, at most the candidates, at least the kept ones; an enclosure or a zone"),
    (r"POST /api/plans/(propose|adopt)", {422}, "InvalidInput", r"bad household range", "low ≤ high"),
    (r"POST /api/(import/.*|divisions/import)", {428}, "PreconditionRequired", r"basis as If-Match",
     "If-Match (the dry run's basis) is required unless dry_run: true (428 as RFC 6585 says)"),
    (r"POST /api/(import/.*|divisions/import)", {422}, "InvalidInput", r"upload a (\.gpkg|file ending in)",
     "the uploaded file's name (OpenAPI cannot constrain a multipart file name)"),
    # -- cases: where a point lies, what is stored, and the workflow's order
    (r".* /(api|open311)/.*cases.*|POST /open311/.*", {422}, "InvalidInput",
     r"not in any community|unknown case category|needs a reason|needs an assignee|needs the extension|"
     r"extension is already waiting|no extension is waiting|is not a day of the calendar",
     "a case's place, category, what an action needs, a day that exists"),
    (r"POST /api/patrols/\{patrol_id\}/(end|checkins|fixes|cases)", {422}, "InvalidInput",
     r"ends before it started|before the patrol started|from .+; check in within|not in any community",
     "a patrol's times against its stored start, a check-in's distance from its building (the stored map)"),
    (r"(POST|PUT) /api/basemaps(/\{name\})?", {422}, "InvalidInput", r"url_template (uses|must contain|must not "
     r"contain spaces)|no secret named", "a template's placeholders with their subdomains and the secrets configured"),
    (r"POST /api/divisions", {422}, "InvalidInput", r"needs a boundary|expected a GeoJSON Polygon|does not end in",
     "a division's boundary and code structure, by its level"),
    (r"GET /ogc/collections/\{collectionId\}/items", {400}, "InvalidInput", r"has no history: datetime applies",
     "datetime only for a collection with history (grids)"),
    (r"GET /tiles/\{z\}/\{x\}/\{y\}\.mvt", {422}, "InvalidInput", r"at least one layer",
     "layers, when given, names at least one (an empty value is answered with the layer names)"),
    (r"GET /api/cases/figures", {422}, "InvalidInput", r"a period is at most", "from and to at most 1,099 days apart"),
    (r"GET /api/scorecards(/export)?", {422}, "InvalidInput", r"a period is at most|ends \(.*\) before it starts|"
     r"(less|greater) than or equal to (2199-12-31|2000-01-01)",
     "from and to at most 1,099 days apart, to not before from, days 2000–2199 (no bounds on a date in OpenAPI)"),
    (r"GET /api/export/layers/\{layer\}", {422}, "InvalidInput", r"cannot be cut to a community",
     "community with a layer that has community codes"),
    (r"POST /api/cases/\{case_id\}/actions", {409}, "Conflict", r"is not possible for a case",
     "the workflow's order (the allowed actions are listed)"),
    # -- the caller's account: a division given or the caller's own area (the admin of the run has none)
    (r"GET /api/screen/figures", {422}, "InvalidInput", r"your account has no area of its own",
     "division may be left out by a caller with an area of their own"),
    # -- the grid team (issue 17 §1): one target of three, a duty that fits the account and its target, the team
    (r"POST /api/team/assignments", {422}, "InvalidInput", r"name exactly one of|is a grid worker's duty|the duty "
     r"\w+ is for accounts|is assigned to", "one of grid_code, micro_grid_id, building_code; the duty by the stored "
     "account's role and the target's kind (a unit head with its unit)"),
    (r"POST /api/tasks", {422}, "InvalidInput", r"one household or one building|is due from a week ago|is not on the "
     r"team|does not live in household|is named with their household|lies in no grid",
     "household_id or building_code; a due day relative to today; the assignee on the stored team; a resident"),
    # -- Open311 (errors as its list of {code, description}, seen here as error "Open311")
    (r"POST /open311/v2/requests\.\{format\}", {400}, "Open311", r"is not in any community gridgov serves",
     "a position in a community (the map)"),
    (r"POST /open311/v2/requests\.\{format\}", {400}, "Open311", r"a location is required",
     "lat and long, which Open311 leaves optional (an address_string instead): gridgov does not geocode"),
    (r"GET /open311/v2/requests\.\{format\}", {400}, "Open311", r"start_date is after end_date", "start ≤ end"),
    # -- the one network: a credit code's check character; an uploaded file's name; the file's grids as checked
    (r"POST /api/one-network/departments/\{credit_code\}/grids", {422}, "InvalidInput", r"bad check character",
     "the GB 32100 check character of a credit code (a sum of weights, not a pattern)"),
    (r"POST /api/one-network/(departments/.*|places/import)", {422}, "InvalidInput", r"upload a (\.gpkg|file ending in)",
     "the uploaded file's name (OpenAPI cannot constrain a multipart file name)"),
]
"""Refusals of schema-valid requests for a reason JSON Schema cannot state: a value valid in itself that is wrong
in combination with another, with the stored data, or with the map. Each is (operations (a regular expression
over "METHOD /path"), statuses, the answer's ``error``, a pattern its ``detail`` matches, the reason)."""


def _checks() -> list:
    load_all_checks()
    return [check for check in REGISTRY.get_all() if check.__name__ not in STATEFUL]


def _component(failure: Failure) -> str:
    """What a failure says was invalid about the case (schemathesis' "Invalid component: ..."), if it says."""
    found = re.search(r"Invalid component:.*", str(getattr(failure, "message", "") or ""), re.S)
    return f" ({found.group(0)[:200]})" if found else ""


def _failures_of(exc: BaseException) -> list[Failure]:
    if isinstance(exc, Failure):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        return [f for e in exc.exceptions for f in _failures_of(e)]
    raise exc


def _resolved(node: Any, doc: dict, seen: tuple[str, ...] = ()) -> Any:
    """``node`` of the OpenAPI document ``doc`` with its local ``$ref``s replaced by what they name."""
    if isinstance(node, list):
        return [_resolved(item, doc, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node and node["$ref"] not in seen:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _resolved({**target, **rest}, doc, (*seen, node["$ref"]))
    return {k: _resolved(v, doc, seen) for k, v in node.items() if k != "$ref"}


def _acceptor(op, doc: dict):
    """Whether a stored value may replace a member of a schema-valid case of ``op``: only if the member's schema
    allows it (the demo's layer names are not all the inspection layers, its codes not all grid codes)."""
    schemas: dict[tuple[str, str], Any] = {}
    for parameter in _resolved(op.definition.raw.get("parameters", []), doc):
        schemas[parameter["in"], parameter["name"]] = parameter.get("schema", {})
    body = op.definition.raw.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    for name, member in (_resolved(body, doc) or {}).get("properties", {}).items():
        schemas["body", name] = member
    validators = {key: jsonschema.Draft202012Validator(schema) for key, schema in schemas.items()}

    def accept(location: str, name: str, value: Any) -> bool:
        validator = validators.get((location, name))
        return validator is None or validator.is_valid(value)

    return accept


def _full_text(response) -> str:
    """An answer's text, or '' for bytes that are no text (a GeoPackage, a tile)."""
    try:
        return response.text
    except UnicodeDecodeError:
        return ""


def _text(response) -> str:
    """The start of an answer for a report: its text, or a repr of its bytes (a GeoPackage, a tile)."""
    return _full_text(response)[:300] or repr(response.content[:100])
def _open311_xml_errors(text: str) -> list[dict[str, str | None]] | None:
    """Open311's XML errors (``<errors><error><code/><description/>``) as its JSON list, None for other text."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return None
    return [{"code": e.findtext("code"), "description": e.findtext("description")}
            for e in root.findall("error")] if root.tag == "errors" else None


def _unstatable(label: str, status: int, text: str) -> str | None:
    """The reason of :data:`UNSTATABLE` that explains refusing a schema-valid request with this answer, if any."""
    try:
        body = json.loads(text)
    except ValueError:
        body = _open311_xml_errors(text)
    if isinstance(body, list) and body and isinstance(body[0], dict) and "code" in body[0]:  # Open311's errors
        body = {"error": "Open311", "detail": body[0].get("description")}
    if not isinstance(body, dict):
        return None
    for operations, statuses, kind, detail, reason in UNSTATABLE:
        if (re.fullmatch(operations, label) and status in statuses and body.get("error") == kind
                and re.search(detail, str(body.get("detail", "")))):
            return reason
    return None


CHEAPER = {("body", "time_limit_s"): 0.2, ("query", "limit"): 20}
"""Upper bounds put on members of schema-valid cases so that the run stays short (the solvers use all the time
they are given; a long list is only slower): a case keeps its value when it is lower, so it stays valid.
Solver times and list lengths in full are :mod:`tests.test_fuzz_api`'s concern."""


def _cheaper(case) -> None:
    """Lower the members of :data:`CHEAPER` in a schema-valid case to their bound."""
    for location, members in (("query", case.query), ("body", case.body)):
        if not isinstance(members, dict):
            continue
        for (where, name), bound in CHEAPER.items():
            value = members.get(name)
            if where != location or isinstance(value, bool):
                continue
            if isinstance(value, int | float) and value > bound:
                members[name] = type(value)(bound)
            elif isinstance(value, str) and re.fullmatch(r"\d{1,9}", value) and int(value) > bound:  # as sent
                members[name] = str(int(bound))


def _spoils_authorization(case) -> bool:
    """Whether a negative case's mutations leave out or change the Authorization header: it is then sent as
    generated, without the admin's token (which would put the header back, and the case be accepted)."""
    data = case.meta.phase.data if case.meta is not None else None
    return any(m.parameter_location == ParameterLocation.HEADER
               and "authorization" in f"{m.parameter} {m.original_value} {m.new_value}".lower()
               for m in getattr(data, "mutations", None) or ())


def _caller(env: FuzzEnv, op, known: dict[str, list[Any]], checks: list,
            found: dict[str, dict[str, list[str]]], explained: Counter, doc: dict):
    """The test function of ``op``: send the case as admin, record every failed check in ``found`` (a refusal of
    a schema-valid case that :data:`UNSTATABLE` explains in ``explained`` instead)."""
    versioned = (op.method.upper(), op.path) in VERSIONED_EDITS
    token_basic = any("TokenBasic" in alternative for alternative in op.definition.raw.get("security", []))
    headers = env.headers["admin"]
    accept = _acceptor(op, doc)

    budget = None if FULL else HEAVY.get(_label(op))

    def call(case) -> None:
        nonlocal budget
        if case.meta is None or case.meta.generation.mode.is_positive:
            if budget is not None:
                if budget <= 0:
                    return  # a heavy operation's schema-valid cases past its budget (see HEAVY)
                budget -= 1
            _steer(case, known, versioned, accept)
            _cheaper(case)
        sent_headers = {} if _spoils_authorization(case) else headers
        env.requests["admin"] += 1
        started = time.monotonic()
        response = case.call(headers=sent_headers)
        if VERBOSE and time.monotonic() - started > 1:
            print(f"  slow ({time.monotonic() - started:.1f} s): {_label(op)} {case.query!r:.200} {case.body!r:.300}")
        env.statuses["admin", _label(op)][response.status_code] += 1
        try:
            case.validate_response(response, checks=checks, headers=sent_headers)
        except (Failure, BaseExceptionGroup) as exc:
            sent = {"path": case.path_parameters, "query": case.query, "body": case.body}
            for failure in _failures_of(exc):
                kind = type(failure).__name__
                reason = _unstatable(_label(op), response.status_code, _full_text(response)) \
                    if kind == "RejectedPositiveData" else None
                if reason:
                    explained[reason] += 1
                    continue
                if kind == "IgnoredAuth" and (response.status_code == 429 or "got `429" in str(failure)):
                    explained["wrong credentials beyond the login limits: 429 before 401, by design"] += 1
                    continue
                if kind == "IgnoredAuth" and token_basic:
                    # Basic (an access token) or Bearer: the check spoils one scheme while the admin's valid bearer
                    # header stays, both on Authorization; wrong Basic alone is a 401 (tests/test_access_tokens.py)
                    explained["two schemes on one header: the valid bearer stays while the check spoils Basic"] += 1
                    continue
                found[kind][_label(op)].append(
                    f"{response.status_code} {failure.title}{_component(failure)} | sent {sent!r:.400} | got {_text(response)}")

    return call


def _contract_run(env: FuzzEnv) -> tuple[dict[str, dict[str, list[str]]], Counter]:
    """Every operation as admin, with every check; the failures by kind (the failure's class) and operation,
    each a short description of the case, and how many refusals each reason of :data:`UNSTATABLE` explained."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", env.app)
    checks = _checks()
    known = {name: values for name, values in env.known.items() if values}
    found: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    explained: Counter = Counter()
    for endings in (False, True):
        for op in _operations(schema):
            if ((op.method.upper(), op.path) in ENDINGS) != endings or not re.search(ONLY, _label(op)):
                continue
            call = _caller(env, op, known, checks, found, explained, schema.raw_schema)
            config = HypothesisTestConfig(
                project=schema.config, modes=list(HypothesisTestMode),
                settings=settings(max_examples=max(1, round(EXAMPLES * SCALE)), deadline=None, database=None,
                                  derandomize=not RANDOM, suppress_health_check=list(HealthCheck),
                                  phases=[Phase.explicit, Phase.generate]))
            started = time.monotonic()
            create_test(operation=op, test_func=call, config=config)()
            if VERBOSE:
                print(f"{_label(op)}: {time.monotonic() - started:.1f} s {dict(env.statuses['admin', _label(op)])}",
                      flush=True)
    return found, explained


def _report(found: dict[str, dict[str, list[str]]]) -> str:
    """The failures by kind and operation, each distinct answer (digits folded) once with how often it came."""
    lines = []
    for kind, by_op in sorted(found.items()):
        lines.append(f"{kind}: {sum(map(len, by_op.values()))} in {len(by_op)} operations")
        for label, cases in sorted(by_op.items()):
            answers = Counter(re.sub(r"\d+", "N", c.split(" | got ")[-1])[:160] for c in cases)
            lines.append(f"  {label}: {len(cases)} cases, {len(answers)} distinct answers, e.g. {cases[0]}")
            lines += [f"    {n} x {answer}" for answer, n in answers.most_common()]
    return "\n".join(lines)


def test_the_openapi_document_states_what_the_code_enforces(fuzz_env):
    found, explained = _contract_run(fuzz_env)
    statuses = sum(fuzz_env.statuses.values(), Counter())
    print(f"\ncontract: {fuzz_env.requests.total()} requests, statuses {dict(sorted(statuses.items()))}")
    print("refusals a schema cannot state:", dict(explained.most_common()))
    print(_report(found))
    assert not found, _report(found)
    assert statuses[500] == 0 and (ONLY or fuzz_env.requests.total() >= MINIMUM_REQUESTS)
