"""jtop adapter on jetson.power dicts in the jetson-stats 4.x layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge_trt_ros.errors import SensorError
from edge_trt_ros.power.jtop_sensor import JtopSensor, parse_jtop_power, probe_jtop
from edge_trt_ros.power.reading import Scope
from edge_trt_ros.power.select import FallbackSensor

FIXTURES = Path(__file__).parent / "fixtures" / "power"


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text()))


class FakeJtop:
    """Stands in for ``jtop.jtop``: ``start``, ``close``, ``power``, ``is_alive``."""

    def __init__(self, power: dict[str, Any], fail_start: bool = False) -> None:
        self.power = power
        self.is_alive = True
        self.fail_start = fail_start
        self.closed = False
        self.nvpmodel = "15W"
        self.jetson_clocks = "False"

    def start(self) -> None:
        if self.fail_start:
            raise RuntimeError("The jtop.service is not active. Please run: sudo systemctl ...")

    def close(self) -> None:
        self.closed = True


def test_orin_nx_total_is_named_module_input_rail() -> None:
    total, scope, name, rails = parse_jtop_power(load("jtop_orin_nx.json"))
    assert total == pytest.approx(7.096)  # tot.power, not tot.avg (6.120)
    assert scope == Scope.MODULE_INPUT and name == "VDD_IN"
    assert rails == pytest.approx({"VDD_IN": 7.096, "VDD_CPU_GPU_CV": 2.511, "VDD_SOC": 1.944})


def test_agx_orin_summed_total_without_volt_curr_or_name() -> None:
    power = load("jtop_agx_orin.json")
    assert set(power["tot"]) == {"power", "avg"}
    total, scope, name, rails = parse_jtop_power(power)
    assert total == pytest.approx(13.263) and scope == Scope.RAIL_SUM
    assert name == "sum(VDDQ_VDD2_1V8AO+VDD_CPU_CV+VDD_GPU_SOC+VIN_SYS_5V0)"
    assert sum(rails.values()) == pytest.approx(total)


def test_nano_layout_without_online_key() -> None:
    total, scope, name, rails = parse_jtop_power(load("jtop_nano.json"))
    assert (total, scope, name) == (pytest.approx(2.86), Scope.MODULE_INPUT, "POM_5V_IN")
    assert rails["POM_5V_CPU"] == pytest.approx(0.83)


def test_offline_rail_is_ignored() -> None:
    power = load("jtop_orin_nx.json")
    power["rail"]["VDD_SOC"]["online"] = False
    assert "VDD_SOC" not in parse_jtop_power(power)[3]


@pytest.mark.parametrize("bad", [{}, {"rail": {}}, {"rail": {}, "tot": {"avg": 1}}])
def test_empty_or_broken_dicts_are_sensor_errors(bad: dict[str, Any]) -> None:
    with pytest.raises(SensorError):
        parse_jtop_power(bad)


def test_sensor_reads_instantaneous_power_and_details() -> None:
    client = FakeJtop(load("jtop_orin_nx.json"))
    s = probe_jtop(lambda: client)
    r = s.read()
    assert s.name == "jtop" and s.source == "jtop:VDD_IN" and r.watts == pytest.approx(7.096)
    client.power["tot"]["power"] = 9000
    assert s.read().watts == pytest.approx(9.0)
    assert s.details() == {"nvpmodel": "15W", "jetson_clocks": "False"}
    s.close()
    assert client.closed


def test_service_not_running_is_a_reason() -> None:
    with pytest.raises(SensorError, match="jtop service not reachable.*systemctl"):
        probe_jtop(lambda: FakeJtop({}, fail_start=True))


def test_no_power_sensors_closes_client() -> None:
    client = FakeJtop({})
    with pytest.raises(SensorError, match="no power sensors"):
        probe_jtop(lambda: client)
    assert client.closed


def test_service_stopping_mid_run_degrades() -> None:
    client = FakeJtop(load("jtop_agx_orin.json"))
    backup = JtopSensor(FakeJtop(load("jtop_nano.json")))
    chain = FallbackSensor([JtopSensor(client), backup])
    assert chain.read().scope == Scope.RAIL_SUM
    client.is_alive = False
    r = chain.read()
    assert r.source == "jtop:POM_5V_IN" and chain.events[0][1:3] == ("jtop", "jtop")
