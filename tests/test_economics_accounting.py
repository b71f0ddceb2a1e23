"""Live accounting on hand-checked cases: busy time shared by phase, node cost split into
sold and unsold, margins, payback, and the node file's errors."""

import tomllib
from pathlib import Path

import pytest

from tokenmill.core.money import PICO
from tokenmill.core.power import measured_power
from tokenmill.economics.accounting import Served, account
from tokenmill.economics.live import estimated_power, logged_or_estimated
from tokenmill.economics.nodes import Node, NodeConfigError, parse_nodes
from tokenmill.economics.time_share import Span, share_time
from tokenmill.observe.power import PowerLog, PowerSource
from tokenmill.store.db import make_engine, migrate, sqlite_url

A = Span(0.0, 2.0, 10.0)  # prefill 0-2, decode 2-10
B = Span(5.0, 6.0, 15.0)  # prefill 5-6, decode 6-15


def test_busy_time_is_shared_among_requests_in_flight_by_phase() -> None:
    sharing = share_time([A, B], 0.0, 20.0)
    a, b = sharing.shares
    # [0,2) A prefill alone; [2,5) A decode alone; [5,6) A decode + B prefill, half each;
    # [6,10) both decode, half each; [10,15) B decode alone.
    assert (a.prefill_s, a.decode_s) == (2.0, 3.0 + 0.5 + 2.0)
    assert (b.prefill_s, b.decode_s) == (0.5, 2.0 + 5.0)
    assert sharing.busy_s == 15.0
    assert sum(s.prefill_s + s.decode_s for s in sharing.shares) == sharing.busy_s


def test_sharing_is_clipped_to_the_window() -> None:
    sharing = share_time([A, B], 4.0, 12.0)
    a, b = sharing.shares
    assert (a.prefill_s, a.decode_s) == (0.0, 1.0 + 0.5 + 2.0)  # already decoding at 4
    assert (b.prefill_s, b.decode_s) == (0.5, 2.0 + 2.0)
    assert sharing.busy_s == 8.0


def test_a_request_without_a_first_token_was_all_prefill() -> None:
    (share,) = share_time([Span(0.0, None, 4.0)], 0.0, 10.0).shares
    assert (share.prefill_s, share.decode_s) == (4.0, 0.0)


def test_a_window_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        share_time([A], 5.0, 1.0)


def _nodes(cost_table: str, extra: str = "") -> list[Node]:
    text = f"""
[node.box]
facility = "us-industrial"
deployments = ["chat-*"]
{extra}
cost = {cost_table}
"""
    return parse_nodes(tomllib.loads(text))


def _served(rid: str, tenant: str, span: Span, tokens: tuple[int, int]) -> Served:
    return Served(rid, tenant, "m", "chat-m", "chat-m-0", span, *tokens, counted=True)


