"""A synthetic audio-visual set for the learned engines, made by the tests: recording folders
(the layout avstream record writes) of static scenes with ground truth.

Each scene: a random background (gradient, muted clutter, noise), two or three objects of
distinct appearance, each with its own sound class, one or two of them sounding. The picture is
drawn through the camera model; the audio comes from pyroomacoustics (a shoebox room, RT60
0.3 s) on a 4-mic array, each sounding object 3 m away in the direction its centre is seen.

Sound classes: a siren sweep, engine harmonics, clicks, speech (espeak-ng when installed, else
the real speech in tests/data). ``truth.json`` holds each object's class, box, whether it
sounds, and the path of its mask (PNG, 255 on the object).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np

FS = 16000
ARRAY = "respeaker_4mic_hat"
CLASSES = ("siren", "engine", "clicks", "speech")
SENTENCES = ("the robot turns toward the voice", "please hand me the red box on the table",
             "is anybody there, can you hear me", "move the cart to the loading bay now",
             "good morning, the meeting starts in five minutes", "stop the machine, it is too loud")


def sound(kind, n, rng, tmp):
    t = np.arange(n) / FS
    if kind == "siren":
        f = 900 + 400 * np.sin(2 * np.pi * rng.uniform(0.6, 1.2) * t + rng.uniform(0, 6.3))
        return np.sin(2 * np.pi * np.cumsum(f) / FS)
    if kind == "engine":
        f0 = rng.uniform(55, 80)
        x = sum(k ** -0.7 * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3)) for k in range(1, 30))
        return x * (1 + 0.3 * np.sin(2 * np.pi * 7 * t)) + 0.05 * rng.standard_normal(n)
    if kind == "clicks":
        x = np.zeros(n)
        k = 0
        while k < n:
            burst = rng.standard_normal(64) * np.exp(-np.arange(64) / 10)
            x[k:k + 64] += burst[:max(0, min(64, n - k))]
            k += int(FS / rng.uniform(6, 10))
        return x
    return speech(n, rng, tmp)


def speech(n, rng, tmp):
    from scipy.signal import resample_poly

    if shutil.which("espeak-ng"):
        import soundfile as sf

        wav = Path(tmp) / "say.wav"
        text = " ".join(rng.choice(SENTENCES, 3))
        subprocess.run(["espeak-ng", "-w", str(wav), "-s", str(int(rng.uniform(140, 180))), "-p",
                        str(int(rng.uniform(30, 70))), text], check=True, capture_output=True)
        x, rate = sf.read(wav)
        x = resample_poly(x, FS, rate)
    else:
        from simulate import real_speech

        x = real_speech(int(rng.integers(0, 6)))
    start = int(rng.integers(0, max(1, len(x) - n)))
    return np.resize(x[start:], n)


def background(rng, w=640, h=480):
    import cv2

    c0, c1 = rng.uniform(40, 200, 3), rng.uniform(40, 200, 3)
    ramp = np.linspace(0, 1, h)[:, None, None] if rng.random() < 0.5 else np.linspace(0, 1, w)[None, :, None]
    img = np.broadcast_to(c0 * (1 - ramp) + c1 * ramp, (h, w, 3)).copy()
    for _ in range(int(rng.integers(15, 40))):  # muted clutter
        grey = rng.uniform(50, 190)
        col = tuple(float(grey + rng.uniform(-20, 20)) for _ in range(3))
        if rng.random() < 0.5:
            p = rng.integers(0, [w, h])
            cv2.rectangle(img, tuple(int(v) for v in p), tuple(int(v) for v in p + rng.integers(10, 90, 2)), col, -1)
        else:
            cv2.circle(img, tuple(int(v) for v in rng.integers(0, [w, h])), int(rng.integers(5, 40)), col, -1)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def draw(img, kind, u, v, r):
    """Draw object ``kind`` centred at (u, v) with size r; return its mask (uint8 0/255)."""
    import cv2

    mask = np.zeros(img.shape[:2], np.uint8)
    c = (int(u), int(v))
    if kind == "siren":
        cv2.circle(mask, c, r, 255, -1)
        cv2.circle(img, c, r, (30, 30, 230), -1)
        cv2.rectangle(img, (c[0] - r + 6, c[1] - r // 5), (c[0] + r - 6, c[1] + r // 5), (255, 255, 255), -1)
    elif kind == "engine":
        cv2.rectangle(mask, (c[0] - r, c[1] - r), (c[0] + r, c[1] + r), 255, -1)
        cv2.rectangle(img, (c[0] - r, c[1] - r), (c[0] + r, c[1] + r), (0, 220, 255), -1)
        cv2.rectangle(img, (c[0] - r + 7, c[1] - r + 7), (c[0] + r - 7, c[1] + r - 7), (50, 50, 50), -1)
    elif kind == "clicks":
        pts = np.array([[c[0], c[1] - r], [c[0] + r, c[1]], [c[0], c[1] + r], [c[0] - r, c[1]]], np.int32)
        cv2.fillPoly(mask, [pts], 255)
        cv2.fillPoly(img, [pts], (230, 80, 20))
    else:
        cv2.ellipse(mask, c, (int(0.8 * r), r), 0, 0, 360, 255, -1)
        cv2.ellipse(img, c, (int(0.8 * r), r), 0, 0, 360, (80, 170, 255), -1)
        for dx in (-r // 3, r // 3):
            cv2.circle(img, (c[0] + dx, c[1] - r // 4), max(3, r // 8), (0, 0, 0), -1)
        cv2.ellipse(img, (c[0], c[1] + r // 3), (r // 3, r // 8), 0, 0, 180, (0, 0, 120), 3)
    return mask


def make_scene(folder, seed, seconds=2.0, fps=15.0, tmp=None):
    """Write one scene's recording folder; return its truth dict."""
    import cv2
    import pyroomacoustics as pra
    import soundfile as sf

    from avstream.geometry.arrays import load_array, save_array
    from avstream.geometry.camera import default_camera, default_extrinsics, save_camera, save_extrinsics

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    array, camera = load_array(ARRAY), default_camera()
    ext = default_extrinsics(array)
    n_obj = int(rng.integers(2, 4))
    kinds = list(rng.choice(CLASSES, n_obj, replace=False))
    n_on = 1 if rng.random() < 0.7 else 2
    img = background(rng)
    objects, centres = [], []
    while len(objects) < n_obj:
        r = int(rng.integers(42, 62))
        u, v = rng.uniform(80, 560), rng.uniform(80, 400)
        if any(np.hypot(u - a, v - b) < 2.6 * max(r, rr) for a, b, rr in centres):
            continue
        centres.append((u, v, r))
        k = len(objects)
        mask = draw(img, kinds[k], u, v, r)
        cv2.imwrite(str(folder / f"mask{k}.png"), mask)
        ys, xs = np.nonzero(mask)
        objects.append({"kind": str(kinds[k]), "u": u, "v": v, "box": [int(xs.min()), int(ys.min()), int(xs.max()),
                                                                        int(ys.max())],
                        "sounding": k < n_on, "mask": f"mask{k}.png"})
    # audio: the sounding objects, 3 m away where the camera sees them
    n = int(seconds * FS)
    room_dim = [8.0, 7.0, 5.0]
    e_abs, max_order = pra.inverse_sabine(0.3, room_dim)
    room = pra.ShoeBox(room_dim, fs=FS, materials=pra.Material(e_abs), max_order=max_order)
    centre = np.array([4.0, 3.5, 1.0])
    for o in objects:
        if o["sounding"]:
            d = ext.to_array(camera.unproject([o["u"]], [o["v"]]), 3.0)[0]
            x = sound(o["kind"], n, rng, tmp or folder)
            room.add_source(centre + 3.0 * d, signal=x / (np.std(x) + 1e-12))
    room.add_microphone_array(pra.MicrophoneArray(array.positions.T + centre[:, None], FS))
    pra.random.seed(seed)
    room.simulate(snr=20.0)
    audio = room.mic_array.signals[:, :n]
    audio = (audio / np.abs(audio).max() * 0.5).astype(np.float32)
    full = np.zeros((array.n_channels, n), np.float32)
    full[list(array.mic_channels)] = audio
    sf.write(str(folder / "audio.wav"), full.T, FS, subtype="FLOAT")
    writer = cv2.VideoWriter(str(folder / "video.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    n_frames = int(seconds * fps)
    for _ in range(n_frames):
        writer.write(img)
    writer.release()
    with open(folder / "frames.csv", "w") as f:
        f.write("frame,time_s\n" + "".join(f"{k},{k / fps:.6f}\n" for k in range(n_frames)))
    save_array(array, folder / "array.yaml")
    save_camera(camera, folder / "camera.yaml")
    save_extrinsics(ext, folder / "extrinsics.yaml")
    truth = {"seed": seed, "objects": objects}
    (folder / "truth.json").write_text(json.dumps(truth, indent=1))
    return truth


def make_set(root, seeds, tmp=None):
    return [Path(root) / f"scene{s:04d}" for s in seeds if make_scene(Path(root) / f"scene{s:04d}", s, tmp=tmp)]


if __name__ == "__main__":  # python tests/avscenes.py OUT FIRST_SEED COUNT: a set for avstream train
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    out, first, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    with tempfile.TemporaryDirectory() as tmp:
        for s in range(first, first + count):
            make_scene(out / f"scene{s:05d}", s, tmp=tmp)
    print(f"{count} scenes in {out}")
