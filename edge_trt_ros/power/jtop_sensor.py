"""jetson-stats (``jtop``) as a power source, used when its root service is running.

jtop reads the same INA3221 rails as :mod:`ina3221`, but through its root service, so it
works where sysfs is not readable to the node's user; it also reports nvpmodel and
jetson_clocks. ``jetson.power`` (jetson-stats 4.x) is
``{'rail': {NAME: {'volt': mV, 'curr': mA, 'power': mW, 'avg': mW, 'warn': mA,
'crit': mA, 'online': bool}}, 'tot': {...}}``. ``tot`` is the VDD_IN / POM_5V_IN rail dict
plus ``'name'`` (and that rail is then removed from ``rail``); on boards without such a
rail, ``tot`` is only ``{'power': sum, 'avg': sum}``. We integrate the instantaneous
``power``; ``avg`` is jtop's running mean since it started and would smear any window.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from edge_trt_ros.errors import SensorError
from edge_trt_ros.power.reading import PowerReading, Scope

log = logging.getLogger("edge_trt_ros.power.jtop")


def parse_jtop_power(power: Mapping[str, Any]) -> tuple[float, str, str, dict[str, float]]:
    """Turn a ``jetson.power`` dict into (total W, scope, total name, rail W by name)."""
    if not power or "tot" not in power:
        raise SensorError("jtop reports no power sensors (jetson.power is empty)")
    tot = power["tot"]
    try:
        total_w = float(tot["power"]) / 1000.0
    except (KeyError, TypeError, ValueError) as e:
        raise SensorError(f"jtop power dict has no usable tot.power: {tot!r}") from e
    rails: dict[str, float] = {}
    for name, rail in dict(power.get("rail", {})).items():
        if isinstance(rail, Mapping) and rail.get("online", True) and "power" in rail:
            rails[str(name)] = float(rail["power"]) / 1000.0
    if "name" in tot:
        name = str(tot["name"])
        rails[name] = total_w
        return total_w, Scope.MODULE_INPUT, name, rails
    # jtop summed every rail it found (AGX Orin/Xavier; may include USB-C supplies).
    return total_w, Scope.RAIL_SUM, "sum(" + "+".join(sorted(rails)) + ")", rails


class JtopSensor:
    """Power from a running jtop client (``from jtop import jtop``)."""

    name = "jtop"
    estimated = False

    def __init__(self, client: Any) -> None:
        self._client = client
        total_w, scope, total_name, _ = parse_jtop_power(client.power)
        self.scope = scope
        self.source = f"jtop:{total_name}"
        self._last_total = total_w

    def read(self) -> PowerReading:
        t = time.monotonic()
        try:
            alive = bool(getattr(self._client, "is_alive", True))
            power = self._client.power
        except Exception as e:  # the service socket went away
            raise SensorError(f"jtop client failed: {e}") from e
        if not alive:
            raise SensorError("jtop service stopped (client no longer alive)")
        total_w, scope, total_name, rails = parse_jtop_power(power)
        return PowerReading(total_w, t, scope, f"jtop:{total_name}", False, None, rails)

    def energy_j(self) -> float | None:
        return None

    def details(self) -> dict[str, str]:
        """nvpmodel and jetson_clocks state, as jtop reports them (strings, best effort)."""
        out: dict[str, str] = {}
        for attr in ("nvpmodel", "jetson_clocks"):
            try:
                value = getattr(self._client, attr)
            except Exception as e:  # jtop raises when the feature is missing
                value = f"unavailable ({e})"
            out[attr] = str(value)
        return out

    def close(self) -> None:
        try:
            self._client.close()
        except Exception as e:
            log.debug("jtop close failed: %s", e)


def probe_jtop(factory: Callable[[], Any] | None = None, interval_s: float = 0.5) -> JtopSensor:
    """Connect to jtop.service; raises SensorError saying why not."""
    if factory is None:
        try:
            module = importlib.import_module("jtop")
        except ImportError as e:
            raise SensorError(
                f"jetson-stats not installed (import jtop failed: {e}); "
                "`sudo pip3 install jetson-stats` on the robot"
            ) from e

        def factory() -> Any:
            return module.jtop(interval=interval_s)

    try:
        client = factory()
        client.start()
    except Exception as e:  # JtopException when jtop.service is not running
        raise SensorError(
            f"jtop service not reachable ({e}); `sudo systemctl restart jtop.service`"
        ) from e
    try:
        return JtopSensor(client)
    except SensorError:
        with contextlib.suppress(Exception):
            client.close()
        raise