def test_node_cost_splits_into_attributed_and_unsold_and_margins_follow() -> None:
    # $3.60/h with power included: $0.001 a second, whatever the power.
    nodes = _nodes('{ mode = "rented", per_hour = "3.60" }')
    served = [_served("a", "t1", A, (100, 50)), _served("b", "t2", B, (300, 100))]
    revenue = {("t1", "m", "chat-m", "USD"): PICO // 100, ("t2", "m", "chat-m", "USD"): 0}
    report = account(served, revenue, nodes, 0.0, 100.0, lambda *_: None)
    (node,) = report["nodes"]
    assert node["inputs"]["hour_cost"]["total"] == "3.600000"
    assert node["utilisation"] == 0.15
    assert (node["cost"], node["cost_sold"], node["unsold_capacity"]) == (
        "0.100000",
        "0.015000",
        "0.085000",
    )
    assert node["tokens"] == 550
    assert node["cost_per_1m_tokens"] == "181.818182"  # 0.1 / 550 x 1e6
    assert node["gross_margin"] == "-0.090000"  # earned 0.01 against 0.1
    t1 = next(r for r in report["by_tenant"] if r["tenant"] == "t1")
    # A: 2 s prefill, 5.5 s decode, at $0.001/s.
    assert (t1["input_cost"], t1["output_cost"]) == ("0.002000", "0.005500")
    assert t1["cost_per_1m_input"] == "20.000000"  # 0.002 / 100 tokens x 1e6
    assert t1["gross_margin"] == "0.002500"  # 0.01 - 0.0075
    (replica,) = report["by_replica"]
    assert replica["cost"] == "0.015000" and "revenue" not in replica
    assert node["energy"]["basis"].startswith("unknown")


def test_owned_node_pays_back_from_what_each_hour_leaves_over() -> None:
    # Capital: 8760 over 1 year at 0% = $1.00 per hour. Energy: 1 kW x PUE 1.56 x $0.08.
    nodes = _nodes('{ mode = "owned", capex = "8760", years = 1, rate = "0" }')
    revenue = {("t", "m", "chat-m", "USD"): 2 * PICO}  # $2 in the hour
    measured = measured_power(1000.0, "test meter")
    report = account([], revenue, nodes, 0.0, 3600.0, lambda *_: measured)
    (node,) = report["nodes"]
    assert node["inputs"]["hour_cost"] == {
        "capital": "1.000000",
        "energy": "0.124800",
        "fixed_opex": "0.000000",
        "total": "1.124800",
    }
    # (2 - 0.1248) x 730 = 1368.896 a month; 8760 / 1368.896 = 6.399...
    assert node["payback_months"] == "6.4"
    assert node["roi"] == "0.778094"  # (2 - 1.1248) / 1.1248 = 0.7780939...
    assert node["energy"]["kwh_it"] == 1.0 and node["energy"]["kwh_all_in"] == 1.56


def test_rented_node_has_no_payback_and_estimates_are_labelled() -> None:
    nodes = _nodes('{ mode = "rented", per_hour = "1" }', "power_w = 100\nidle_w = 20")
    served = [_served("a", "t", Span(0.0, 1.0, 1800.0), (1000, 1000))]
    report = account(served, {}, nodes, 0.0, 3600.0, estimated_power)
    (node,) = report["nodes"]
    assert node["payback_months"] is None
    energy = node["energy"]
    assert energy["estimated"] is True and "estimate" in energy["basis"]
    assert energy["watts"] == 60.0  # 20 + (100 - 20) x 0.5
    # 60 W over an hour for 2000 tokens: 216000 J / 2000 = 108 J/token.
    assert energy["joules_per_token_it"] == pytest.approx(108.0)
    assert energy["joules_per_token_all_in"] == pytest.approx(108.0 * 1.56)


def test_deployments_without_a_node_are_listed_not_costed() -> None:
    nodes = _nodes('{ mode = "rented", per_hour = "1" }')
    stray = Served("x", "t", "m", "other", "other-0", Span(0, 1, 2), 5, 5, counted=True)
    report = account([stray], {}, nodes, 0.0, 10.0, lambda *_: None)
    assert report["without_node"] == [{"deployment": "other", "tokens": 10}]
    assert report["nodes"][0]["tokens"] == 0


@pytest.mark.parametrize(
    ("cost_table", "message"),
    [
        ('{ mode = "rented", per_hour = 0.5 }', "decimal strings"),
        ('{ mode = "bought" }', "owned, leased or rented"),
        ('{ mode = "owned", capex = "1", years = 0, rate = "0.1" }', "years"),
        ('{ mode = "leased", per_month = "9", availability = "1.5" }', "availability"),
        ('{ mode = "rented", per_hour = "-1" }', ">= 0"),
    ],
)
def test_bad_node_costs_are_refused_with_the_path(cost_table: str, message: str) -> None:
    with pytest.raises(NodeConfigError, match=message) as err:
        _nodes(cost_table)
    assert "node.box" in str(err.value)


def test_unknown_facility_and_hardware_are_named() -> None:
    with pytest.raises(NodeConfigError, match="unknown facility"):
        parse_nodes(tomllib.loads('[node.x]\nfacility = "mars"\ncost = {mode="rented"}'))
    with pytest.raises(NodeConfigError, match="hardware"):
        _nodes('{ mode = "rented", per_hour = "1" }', 'hardware = "abacus-9000"')
    (node,) = _nodes('{ mode = "rented", per_hour = "1" }', 'hardware = "H100"\ndevices = 8')
    assert node.power_w == 5600.0 and "catalog TDP" in node.power_basis


def test_logged_power_wins_over_the_estimate_for_every_node_that_has_samples(
    tmp_path: Path,
) -> None:
    db = make_engine(sqlite_url(tmp_path))
    migrate(db)
    log = PowerLog(db, PowerSource())
    for at, watts in ((0.0, 40.0), (60.0, 50.0), (120.0, 70.0)):
        log.record("box", measured_power(watts, "measured: RAPL 1 CPU package(s)"), at)
    (node,) = _nodes('{ mode = "rented", per_hour = "1" }', "power_w = 100")
    power_of = logged_or_estimated(log)
    logged = power_of(node, 0.5, 0.0, 120.0)
    assert logged is not None and not logged.estimated
    assert logged.watts == 60.0  # (50 x 60 + 70 x 60) / 120
    assert "RAPL" in logged.basis
    later = power_of(node, 0.5, 1000.0, 2000.0)  # no samples then: the node file's estimate
    assert later is not None and later.estimated and later.watts == 50.0
    # Another node, whose agent (the Ray runtime's) logged its own samples under its name.
    log.record("gpu-2", measured_power(700.0, "measured: NVML 1 GPU(s)"), 0.0)
    log.record("gpu-2", measured_power(900.0, "measured: NVML 1 GPU(s)"), 60.0)
    (other,) = parse_nodes(
        tomllib.loads(
            '[node.gpu-2]\nfacility = "us-industrial"\n'
            'power_w = 1000\ncost = {mode="rented", per_hour="1"}'
        )
    )
    theirs = power_of(other, 0.1, 0.0, 60.0)
    assert theirs is not None and not theirs.estimated and theirs.watts == 900.0
    assert "NVML" in theirs.basis
