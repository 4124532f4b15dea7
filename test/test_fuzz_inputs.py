"""Fuzzing the other outside inputs: parameter values (params file, -p, ros2 param set and
~/switch_engine's strings), YAML hardware profiles (safe loading only), sensor sysfs files,
engine-cache entries and TensorRT plans. The property each time: a value, a clear error of
the documented type (or a cache miss), never another exception or a hang."""

from __future__ import annotations

import contextlib
import json
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fuzz_support import FUZZ, count, write_report
from hypothesis import given
from hypothesis import strategies as st
from rclpy.parameter import Parameter
from tensorrt_standin import PLAN_MAGIC, World, make_tensorrt
from test_power_sysfs import make_hwmon, make_rapl

from edge_trt_ros.engines.cache import MAGIC, CacheKey, EngineCache
from edge_trt_ros.engines.spec import parse_device
from edge_trt_ros.engines.tensorrt_build import make_logger
from edge_trt_ros.errors import EdgeTrtError, SensorError
from edge_trt_ros.power.ina3221 import probe_ina3221
from edge_trt_ros.power.profiles import load_profiles, parse_profile
from edge_trt_ros.power.rapl import probe_rapl
from edge_trt_ros.power.thermal import read_thermal_zones
from edge_trt_ros.ros.parameters import SPECS, check_overrides, check_static, choice_refusal

ROOT = Path(__file__).resolve().parents[1]
values = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
                   st.lists(st.text(max_size=10), max_size=4),
                   st.lists(st.integers(), max_size=3), st.binary(max_size=8))
names = st.one_of(st.sampled_from(sorted(SPECS)), st.text(max_size=30),
                  st.sampled_from(sorted(SPECS)).map(lambda n: n[:-1] + "x"))


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    write_report()


def _tmp() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="fuzz.") as tmp:
        yield Path(tmp)


# -- parameters and service strings -------------------------------------------------------------
@FUZZ
@given(given_values=st.dictionaries(names, values, max_size=8))
def test_start_up_parameters_are_coerced_refused_or_warned(given_values: dict[str, Any]) -> None:
    count("parameters: start-up values")
    fixed, problems, warnings = check_overrides(given_values)
    assert all(isinstance(p, str) and p for p in problems + warnings)
    assert len(fixed) + len(problems) == sum(n in SPECS for n in given_values)
    for name, value in fixed.items():
        spec = SPECS[name]
        assert type(value) is type(spec.default)
        if spec.bounds is not None:
            assert spec.bounds[0] <= value <= spec.bounds[1]
        if spec.choices is not None:
            assert value in spec.choices


@FUZZ
@given(name=names, value=st.one_of(st.text(max_size=30), st.integers(), st.floats(),
                                   st.booleans()), configured=st.booleans())
def test_runtime_parameter_changes_and_service_strings_get_a_reason(
        name: str, value: Any, configured: bool) -> None:
    count("parameters: runtime changes and service strings")
    result = check_static([Parameter(name, value=value)], configured)
    assert result.successful or result.reason
    why = choice_refusal(name, value)
    assert why is None or (name in why and isinstance(why, str))
    try:
        parse_device(str(value))
    except EdgeTrtError as exc:
        assert str(exc)


# -- YAML ------------------------------------------------------------------------------------------
PROFILE = yaml.safe_load((ROOT / "config/hardware/agx_orin.yaml").read_text())
yaml_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(),
                                     st.floats(), st.text(max_size=10)),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(
                               st.text(max_size=8), c, max_size=3), max_leaves=8)
TAGS = ["!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/new:os.system ['touch {marker}']", "!!binary AAAA", "&a [*a]",
        "{{: }}", "- [", "name: \"\\x00\"", "? - a\n  - b\n: c", "\t", "%TAG ! x\n---"]


