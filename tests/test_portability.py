"""Runs on every x86-64 CPU: numba's portable target, crash containment, no orphaned workers."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from fuserec.encode.audio import FEATURE_SIZES, LibrosaAudioEncoder, clip_features
from fuserec.portable import choose_numba_target, cpu_flags, portable_x86_level
from fuserec.workers import CrashIsolatingPool, WorkerCrash, run_isolated

SR = 22_050


def _pulsed_tone(path: Path, freq: float = 220.0, seconds: float = 4.0) -> Path:
    """A tone at ``freq`` Hz switched on and off twice a second (120 pulses per minute)."""
    t = np.arange(int(seconds * SR)) / SR
    y = 0.5 * np.sin(2 * np.pi * freq * t) * (np.mod(t * 2, 1) < 0.5)
    sf.write(path, y.astype(np.float32), SR)
    return path


def _offset(name: str) -> int:
    names = list(FEATURE_SIZES)
    return sum(FEATURE_SIZES[n] for n in names[: names.index(name)])


# --- the numba target ------------------------------------------------------------------------

def test_a_user_setting_is_kept():
    env = {"NUMBA_CPU_NAME": "znver4"}
    assert choose_numba_target(env) == ("znver4", "user")
    assert env["NUMBA_CPU_NAME"] == "znver4"


def test_portable_level_follows_the_cpu_flags():
    v3 = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "abm", "xsave", "sse4_2",
          "popcnt", "ssse3", "sse4_1", "cx16", "lahf_lm", "avx512f"}
    assert portable_x86_level(frozenset(v3)) == "x86-64-v3"
    assert portable_x86_level(frozenset(v3 - {"avx2"})) == "x86-64-v2"
    assert portable_x86_level(frozenset()) == "x86-64"


def test_importing_fuserec_sets_a_portable_target_for_numba():
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    code = ("import fuserec, os, numba.core.config as c; "
            "print(os.environ.get('NUMBA_CPU_NAME'), c.CPU_NAME)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    if os.uname().machine == "x86_64":
        assert out[0] == out[1] == portable_x86_level(cpu_flags())
        assert not out[0].startswith("znver")


_DESCRIBE_IN_CHILD = textwrap.dedent("""
    import json, sys
    from fuserec.encode.audio import LibrosaAudioEncoder
    paths = sys.argv[1:]
    enc = LibrosaAudioEncoder(workers=2)
    out = {}
    for batch in enc.encode_batches(paths, batch_size=2):
        for i, vec in zip(batch.indices, batch.vectors):
            out[paths[i]] = [float(v) for v in vec]
        for i, reason in batch.errors:
            out[paths[i]] = reason
    enc.close()
    print(json.dumps(out))
