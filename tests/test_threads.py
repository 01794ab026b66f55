"""Thread defaults: the OpenMP wait policy fcndetect sets before torch loads, and the user's own kept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fcndetect.threads import ENV_DEFAULTS, apply_env_defaults, default_num_threads, wait_policy_applies


def test_sets_the_short_spin_when_nothing_is_set():
    env: dict[str, str] = {"PATH": "/bin"}
    assert apply_env_defaults(env) == {"GOMP_SPINCOUNT": "1000"}
    assert env == {"PATH": "/bin", **ENV_DEFAULTS}


@pytest.mark.parametrize("key, value", [("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "10000"),
                                        ("KMP_BLOCKTIME", "0"), ("OMP_WAIT_POLICY", "")])
def test_keeps_the_users_setting(key, value):
    env = {key: value}
    assert apply_env_defaults(env) == {}
    assert env == {key: value}


def test_default_threads_divide_the_cores_among_workers():
    assert default_num_threads(2, 1) == 2
    assert default_num_threads(2, 0) == 2
    assert default_num_threads(8, 3) == 2
    assert default_num_threads(2, 4) == 1


def test_wait_policy_applies_only_before_torch_loads():
    import torch  # noqa: F401

    assert not wait_policy_applies()


def _spincount(code: str, **env: str) -> str:
    """libgomp's spin count in a fresh interpreter running ``code`` (``OMP_DISPLAY_ENV=VERBOSE`` prints it)."""
    full = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    full.update(env, OMP_DISPLAY_ENV="VERBOSE")
    p = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, check=True)
    lines = [ln.strip() for ln in p.stderr.splitlines() if ln.strip().startswith("GOMP_SPINCOUNT")]
    if not lines:
        pytest.skip("torch's OpenMP runtime is not GNU libgomp (no GOMP_SPINCOUNT displayed)")
    return lines[0]


@pytest.mark.slow  # fresh interpreters importing torch
def test_openmp_sleeps_when_fcndetect_is_imported_first():
    assert _spincount("import fcndetect, torch") == "GOMP_SPINCOUNT = '1000'"  # the short spin
    assert _spincount("import torch, fcndetect") == "GOMP_SPINCOUNT = '300000'"  # too late: libgomp's default
    assert _spincount("import fcndetect, torch", OMP_WAIT_POLICY="ACTIVE") != "GOMP_SPINCOUNT = '1000'"


def test_available_cpus_follow_affinity_and_cgroup_quota(tmp_path):
    from fcndetect.threads import available_cpus

    affinity = len(os.sched_getaffinity(0))
    assert available_cpus(tmp_path) == affinity  # no cpu.max: the affinity mask
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == affinity
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU rounds up to one
    assert available_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("garbage\n")
    assert available_cpus(tmp_path) == affinity
    assert default_num_threads() == max(1, available_cpus())


def _late_warning(code: str) -> list[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    p = subprocess.run([sys.executable, "-W", "always", "-c", code], env=full, capture_output=True, text=True,
                       check=True)
    return [ln for ln in p.stderr.splitlines() if "GOMP_SPINCOUNT=1000" in ln]


@pytest.mark.slow  # fresh interpreters importing torch
def test_api_users_who_imported_torch_first_are_told_once():
    build_twice = "from fcndetect import Detector; Detector(); Detector()"
    late = _late_warning("import torch, fcndetect; " + build_twice)
    assert len(late) == 1 and "import fcndetect before torch" in late[0]
    assert _late_warning("import fcndetect, torch; " + build_twice) == []


def test_import_sets_only_the_documented_variable():
    code = ("import os, json; before = dict(os.environ); import fcndetect; "
            "print(json.dumps({k: v for k, v in os.environ.items() if before.get(k) != v}))")
    full = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")}
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, check=True).stdout
    import json

    assert json.loads(out) == ENV_DEFAULTS