@st.composite
def profile_texts(draw: st.DrawFn, marker: str) -> str:
    kind = draw(st.sampled_from(["mutated", "random", "tag"]))
    if kind == "tag":
        return draw(st.sampled_from(TAGS)).format(marker=marker)
    if kind == "random":
        return draw(st.text(max_size=200))
    data = dict(PROFILE)
    for key in draw(st.lists(st.sampled_from(sorted(PROFILE)), max_size=3)):
        if draw(st.booleans()):
            data.pop(key, None)
        else:
            data[key] = draw(yaml_values)
    return yaml.safe_dump(data)


@FUZZ
@given(data=st.data())
def test_hardware_profiles_load_or_name_the_bad_file_and_never_run_code(
        data: st.DataObject) -> None:
    count("YAML: hardware profiles")
    for tmp in _tmp():
        marker = tmp / "pwned"
        text = data.draw(profile_texts(str(marker)))
        (tmp / "x.yaml").write_text(text, encoding="utf-8")
        try:
            profiles = load_profiles(tmp)
        except ValueError as exc:
            assert "x.yaml" in str(exc)
        else:
            [profile] = profiles.values()
            assert profile.power_modes and math.isfinite(profile.idle_watts)
        assert not marker.exists()  # safe_load: no tag ever constructs a Python object
        with contextlib.suppress(ValueError):
            parse_profile(text)


def test_the_package_only_ever_loads_yaml_safely() -> None:
    """Static: no yaml.load/unsafe_load/full_load or Loader= anywhere in the package."""
    bad = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "edge_trt_ros").rglob("*.py")
           for i, line in enumerate(p.read_text().splitlines(), 1)
           if any(t in line for t in ("yaml.load(", "yaml.unsafe_load", "yaml.full_load",
                                       "Loader="))]
    assert not bad, bad


# -- sensor sysfs ----------------------------------------------------------------------------------
sysfs_text = st.one_of(st.integers(-2**70, 2**70).map(str), st.text(max_size=20),
                       st.sampled_from(["", "\x00", "12 mA", "-1", "nan", "1e9", "0x10",
                                        "99999999999999999999999999", "\n\n"]),
                       st.binary(max_size=16).map(lambda b: b.decode("latin-1")))


@FUZZ
@given(volts=st.lists(sysfs_text, min_size=3, max_size=3),
       amps=st.lists(sysfs_text, min_size=3, max_size=3),
       labels=st.lists(st.one_of(st.sampled_from(["VDD_IN", "VDD_CPU_GPU_CV", "NC", ""]),
                                 st.text(max_size=12)), min_size=3, max_size=3))
def test_ina3221_files_read_or_raise_sensor_error(volts: list[str], amps: list[str],
                                                  labels: list[str]) -> None:
    count("sysfs: INA3221")
    for root in _tmp():
        dev = make_hwmon(root, 1, "1-0040", {n + 1: ("VDD_IN", 5000, 1000) for n in range(3)})
        for n in range(3):
            (dev / f"in{n + 1}_label").write_text(labels[n] + "\n")
            (dev / f"in{n + 1}_input").write_text(volts[n] + "\n")
            (dev / f"curr{n + 1}_input").write_text(amps[n] + "\n")
        try:
            sensor = probe_ina3221(root)
            reading = sensor.read()
        except SensorError as exc:
            assert str(exc)
            continue
        assert isinstance(reading.watts, float)


@FUZZ
@given(energy=sysfs_text, max_range=sysfs_text, later=sysfs_text, temp=sysfs_text,
       trip=sysfs_text)
