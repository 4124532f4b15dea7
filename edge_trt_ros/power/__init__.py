"""Power and efficiency telemetry (ROS-free): sensors, energy meter, hardware profiles.

Typical use in the node::

    sensor, detection = open_power_sensor(hardware_profile="auto")
    meter = EnergyMeter(sensor, macs=count_macs(model_path), window_s=10.0)
    sampler = PowerSampler(meter, period_s=0.05).start()
    ...  # per inference: meter.add_frames(1)
    snap = meter.snapshot()  # watts, mJ/frame, FPS/W, TOPS/W, estimated, scope, source
"""

from edge_trt_ros.errors import SensorError
from edge_trt_ros.power.energy import EfficiencySnapshot, EnergyMeter, efficiency, measure_idle
from edge_trt_ros.power.estimate import EstimatedSensor, estimate_watts
from edge_trt_ros.power.profiles import (
    HardwareProfile,
    PowerMode,
    hardware_profiles_dir,
    load_profiles,
    resolve_profile,
)
from edge_trt_ros.power.reading import PowerReading, PowerSensor, Scope
from edge_trt_ros.power.sampler import PowerSampler
from edge_trt_ros.power.select import Detection, FallbackSensor, detect_sensors, open_power_sensor
from edge_trt_ros.power.thermal import ThermalStatus, read_thermal

__all__ = [
    "Detection",
    "EfficiencySnapshot",
    "EnergyMeter",
    "EstimatedSensor",
    "FallbackSensor",
    "HardwareProfile",
    "PowerMode",
    "PowerReading",
    "PowerSampler",
    "PowerSensor",
    "Scope",
    "SensorError",
    "ThermalStatus",
    "detect_sensors",
    "efficiency",
    "estimate_watts",
    "hardware_profiles_dir",
    "load_profiles",
    "measure_idle",
    "open_power_sensor",
    "read_thermal",
    "resolve_profile",
]
