"""Live capture through a real PortAudio device: a PulseAudio server this test starts, with a
16-channel pipe source fed a known signal, read by PyAudio through ALSA's pulse plugin."""
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from helpers import az_error, jsonl, run_cli

pytestmark = pytest.mark.skipif(shutil.which("pulseaudio") is None or shutil.which("pactl") is None,
                                reason="PulseAudio not installed (scripts/setup.sh installs it)")
pyaudio = pytest.importorskip("pyaudio")

N_CH = 16
RATE = 16000
MAP = ",".join(["front-left", "front-right", "rear-left", "rear-right", "front-center", "lfe", "side-left",
                "side-right"] + [f"aux{k}" for k in range(8)])


PIPE_SOURCE = "module-pipe-source source_name=avtest file={fifo} format=s16le rate={rate} channels={n} channel_map={map}"


@pytest.fixture()
def pulse(tmp_path):
    """A private PulseAudio server whose default source is a 16-channel pipe."""
    yield from _pulse(tmp_path, null_sink=True)


@pytest.fixture()
def pulse_alone(tmp_path):
    """The same, with the pipe as its only source: unloading it is unplugging the microphone
    (with another source there, PulseAudio would move the stream to it instead)."""
    yield from _pulse(tmp_path, null_sink=False)


def _pulse(tmp_path, null_sink):
    d = tmp_path / "pa"
    d.mkdir()
    fifo = d / "fifo"
    conf = d / "pa.conf"
    conf.write_text(
        f"load-module module-native-protocol-unix auth-anonymous=1 socket={d}/native\n"
        f"load-module {PIPE_SOURCE.format(fifo=fifo, rate=RATE, n=N_CH, map=MAP)}\n"
        "set-default-source avtest\n"
        + ("load-module module-null-sink\n" if null_sink else ""))
    env = dict(os.environ, PULSE_SERVER=f"unix:{d}/native", HOME=str(d), XDG_RUNTIME_DIR=str(d))
    proc = subprocess.Popen(["pulseaudio", "-n", "-F", str(conf), "--daemonize=no", "--exit-idle-time=-1",
                             "--use-pid-file=no", "--system=false", "--log-target=stderr"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(100):
        if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("PulseAudio did not start: " + proc.stderr.read().decode()[-500:])
    old = {k: os.environ.get(k) for k in ("PULSE_SERVER",)}
    os.environ["PULSE_SERVER"] = env["PULSE_SERVER"]
    # PortAudio lists the devices once per initialisation of the process's library, and an earlier
    # test's `import pyroomacoustics` imports sounddevice, which initialises it (before this server
    # existed, so with no devices) and holds it: let go of it while this test runs
    sd = sys.modules.get("sounddevice")
    held = 0
    while sd is not None and getattr(sd, "_initialized", 0) > 0:
        sd._terminate()
        held += 1
    yield {"fifo": fifo, "env": env}
    for _ in range(held):
        sd._initialize()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


def feed(fifo, samples_int16, chunk=1600, stop=None):
    """Write (n, 16) int16 frames into the pipe at about real time. Non-blocking: the pipe
    source stops draining the FIFO when nobody records, and the feeder must not hang then."""
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    try:
        for k in range(0, len(samples_int16), chunk):
            data = memoryview(samples_int16[k:k + chunk].tobytes())
            while len(data):
                if stop is not None and stop.is_set():
                    return
                try:
                    data = data[os.write(fd, data):]
                except BlockingIOError:
                    time.sleep(0.01)
            time.sleep(chunk / RATE * 0.9)
    finally:
        os.close(fd)


def test_every_channel_arrives_in_order(pulse):
    from avstream.capture.clock import SampleClock
    from avstream.capture.device import DeviceSource, list_devices
    from avstream.capture.ring import RingBuffer

    # PortAudio lists ALSA's pulse device once it can open it; a server still settling can miss
    # the first enumeration
    for _ in range(10):
        if any(d["name"] == "pulse" for d in list_devices()):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"no 'pulse' input device: {[d['name'] for d in list_devices()]}")
    n = RATE * 2
    ramp = np.arange(n) % 1000
    sig = ((np.arange(N_CH) + 1) * 1500 + ramp[:, None]).astype(np.int16)  # channel c: 1500(c+1) + ramp
    src = DeviceSource("pulse", N_CH, RATE, block=256, sample_format="int16")
    ring = RingBuffer(512, N_CH, 256)
    src.start_stream(ring, SampleClock(RATE))
    stop = threading.Event()
    t = threading.Thread(target=feed, args=(pulse["fifo"], sig, 1600, stop))
    t.start()
    t.join(30)
    stop.set()
    time.sleep(0.3)
    src.stop()
    blocks = []
    while (b := ring.read(timeout=0.1)) is not None:
        blocks.append(b)
    x = np.concatenate([b.data for b in blocks], axis=1)  # (16, n) float in [-1, 1)
    ints = np.round(x * 32768).astype(np.int64)
    live = ints[:, np.any(ints != 0, axis=0)]
    assert live.shape[1] >= n * 0.9
    base = (np.arange(N_CH) + 1)[:, None] * 1500
    rel = live - base
    assert np.all((rel >= 0) & (rel < 1000)), "a channel arrived out of place"
    assert np.all(rel == rel[0:1]), "channels are not sample-aligned"
    steps = np.diff(rel[0]) % 1000
    assert np.all(steps == 1), f"{np.sum(steps != 1)} breaks in the ramp"  # not one sample lost or repeated
    assert ring.dropped == 0
    idx = [b.index for b in blocks]
    assert idx == sorted(idx) and all(b - a == 256 for a, b in zip(idx, idx[1:]))
    stamps = np.array([b.stamp for b in blocks])
    assert abs(stamps[0] - time.time()) < 60 and np.all(np.diff(stamps) > 0)


def test_run_locates_a_source_played_into_the_device(pulse, tmp_path):
    """The whole pipeline on the live device: a UMA-16 scene rendered by the synthetic source,
    played through PulseAudio, located by `avstream run --source device`."""
    from avstream.capture.synthetic import SyntheticScene
    from avstream.config import SceneConfig, SceneSource
    from avstream.geometry.arrays import load_array

    scene = SceneConfig(sources=(SceneSource("noise", azimuth_deg=-70.0, elevation_deg=15.0, level_db=-15),),
                        snr_db=25)
    syn = SyntheticScene(load_array("uma16"), scene, block=1600)
    sig = np.concatenate([syn.read() for _ in range(40)], axis=1)  # 4 s
    sig16 = np.round(np.clip(sig.T, -1, 1) * 32767).astype(np.int16)
    stop = threading.Event()
    t = threading.Thread(target=feed, args=(pulse["fifo"], sig16, 1600, stop))
    t.start()
    try:
        out = tmp_path / "live.jsonl"
        p = run_cli("run", "--source", "device", "--device", "pulse", "--array", "uma16", "--rate", RATE,
                    "--duration", "2.5", "--jsonl", out, "--no-status", env={"PULSE_SERVER": pulse["env"]["PULSE_SERVER"]},
                    timeout=120)
    finally:
        stop.set()
        t.join()
    assert p.returncode == 0, p.stderr
    lines = jsonl(out.read_text())
    summary = lines[-1]["summary"]
    assert summary["updates"] > 20
    assert az_error(summary["peaks"][0]["azimuth_deg"], -70.0) <= 3.0, summary


def test_missing_device_is_a_clear_error(pulse):
    p = run_cli("run", "--source", "device", "--device", "NoSuchMic", "--array", "uma16", "--duration", "1",
                env={"PULSE_SERVER": pulse["env"]["PULSE_SERVER"]})
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "no input device name contains it" in p.stderr and "pulse" in p.stderr


def test_a_device_with_too_few_channels_is_refused(pulse, tmp_path):
    """An array that needs more channels than the device has is refused by name and count, not
    opened on what is there (the same check runs when a lost device is looked up again)."""
    from avstream.capture.device import list_devices

    have = next(d["channels"] for d in list_devices() if "pulse" in d["name"])
    arr = tmp_path / "wide.yaml"
    arr.write_text("mic_positions: [[0.02, 0, 0], [-0.02, 0, 0], [0, 0.02, 0], [0, -0.02, 0]]\n"
                   f"n_channels: {have + 1}\nmic_channels: [0, 1, 2, 3]\n")
    p = run_cli("run", "--source", "device", "--device", "pulse", "--array", arr, "--duration", "1", "--no-status",
                env={"PULSE_SERVER": pulse["env"]["PULSE_SERVER"]})
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert f"has {have} input channels, the array needs {have + 1}" in p.stderr


def _feed_forever(fifo, stop, chunk=1600):
    """Feed a ramp into the pipe source at real time, by the clock, through unplugging. While
    the pipe is there nothing is lost: a full pipe (PulseAudio starved of CPU) or a partial
    write is retried from where it stopped. While the pipe is gone the samples due meanwhile
    are lost (as from a microphone without a host), then it feeds again from a chunk boundary."""
    t0 = time.monotonic()
    n = 0
    fd = None
    pending = b""
    while not stop.is_set():
        due = int((time.monotonic() - t0) * RATE)
        if due - n > RATE:  # a second behind (the source is not drained when nobody records):
            t0 += (due - n) / RATE  # the ramp goes on where it was, without a burst to catch up
            due = n
        if not pending and n < due:
            ramp = (np.arange(n, n + chunk) % 1000 + 1000).astype(np.int16)
            pending = memoryview(np.repeat(ramp[:, None], N_CH, axis=1).tobytes())
            n += chunk
        if pending:
            try:
                if fd is None:
                    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                pending = pending[os.write(fd, pending):]
            except BlockingIOError:
                pass  # the pipe is full: the rest goes when it drains
            except OSError:  # the pipe is gone (unloaded) or has no reader yet: this chunk is lost
                pending = b""
                if fd is not None:
                    os.close(fd)
                    fd = None
        if pending or n >= due:
            time.sleep(0.01)
    if fd is not None:
        os.close(fd)


def _wait(cond, what, seconds=60):
    for _ in range(int(seconds / 0.05)):  # polling, not a timing assertion
        if cond():
            return
        time.sleep(0.05)
    pytest.fail(f"no {what} within {seconds} s")


def test_unplugged_microphone_is_reopened_and_the_gap_counted(pulse_alone, tmp_path):
    """The pipe source unloaded mid-run (the microphone unplugged) and loaded again: capture
    reopens it by name, /diagnostics says ERROR while it is gone and OK after, the gap is counted
    in samples and flagged once, stream times and stamps stay monotonic, and the run (its MCAP
    recording included) goes on without a restart."""
    from helpers import Collect

    from avstream.config import load_config
    from avstream.pipeline import Pipeline
    from avstream.sinks.mcap_sink import McapSink

    env = pulse_alone["env"]
    stop = threading.Event()
    feeder = threading.Thread(target=_feed_forever, args=(pulse_alone["fifo"], stop), daemon=True)
    feeder.start()
    cfg = load_config(None, {"source.kind": "device", "source.device": "pulse", "array": "minidsp_uma16",
                             "source.sample_rate": RATE, "duration": None, "ros.publish": False,
                             "zmq.endpoint": None, "output.overlay": None, "camera.source": "none"})
    collect, rec = Collect(), McapSink(tmp_path / "live.mcap")
    pipe = Pipeline(cfg, [collect, rec])
    out = {}
    runner = threading.Thread(target=lambda: out.update(summary=pipe.run()), daemon=True)
    runner.start()
    try:
        _wait(lambda: len(collect.maps) >= 20, "20 updates")
        mid = next(line.split()[0] for line in subprocess.run(["pactl", "list", "short", "modules"], env=env,
                   capture_output=True, text=True).stdout.splitlines() if "module-pipe-source" in line)
        subprocess.run(["pactl", "unload-module", mid], env=env, check=True)
        _wait(lambda: pipe.source.state.startswith("lost"), "lost state")
        before = len(collect.maps)
        time.sleep(2.0)  # gone for a while: the retries fail meanwhile
        assert len(collect.maps) <= before + 1  # nothing made up while the device is gone
        args = PIPE_SOURCE.format(fifo=pulse_alone["fifo"], rate=RATE, n=N_CH, map=MAP).split()
        subprocess.run(["pactl", "load-module", *args], env=env, check=True, capture_output=True)
        subprocess.run(["pactl", "set-default-source", "avtest"], env=env, check=True)
        _wait(lambda: pipe.source.reconnects == 1 and len(collect.maps) >= before + 30, "30 updates after replugging")
    finally:
        pipe.stop()
        runner.join(30)
        stop.set()
        feeder.join(5)
    summary = out["summary"]
    print("unplugged:", {k: summary[k] for k in ("updates", "reconnects", "gap_samples", "dropped_blocks")})
    assert summary["reconnects"] == 1 and summary["updates"] == len(collect.maps)
    assert 2.0 * RATE <= summary["gap_samples"] <= 60 * RATE, summary
    flagged = [k for k, hm in enumerate(collect.maps) if "gap" in hm.flags]
    assert len(flagged) == 1 and flagged[0] >= 20, flagged
    t = np.array([hm.t for hm in collect.maps])
    stamps = np.array([hm.stamp for hm in collect.maps])
    assert np.all(np.diff(t) > 0) and np.all(np.diff(stamps) > 0)
    k = flagged[0]
    # wall-clock stamps skip the time the device was gone (stream time ``t`` counts samples
    # heard), where the gap is: after the update before the flagged one and before the one after
    # (an update's stamp is its first sample's, and the flagged update's may be from before the gap)
    jump = int(np.argmax(np.diff(stamps)))
    assert k - 1 <= jump <= k and stamps[jump + 1] - stamps[jump] >= 0.8 * summary["gap_samples"] / RATE
    assert np.all(np.diff(t[k + 1:]) > 0)
    assert summary["dropped_blocks"] == 0
    # one recording holds the whole run; its diagnostics went ERROR while the device was gone
    import importlib

    if importlib.util.find_spec("mcap_ros2") is None:
        return
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with open(tmp_path / "live.mcap", "rb") as fh:
        msgs = [(c.topic, m) for _, c, _, m in make_reader(fh, decoder_factories=[DecoderFactory()])
                .iter_decoded_messages()]
    assert len([m for topic, m in msgs if topic == "/avstream/heatmap/image"]) == summary["updates"]
    audio = [st for topic, m in msgs if topic == "/diagnostics" for st in m.status if st.name.endswith(": audio")]
    levels = [st.level if isinstance(st.level, int) else st.level[0] for st in audio]
    assert any(lv == 2 and "stalled" in st.message for lv, st in zip(levels, audio))
    assert levels[0] == 0 and levels[-1] == 0  # OK before, ERROR while gone, OK after


@pytest.mark.skipif(shutil.which("stress-ng") is None, reason="stress-ng not installed (scripts/setup.sh installs it)")
def test_two_cpu_hogs_lose_no_audio(pulse, tmp_path):
    """A 60 s live run from the device while two stress-ng CPU hogs fill both cores at normal
    priority: no block is dropped, PortAudio reports no overflow, the recording's /audio
    messages are stamped in capture order, and the ramp fed into the device comes out of them,
    in log-time order, with no sample missing (updates may be skipped, and are counted)."""
    env = pulse["env"]
    stop = threading.Event()
    feeder = threading.Thread(target=_feed_forever, args=(pulse["fifo"], stop), daemon=True)
    feeder.start()
    hogs = subprocess.Popen(["stress-ng", "--cpu", "2", "--cpu-method", "matrixprod", "--timeout", "90s",
                             "--metrics-brief"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = tmp_path / "load.jsonl"
    try:
        time.sleep(1.0)  # the hogs are running before the run starts
        assert hogs.poll() is None
        p = run_cli("run", "--source", "device", "--device", "pulse", "--array", "uma16", "--rate", RATE,
                    "--duration", "60", "--jsonl", out, "--record", tmp_path / "load.mcap", "--set", "ros.audio=on",
                    "--no-status", "--no-ros", env={"PULSE_SERVER": env["PULSE_SERVER"]}, timeout=300)
        still_hogging = hogs.poll() is None
    finally:
        stop.set()
        hogs.terminate()
        report = hogs.communicate(timeout=30)[0]
        feeder.join(5)
    assert p.returncode == 0, p.stderr
    assert still_hogging, report  # the load lasted the whole run
    summary = jsonl(out.read_text())[-1]["summary"]
    print("under load:", {k: summary[k] for k in ("updates", "skipped_updates", "dropped_blocks", "overflows")})
    assert summary["dropped_blocks"] == 0 and summary["overflows"] == 0, summary
    assert summary["seconds"] == 60.0 and summary["updates"] > 0
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    with open(tmp_path / "load.mcap", "rb") as fh:
        written = [m.log_time for _, c, m in make_reader(fh).iter_messages(log_time_order=False)
                   if c.topic == "/avstream/audio"]
    # stamped in the order they were captured (players and ros2 bag play go by log time)
    assert np.all(np.diff(written) > 0), np.diff(written).min()
    with open(tmp_path / "load.mcap", "rb") as fh:
        audio = [m for _, c, _, m in make_reader(fh, decoder_factories=[DecoderFactory()]).iter_decoded_messages()
                 if c.topic == "/avstream/audio"]
    x = np.concatenate([np.frombuffer(bytes(m.audio.data), "<i2").reshape(-1, N_CH)[:, 0] for m in audio])
    assert x.size >= 59 * RATE
    steps = np.diff(x.astype(np.int64))
    assert np.all((steps == 1) | (steps == -999)), np.unique(steps)[:10]  # the ramp, unbroken
