"""The queries services send to MongoDB, as shapes, and whether an index can serve each.

A :class:`QueryRecorder` is a PyMongo command listener: it keeps the filter (and sort) of every
find, update, delete, count, distinct, findAndModify and aggregate ``$match`` a service sends,
keyed by its *shape* (the field names and operators, values left out). :func:`serving_indexes`
then says which of the collection's indexes such a filter can use on MongoDB.

The rule is deliberately simple, close to what MongoDB's planner needs to avoid a collection
scan: ``_id`` always counts; otherwise the fields the filter constrains (at the top level or
inside ``$and``) must include the first key of an index. A filter whose only constraint is an
``$or`` can use indexes when every branch can (an index union). An empty filter can use an index
only by walking it in the order it sorts by (``find({}).sort(k)`` with ``k`` the first key).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import monitoring

QUERY_COMMANDS = frozenset(
    {"find", "update", "delete", "count", "distinct", "findAndModify", "aggregate"}
)
_LOGICAL = ("$and", "$or", "$nor")


@dataclass(frozen=True)
class Index:
    """One index of a collection, as ``list_indexes()`` reports it."""

    name: str
    keys: tuple[tuple[str, int], ...]
    unique: bool = False

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> Index:
        """From one ``listIndexes`` document."""
        keys = tuple((str(k), int(v)) for k, v in info["key"].items())
        return cls(str(info["name"]), keys, bool(info.get("unique", False)))

    @property
    def first(self) -> str:
        """The leading key, the one a query must constrain to use the index."""
        return self.keys[0][0]

    def describe(self) -> str:
        """``user_id, created_at desc`` (plus ``unique``)."""
        text = ", ".join(k if d == 1 else f"{k} desc" for k, d in self.keys)
        return f"{text} (unique)" if self.unique else text


@dataclass
class Query:
    """One query shape seen on a collection, with the first filter and sort that had it."""

    service: str
    collection: str
    shape: str
    filter: dict[str, Any]
    sort: dict[str, Any] | None
    count: int = 0


def _terms(flt: Mapping[str, Any]) -> list[str]:
    out = []
    for key in sorted(flt, key=lambda k: (k.startswith("$"), k)):
        value = flt[key]
        if key in _LOGICAL and isinstance(value, list):
            out.append(f"{key}[" + ", ".join(filter_shape(v) for v in value) + "]")
        elif key.startswith("$"):
            out.append(key)
        elif isinstance(value, Mapping) and value and all(str(k).startswith("$") for k in value):
            out.append(" ".join([key, *sorted(str(k) for k in value)]))
        else:
            out.append(key)
    return out


def filter_shape(flt: Mapping[str, Any]) -> str:
    """``{user_id, state $in, fire_at $lte}``: fields and operators, no values."""
    return "{" + ", ".join(_terms(flt)) + "}"


def sort_shape(sort: Mapping[str, Any] | None) -> str:
    """`` sort fire_at, -_id`` (empty when there is no sort)."""
    if not sort:
        return ""
    return " sort " + ", ".join(k if int(v) >= 0 else f"-{k}" for k, v in sort.items())


def extract(command_name: str, command: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(collection, filter, sort)`` of each query inside one command."""
    collection = command.get(command_name)
    if not isinstance(collection, str):
        return []
    if command_name == "find":
        return [(collection, command.get("filter") or {}, command.get("sort"))]
    if command_name in ("count", "distinct"):
        return [(collection, command.get("query") or {}, None)]
    if command_name == "findAndModify":
        return [(collection, command.get("query") or {}, command.get("sort"))]
    if command_name == "update":
        return [(collection, u.get("q") or {}, None) for u in command.get("updates", [])]
    if command_name == "delete":
        return [(collection, d.get("q") or {}, None) for d in command.get("deletes", [])]
    if command_name == "aggregate":
        pipeline = command.get("pipeline") or []
        first = pipeline[0] if pipeline else {}
        return [(collection, first.get("$match", {}) if isinstance(first, Mapping) else {}, None)]
    return []


@dataclass
class QueryRecorder(monitoring.CommandListener):
    """Records the query shapes sent to the databases it is told about (name -> service)."""

    databases: dict[str, str]
    queries: dict[tuple[str, str, str], Query] = field(default_factory=dict)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Keep each query of a query command sent to a known database."""
        service = self.databases.get(event.database_name)
        if service is None or event.command_name not in QUERY_COMMANDS:
            return
        for collection, flt, sort in extract(event.command_name, event.command):
            shape = f"{event.command_name} {filter_shape(flt)}{sort_shape(sort)}"
            key = (service, collection, shape)
            query = self.queries.get(key)
            if query is None:
                query = self.queries[key] = Query(
                    service, collection, shape, dict(flt), dict(sort) if sort else None
                )
            query.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Nothing to do."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Nothing to do."""


def _constrained(flt: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """Fields a document must match: (all of them, those compared for equality)."""
    fields: set[str] = set()
    equal: set[str] = set()
    for key, value in flt.items():
        if key == "$and" and isinstance(value, list):
            for clause in value:
                more, more_equal = _constrained(clause)
                fields |= more
                equal |= more_equal
        elif not key.startswith("$"):
            fields.add(key)
            is_ops = isinstance(value, Mapping) and any(str(k).startswith("$") for k in value)
            if not is_ops or set(value) <= {"$eq", "$in"}:
                equal.add(key)
    return fields, equal


def _ors(flt: Mapping[str, Any]) -> list[list[Any]]:
    """Every ``$or`` the filter requires (top level or inside ``$and``)."""
    found = []
    for key, value in flt.items():
        if key == "$or" and isinstance(value, list):
            found.append(value)
        elif key == "$and" and isinstance(value, list):
            for clause in value:
                found += _ors(clause)
    return found


def _best(
    fields: set[str], equal: set[str], sort: Mapping[str, Any] | None, indexes: Sequence[Index]
) -> Index | None:
    if "_id" in equal:
        return next((i for i in indexes if i.keys == (("_id", 1),)), None)
    leading_sort = next(iter(sort), None) if sort else None
    best: tuple[int, ...] = (0,)
    chosen = None
    for index in indexes:
        prefix = 0
        for key, _ in index.keys:
            if key not in fields:
                break
            prefix += 1
        if not prefix:
            continue
        # Longest covered prefix, then most equalities in it, then an index that also gives
        # the sort order, then a secondary index over _id (a range on _id selects little).
        gives_sort = prefix < len(index.keys) and index.keys[prefix][0] == leading_sort
        score = (
            prefix,
            sum(1 for key, _ in index.keys[:prefix] if key in equal),
            int(gives_sort),
            int(index.first != "_id"),
        )
        if score > best:
            best, chosen = score, index
    return chosen


def serving_indexes(
    flt: Mapping[str, Any], sort: Mapping[str, Any] | None, indexes: Sequence[Index]
) -> list[Index]:
    """The indexes MongoDB can use for this filter (empty: a collection scan)."""
    fields, equal = _constrained(flt)
    index = _best(fields, equal, sort, indexes)
    if index is not None:
        return [index]
    for branches in _ors(flt):
        served = [serving_indexes(b, None, indexes) for b in branches]
        if served and all(served):
            return list(dict.fromkeys(i for found in served for i in found))
    if not flt and sort:
        leading = next(iter(sort))
        return [i for i in indexes if i.first == leading][:1]
    return []
