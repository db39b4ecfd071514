"""Simulated shoppers, catalog, search engine and clicks: traffic with a known ground truth,
and the event logs it writes."""

from ops.simulator.ab import ArmStats, EventSink, RankFn, TrafficStats, run_traffic
from ops.simulator.catalog import Catalog, Category, make_catalog
from ops.simulator.clicks import ClickModel, ClickOutcome
from ops.simulator.queries import Query, QueryModel
from ops.simulator.traffic import Request, Simulator
from ops.simulator.users import Population, SessionIntent, TasteParams, make_users

__all__ = [
    "ArmStats",
    "Catalog",
    "Category",
    "ClickModel",
    "ClickOutcome",
    "EventSink",
    "Population",
    "Query",
    "QueryModel",
    "RankFn",
    "Request",
    "SessionIntent",
    "Simulator",
    "TasteParams",
    "TrafficStats",
    "make_catalog",
    "make_users",
    "run_traffic",
]