""")


def _describe_in_child(paths: list[Path], **env_extra: str) -> tuple[int, dict, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")} | env_extra
    proc = subprocess.run([sys.executable, "-c", _DESCRIBE_IN_CHILD, *map(str, paths)],
                          env=env, capture_output=True, text=True, timeout=300)
    lines = proc.stdout.strip().splitlines()
    return proc.returncode, json.loads(lines[-1]) if lines else {}, proc.stderr


@pytest.mark.slow
def test_audio_descriptor_in_a_fresh_process(tmp_path):
    """The default environment, as a new user has it: a known tone gets its known facts."""
    paths = [_pulsed_tone(tmp_path / f"tone{i}.wav", f) for i, f in enumerate((220.0, 440.0))]
    code, out, err = _describe_in_child(paths)
    assert code == 0, err
    for path in paths:
        vec = np.asarray(out[str(path)])
        chroma = vec[_offset("chroma"): _offset("chroma") + 12]
        assert int(np.argmax(chroma)) == 9, chroma  # pitch class A, for 220 Hz and 440 Hz
        assert 110 <= vec[_offset("tempo")] * 100 <= 130  # two pulses a second: ~120 BPM
        # the same values as in this process (numba compiled for its own target here)
        np.testing.assert_allclose(vec, clip_features(str(path))[0], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.skipif("avx512f" not in cpu_flags(), reason="needs a CPU with AVX-512")
def test_audio_descriptor_under_the_zen4_target(tmp_path):
    """What a Zen 4 host compiles for by default, forced here: the run survives, and every
    clip is either encoded with the right values or reported as an error naming it."""
    paths = [_pulsed_tone(tmp_path / f"tone{i}.wav", f) for i, f in enumerate((220.0, 440.0))]
    code, out, err = _describe_in_child(paths, NUMBA_CPU_NAME="znver4")
    assert code == 0, err
    assert set(out) == {str(p) for p in paths}
    for path in paths:
        got = out[str(path)]
        if isinstance(got, str):
            assert str(path) in got and "worker process" in got
        else:
            np.testing.assert_allclose(got, clip_features(str(path))[0], rtol=1e-4, atol=1e-4)


# --- crash containment -----------------------------------------------------------------------

def _square_or_crash(x: int) -> int:
    if x % 5 == 3:
        ctypes.string_at(0)  # a segmentation fault, as a broken native kernel would cause
    return x * x


def test_a_crashing_input_fails_alone():
    with CrashIsolatingPool(2) as pool:
        out = list(pool.imap(_square_or_crash, range(12)))
    for x, got in enumerate(out):
        if x % 5 == 3:
            assert isinstance(got, WorkerCrash) and "SIGSEGV" in got.reason
        else:
            assert got == x * x
    assert pool.crashed == 2


def test_run_isolated_reports_the_signal():
    assert run_isolated(_square_or_crash, 4) == 16
    crash = run_isolated(_square_or_crash, 3)
    assert isinstance(crash, WorkerCrash) and crash.reason.endswith("SIGSEGV")


class _CrashOnMarkedFiles(LibrosaAudioEncoder):
    @staticmethod
    def analyse(path: str):
        if "crash" in Path(path).name:
            ctypes.string_at(0)
        return clip_features(path)


def test_audio_encoding_goes_on_past_a_crashing_file(tmp_path):
    paths = [_pulsed_tone(tmp_path / name) for name in ("a.wav", "crash.wav", "b.wav")]
    enc = _CrashOnMarkedFiles(workers=2)
    try:
        batches = list(enc.encode_batches(paths, batch_size=8))
    finally:
        enc.close()
    good = sorted(i for b in batches for i in b.indices)
    errors = [e for b in batches for e in b.errors]
    assert good == [0, 2]
    assert len(errors) == 1 and errors[0][0] == 1
    assert "crash.wav" in errors[0][1] and "SIGSEGV" in errors[0][1]


_POOL_THEN_SLEEP = textwrap.dedent("""
    import os, sys, time
    from fuserec.workers import CrashIsolatingPool
    pool = CrashIsolatingPool(2)
    list(pool.imap(abs, [1, -2, 3, -4]))
    print(" ".join(str(p.pid) for p in pool._pool._processes.values()), flush=True)
    time.sleep(600)
""")


def test_workers_exit_when_their_parent_is_killed():
    import psutil

    proc = subprocess.Popen([sys.executable, "-c", _POOL_THEN_SLEEP], stdout=subprocess.PIPE,
                            text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) == 2 and all(psutil.pid_exists(p) for p in pids)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in pids if psutil.pid_exists(p)
                 and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"workers {alive} outlived their killed parent"


@pytest.mark.slow
def test_kill_9_during_audio_encoding_leaves_no_process_and_resumes(tmp_path):
    """`fuserec encode` killed while its audio workers run: the workers exit by themselves,
    and the next run resumes from the cache and finishes."""
    import psutil

    from fuserec.data.synthetic import DemoCatalogSpec, generate_demo_catalog

    root = generate_demo_catalog(tmp_path / "cat", DemoCatalogSpec(n_items=60, n_users=10,
                                                                   seed=4, inject_errors=False),
                                 progress=False)
    exe = Path(sys.executable).with_name("fuserec")
    cmd = [str(exe), "encode", str(root), "--cache", str(tmp_path / "cache"), "--modality",
           "audio", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent = psutil.Process(proc.pid)
    workers: list[psutil.Process] = []
    deadline = time.monotonic() + 120
    while not workers and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
        workers = parent.children(recursive=True)
    if not workers:
        pytest.skip("the encode finished before its workers could be seen")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"workers {[p.pid for p in alive]} outlived the killed encode"
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "items audio:" in again.stdout and "0 errors" in again.stdout, again.stdout