def test_rapl_and_thermal_files_read_or_raise_sensor_error(
        energy: str, max_range: str, later: str, temp: str, trip: str) -> None:
    count("sysfs: RAPL and thermal")
    for root in _tmp():
        base = make_rapl(root, {"intel-rapl:0": ("package-0", 1, 1)})
        zone = base / "intel-rapl:0"
        (zone / "energy_uj").write_text(energy)
        (zone / "max_energy_range_uj").write_text(max_range)
        try:
            sensor = probe_rapl(root)
            (zone / "energy_uj").write_text(later)
            sensor.read()
        except SensorError as exc:
            assert str(exc)
        thermal = root / "sys/class/thermal/thermal_zone0"
        thermal.mkdir(parents=True)
        (thermal / "temp").write_text(temp)
        (thermal / "type").write_text("cpu-thermal")
        (thermal / "trip_point_0_type").write_text("passive")
        (thermal / "trip_point_0_temp").write_text(trip)
        for z in read_thermal_zones(root):
            assert isinstance(z.celsius, float)


# -- engine cache entries and plans ----------------------------------------------------------------
KEY = CacheKey("a" * 64, "tensorrt", "10.13.0", "Stand-in GPU (sm_87)", {"fusion": "max"})


@st.composite
def damaged_entries(draw: st.DrawFn, good: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "flip", "random", "header", "append"]))
    if kind == "truncate":
        return good[:draw(st.integers(0, len(good) - 1))]
    if kind == "random":
        return draw(st.binary(max_size=512))
    if kind == "header":
        return MAGIC + draw(st.binary(max_size=200))
    if kind == "append":
        return good + draw(st.binary(min_size=1, max_size=32))
    data = bytearray(good)
    i = draw(st.integers(0, len(data) - 1))
    data[i] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


@FUZZ
@given(data=st.data(), manifest_kind=st.sampled_from(["kept", "random", "json", "absent"]))
def test_damaged_cache_entries_and_manifests_are_misses(data: st.DataObject,
                                                        manifest_kind: str) -> None:
    count("engine cache: entries and manifests")
    world = World()
    trt = make_tensorrt(world)
    runtime = trt.Runtime(make_logger(trt))
    plan = PLAN_MAGIC + json.dumps({"version": "10.13.0", "io": [], "layers": [],
                                    "verbosity": "DETAILED"}).encode()
    for tmp in _tmp():
        cache = EngineCache(tmp / "cache")
        path = cache.store(KEY, plan)
        entry = path.read_bytes()
        path.write_bytes(data.draw(damaged_entries(entry)))
        manifest = cache.manifest_path(KEY)
        if manifest_kind == "random":
            manifest.write_bytes(data.draw(st.binary(max_size=300)))
        elif manifest_kind == "json":
            manifest.write_text(json.dumps(data.draw(yaml_values)))
        elif manifest_kind == "absent":
            manifest.unlink()
        engine = cache.load(KEY, runtime.deserialize_cuda_engine)
        if engine is not None:  # only the untouched plan with its own manifest loads
            assert path.read_bytes() == entry and manifest_kind == "kept"


@FUZZ
@given(blob=st.one_of(st.binary(max_size=512), st.binary(max_size=128).map(
    lambda b: PLAN_MAGIC + b), st.sampled_from([
        PLAN_MAGIC + json.dumps({"version": "8.6.1"}).encode(),  # another TensorRT's plan
        PLAN_MAGIC + b"{", b""])))
def test_random_or_foreign_plans_in_the_cache_are_rebuilt(blob: bytes) -> None:
    count("engine cache: random and foreign plans")
    world = World()
    trt = make_tensorrt(world)
    runtime = trt.Runtime(make_logger(trt))
    for tmp in _tmp():
        cache = EngineCache(tmp / "cache")
        cache.store(KEY, blob)  # as if this package had written it: the backend still decides
        fresh = PLAN_MAGIC + json.dumps({"version": "10.13.0", "io": [], "layers": [],
                                         "verbosity": "DETAILED"}).encode()
        engine, built = cache.get_or_build(KEY, lambda f=fresh: f,
                                           runtime.deserialize_cuda_engine)
        assert engine is not None
        try:  # what TensorRT (here the stand-in) makes of the stored bytes on its own
            refused = runtime.deserialize_cuda_engine(blob) is None
        except Exception:
            refused = True
        assert built == refused
