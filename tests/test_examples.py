"""The examples in `avstream --help` and in the README cannot drift from the code: every one is
parsed by the real command-line parser, and those that need no hardware (a microphone, a
camera, a GPU) run as written, in a folder holding stand-ins for the files they name."""
import re
import shlex

import numpy as np
import pytest

from helpers import ROOT, run_cli
from simulate import room_scene, write_wav

from avstream.cli import build_parser
from avstream.geometry.arrays import load_array


def _commands(lines):
    """Example command lines: continuation backslashes joined, comments dropped."""
    out, cur = [], ""
    for line in lines:
        text = line.strip()
        if cur:
            text = cur + " " + text
        if text.endswith("\\"):
            cur = text[:-1].rstrip()
            continue
        cur = ""
        if text.startswith("avstream "):
            out.append(text)
    return out


def help_examples():
    text = build_parser().format_help()
    examples = []
    for cmd in _commands(text.splitlines()):
        # the description follows a run of spaces; a run of spaces inside the command (or an
        # option after it) would show here as a description that starts with an option
        cmd, desc = (re.split(r"\s{3,}", cmd, maxsplit=1) + [""])[:2]
        assert not desc.lstrip().startswith("-"), f"stray spaces inside the example {cmd!r} {desc!r}"
        examples.append(cmd)
    return examples


def readme_examples():
    lines, inside = [], False
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if inside:
            lines.append(line.split("  #")[0].split(" # ")[0])
    return _commands(lines)


def _argv(cmd):
    """The arguments of an example; None for a synopsis (alternatives in | or parentheses)."""
    cmd = re.sub(r"\[[^\]]*\]", "", cmd).replace("...", "")  # optional parts: left out
    if "|" in cmd or "(" in cmd:
        return None
    return shlex.split(cmd)[1:]


EXAMPLES = sorted(set(help_examples()) | set(readme_examples()))


def test_examples_were_found():
    assert len(help_examples()) >= 15 and len(readme_examples()) >= 20
    assert "avstream calibrate channels rec.wav --array respeaker_usb_4mic --azimuth 90" in EXAMPLES


@pytest.mark.parametrize("cmd", EXAMPLES)
def test_example_parses(cmd, capsys):
    argv = _argv(cmd)
    if argv is None:
        pytest.skip("a synopsis, not an example")
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{cmd!r} does not parse (exit {exc.code}): {capsys.readouterr().err.strip()}")


# the examples that need no hardware, run exactly as written
RUNNABLE = [
    "avstream locate rec.wav --array respeaker_usb_4mic --sources 2",
    "avstream locate rec.wav --array my_array.yaml --sources 2",
    "avstream run --source file --file rec.wav --array respeaker_usb_4mic --jsonl out.jsonl",
    "avstream run --source file --file rec.wav --array my_array.yaml --jsonl out.jsonl --npz maps.npz",
    "avstream calibrate channels rec.wav --array respeaker_usb_4mic --azimuth 90",
    "avstream engines list",
]


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """rec.wav: a ReSpeaker USB 4-mic recording (6 channels, microphones on 1-4) of a source at
    azimuth 90 in a simulated room; my_array.yaml: the same array written out by hand."""
    d = tmp_path_factory.mktemp("examples")
    arr = load_array("respeaker_usb_4mic")
    x = room_scene(arr.positions, [90.0], [10.0], duration=2.0, seed=3)
    six = np.zeros((6, x.shape[1]), np.float32)
    six[1:5] = x
    six[0] = x.mean(axis=0)
    write_wav(d / "rec.wav", six)
    rows = "\n".join(f"  - [{p[0]:.5f}, {p[1]:.5f}, {p[2]:.5f}]" for p in arr.positions)
    (d / "my_array.yaml").write_text(f"mic_positions:\n{rows}\nn_channels: 6\nmic_channels: [1, 2, 3, 4]\n")
    return d


@pytest.mark.parametrize("cmd", RUNNABLE)
def test_example_runs(cmd, stand_ins):
    assert cmd in EXAMPLES, "no longer an example: update RUNNABLE"
    where = ROOT if cmd.startswith("avstream engines") else stand_ins  # engines/ of the repository
    p = run_cli(*shlex.split(cmd)[1:], cwd=where, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    if cmd.startswith("avstream locate"):
        assert '"azimuth_deg"' in p.stdout
    for out in re.findall(r"--(?:jsonl|npz) (\S+)", cmd):
        assert (stand_ins / out).stat().st_size > 0
