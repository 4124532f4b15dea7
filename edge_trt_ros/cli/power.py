"""``edge-trt power``: check a robot's power telemetry in one command.

Prints the hardware profile and why it was chosen, every sensor candidate (used or
skipped, with the reason), a few seconds of readings, the energy over that time and the
temperatures.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from edge_trt_ros.power.energy import EnergyMeter
from edge_trt_ros.power.nvml import NvmlSensor
from edge_trt_ros.power.sampler import PowerSampler
from edge_trt_ros.power.select import open_power_sensor
from edge_trt_ros.power.sysfs import ROOT_ENV, system_root
from edge_trt_ros.power.thermal import read_thermal


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("power", help="show power sensors, hardware profile, readings")
    p.add_argument("--hardware-profile", default="auto", help="profile name or 'auto'")
    p.add_argument("--power-mode", default=None, help="nvpmodel mode for the estimate")
    p.add_argument("--seconds", type=float, default=3.0, help="how long to read")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between lines")
    p.add_argument("--root", default=system_root(),
                   help=f"filesystem root of /sys and /proc (default: ${ROOT_ENV} or /)")
    p.add_argument("--no-jtop", action="store_true", help="do not try jetson-stats")
    p.add_argument("--no-nvml", action="store_true", help="do not try NVML")
    p.set_defaults(func=run)


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "n/a" if x is None else format(x, spec)


def run(args: argparse.Namespace) -> int:
    """Run the check; returns a process exit code (0 even when only the estimate works)."""
    try:
        sensor, det = open_power_sensor(
            args.hardware_profile,
            args.root,
            power_mode=args.power_mode,
            use_jtop=not args.no_jtop,
            use_nvml=not args.no_nvml,
        )
    except ValueError as e:  # an unknown or malformed hardware profile: say which exist
        print(f"edge-trt power: error: {e}", file=sys.stderr)
        return 2
    prof = det.profile
    out = sys.stdout
    print(f"Hardware profile: {prof.name} ({prof.display_name}) - {det.profile_reason}", file=out)
    print(
        f"  memory {prof.memory_bandwidth_gbps:g} GB/s, power modes "
        + ", ".join(f"{m.name}={m.watts:g}W" for m in prof.power_modes)
        + f" (default {prof.default_power_mode}), idle {prof.idle_watts:g} W, "
        f"DLA cores {prof.dla_cores}, default fusion profile {prof.default_fusion_profile}",
        file=out,
    )
    print("Power sensors, most specific first:", file=out)
    for name, reason in det.skipped:
        print(f"  skipped  {name:<14} {reason}", file=out)
    for i, s in enumerate(det.sensors):
        role = "USING  " if i == 0 else "standby"
        flag = " [ESTIMATED]" if s.estimated else ""
        print(f"  {role}  {s.name:<14} scope={s.scope} source={s.source}{flag}", file=out)
        details = getattr(s, "details", None)
        if callable(details):
            for k, v in details().items():
                print(f"           {k}: {v}", file=out)

    meter = EnergyMeter(sensor, window_s=None)
    meter.reset()
    t0 = time.monotonic()
    print(f"Readings ({args.seconds:g} s):", file=out)
    with PowerSampler(meter, period_s=min(0.05, args.interval)):
        while (elapsed := time.monotonic() - t0) < args.seconds:
            time.sleep(min(args.interval, max(args.seconds - elapsed, 0.0)))
            r = sensor.read()
            rails = ", ".join(f"{k}={v:.2f}" for k, v in r.rails.items())
            print(
                f"  t={r.t - t0:6.2f}s  {r.watts:7.2f} W  scope={r.scope}"
                + (" ESTIMATED" if r.estimated else "")
                + (f"  [{rails}]" if rails else ""),
                file=out,
            )
    snap = meter.snapshot()
    print(
        f"Energy: {snap.energy_j:.2f} J over {snap.window_s:.2f} s = mean "
        f"{_fmt(snap.mean_watts)} W (method {snap.method}, scope {snap.scope}"
        + (", ESTIMATED" if snap.estimated else "")
        + ")",
        file=out,
    )
    for t, frm, to, reason in sensor.events:
        print(f"  degraded at t={t - t0:.2f}s: {frm} -> {to}: {reason}", file=out)
    nv = next((s for s in det.sensors if isinstance(s, NvmlSensor)), None)
    th = read_thermal(args.root, nv)
    parts = [f"{z.type}={z.celsius:.1f}C" for z in th.zones]
    if th.gpu_celsius is not None:
        parts.append(f"gpu={th.gpu_celsius:.0f}C")
    print(
        f"Temperature: max {_fmt(th.max_celsius, '.1f')} C"
        + (f" ({', '.join(parts)})" if parts else " (no thermal zones readable)")
        + f"; throttling: {'YES ' + ', '.join(th.reasons) if th.throttling else 'no'}",
        file=out,
    )
    sensor.close()
    return 0

