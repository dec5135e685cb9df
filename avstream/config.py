"""Typed, validated, frozen configuration.

Defaults live here and only here. A YAML file and command-line overrides (dotted keys such as
``stft.hop=128``) are merged onto them once at start-up; an unknown key, a wrong type or an
impossible value fails with a message naming the key and the file.

Example YAML (every key optional)::

    array: respeaker_usb_4mic          # preset name or path to an array YAML
    duration: 10                       # seconds; null runs until stopped or the file ends
    source:
      kind: device                     # synthetic | file | device
      device: ReSpeaker                # name substring or index
    stft: {frame: 512, hop: 256, window: hann}   # unset: by the array kind (see stft_plan)
    localize: {grid: "sphere:2562", band: [300, 6000], sources: 2}   # band unset: by the array (see band_plan)
    output: {jsonl: out.jsonl}
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Union

import yaml

from .errors import ConfigError


@dataclass(frozen=True)
class SceneSource:
    """One point source of the synthetic scene."""

    kind: Literal["noise", "speech", "tone"] = "noise"
    azimuth_deg: float = 0.0
    elevation_deg: float = 0.0
    level_db: float = -20.0  # RMS, dB full scale
    frequency_hz: float = 1000.0  # tones only
    azimuth_rate_deg_s: float = 0.0  # moving sources turn around the array at this rate

    def validate(self, key):
        _check(-90 <= self.elevation_deg <= 90, f"{key}.elevation_deg", "must be within [-90, 90]")
        _check(self.level_db <= 0, f"{key}.level_db", "must be <= 0 dB full scale")
        _check(self.frequency_hz > 0, f"{key}.frequency_hz", "must be positive")


@dataclass(frozen=True)
class SceneConfig:
    """The built-in synthetic scene: point sources plus diffuse noise."""

    # in front of the default UMA-16 board (facing +z) and its camera: a talker 20 degrees
    # off the camera axis, and a noise source circling the axis 30 degrees out
    sources: tuple[SceneSource, ...] = (
        SceneSource("speech", azimuth_deg=30.0, elevation_deg=70.0, level_db=-20.0),
        SceneSource("noise", azimuth_deg=-120.0, elevation_deg=60.0, level_db=-26.0, azimuth_rate_deg_s=24.0),
    )
    snr_db: float = 20.0  # sources to diffuse noise, at the microphones
    sample_rate: int = 16000
    seed: int = 0

    def validate(self, key):
        _check(len(self.sources) >= 1, f"{key}.sources", "needs at least one source")
        for i, s in enumerate(self.sources):
            s.validate(f"{key}.sources[{i}]")
        _check(8000 <= self.sample_rate <= 192000, f"{key}.sample_rate", "must be within 8000..192000 Hz")
        _check(-40 <= self.snr_db <= 100, f"{key}.snr_db", "must be within [-40, 100] dB")


@dataclass(frozen=True)
class SourceConfig:
    """Where audio comes from."""

    kind: Literal["synthetic", "file", "device", "recording"] = "synthetic"
    path: Optional[str] = None  # file: WAV, FLAC or anything soundfile reads; recording: its folder
    realtime: bool = True  # file: pace to real time; false reads as fast as possible
    loop: bool = False  # file: start again at the end
    device: Optional[str] = None  # device: name substring or index; None = default input
    sample_rate: Optional[int] = None  # device: default is the array's rate, else 16000
    sample_format: Literal["int16", "int24", "int32", "float32"] = "int16"  # device
    block: int = 256  # samples per capture block
    ring_seconds: float = 2.0  # capture ring buffer length; older data is dropped when full
    scene: SceneConfig = field(default_factory=SceneConfig)

    def validate(self, key):
        _check(self.kind not in ("file", "recording") or self.path, f"{key}.path",
               f"is required when source.kind is {self.kind}")
        _check(16 <= self.block <= 16384, f"{key}.block", "must be within 16..16384 samples")
        _check(0.1 <= self.ring_seconds <= 600, f"{key}.ring_seconds", "must be within 0.1..600 s")
        _check(self.sample_rate is None or 8000 <= self.sample_rate <= 192000, f"{key}.sample_rate",
               "must be within 8000..192000 Hz")
        self.scene.validate(f"{key}.scene")


@dataclass(frozen=True)
class CameraConfig:
    """The camera the heatmap is drawn on (docs: README, "The acoustic camera")."""

    # auto: the synthetic camera when the audio is the synthetic scene, the recording's video for a
    # recording, else none;
    # none | synthetic | device index or /dev/videoN | video file | rtsp:// or http:// URL |
    # GStreamer pipeline ending in appsink
    source: str = "auto"
    intrinsics: Optional[str] = None  # ROS camera_calibration YAML; default: the built-in 640x480 pinhole
    extrinsics: Optional[str] = None  # YAML rotation/translation; default: looking along the array's +x
    source_distance_m: Optional[float] = 3.0  # assumed source distance for parallax; null = none
    block: int = 10  # pixels per heatmap cell when the grid is registered to the camera
    optional: bool = False  # a camera missing at start means audio only, not an error
    realtime: bool = True  # video files: pace to real time (false: as fast as the audio)
    loop: bool = False  # video files: start again at the end
    fps: float = 30.0  # synthetic camera frame rate
    retry_s: float = 1.0  # seconds between attempts to reopen a lost camera
    max_offset_s: float = 0.5  # a frame further than this from the update is not paired (camera lost)

    def validate(self, key):
        _check(bool(self.source.strip()), f"{key}.source", "must not be empty (use none for no camera)")
        _check(self.source_distance_m is None or self.source_distance_m > 0, f"{key}.source_distance_m",
               "must be positive metres or null")
        _check(2 <= self.block <= 256, f"{key}.block", "must be within 2..256 pixels")
        _check(1 <= self.fps <= 240, f"{key}.fps", "must be within 1..240")
        _check(0.05 <= self.retry_s <= 60, f"{key}.retry_s", "must be within 0.05..60 s")
        _check(0 < self.max_offset_s <= 10, f"{key}.max_offset_s", "must be within (0, 10] s")


@dataclass(frozen=True)
class StftConfig:
    frame: Optional[int] = None  # samples; null: the array kind's (stft_plan: 512 on microphones, 8 ms on ambisonic)
    hop: Optional[int] = None  # samples; null: the array kind's (256 on microphones, 4 ms on ambisonic)
    window: Literal["hann", "hamming"] = "hann"

    def validate(self, key):
        _check(self.frame is None or (32 <= self.frame <= 16384 and self.frame % 2 == 0), f"{key}.frame",
               "must be even, 32..16384, or null")
        top = f"frame ({self.frame})" if self.frame is not None else "16384"
        _check(self.hop is None or 1 <= self.hop <= (self.frame or 16384), f"{key}.hop", f"must be within 1..{top} or null")


# The STFT by array kind when stft.frame, stft.hop and localize.update_frames are null. Ambisonic:
# a floor or ceiling reflection reaches a first-order microphone 5-6 ms after the direct sound; in
# a 32 ms frame the two share every bin and the bin's direction leans toward the reflection (a
# talker's elevation 3-8 degrees off in rooms of RT60 0.4-0.6 s), while an 8 ms frame at an onset
# holds mostly direct sound (scripts/foa_table.py --seeds 9, 27 rooms, with intensity's onset_s
# 16 ms: one talker tracked 0.95 -> 1.00, median error 3.3 -> 1.9 degrees; three talkers 0.74 /
# 0.85 / 0.90 -> 0.87 / 0.85 / 0.90). Same update period: 64 ms at 16 kHz.
MICS_STFT = (512, 256, 4)  # frame, hop (samples), frames per update
AMBISONIC_HOP_S = 0.004  # hop in seconds (64 samples at 16 kHz); frame 2 hops, 16 frames per update
AMBISONIC_UPDATE_FRAMES = 16


def stft_plan(cfg, kind: str, sample_rate: float) -> tuple[int, int, int]:
    """(frame, hop, frames per update) on an array of ``kind`` ("mics" or "ambisonic") at
    ``sample_rate``: each key that is set, else the kind's default (see MICS_STFT).

    Raises
    ------
    ConfigError
        ``stft.hop`` longer than the frame the plan ends up with.
    """
    if kind == "ambisonic":
        hop = max(1, int(round(AMBISONIC_HOP_S * sample_rate)))
        default = (2 * hop, hop, AMBISONIC_UPDATE_FRAMES)
    else:
        default = MICS_STFT
    frame, hop, frames = (v if v is not None else d for v, d in
                          zip((cfg.stft.frame, cfg.stft.hop, cfg.localize.update_frames), default))
    if hop > frame:
        raise ConfigError(f"key 'stft.hop': {hop} samples is longer than the frame ({frame}); set stft.frame too")
    return frame, hop, frames


# The band when localize.band is null. On microphones it reaches to where the array spans two
# wavelengths (2 c / aperture), within 6-8 kHz: there its beam (about wavelength / aperture, 29
# degrees) is as narrow as the closest sources it should tell apart. A small array gains from
# every bin up to 8 kHz, whose grating lobes fall in other directions at every bin while the
# sources stay (5 rooms a row, scripts/sources_table.py, 300-8000 against 300-6000 Hz: two noise
# sources on the 4-mic HAT 0.69 -> 0.98, three talkers on UMA-8 0.79 -> 0.84; the real
# two-loudspeaker takes 0.95 / 1.00 -> 0.96 / 1.00). A larger one is narrow by 6 kHz, and more
# bins mostly add grating lobes: UMA-16's 42 mm lattice (aperture 17.8 cm) put a ghost track
# in the demo in 88 of 108 updates with 8 kHz, 54 with 6 kHz. Ambisonic: a first-order
# microphone's beams do not narrow with frequency and its capsules alias above a few kHz (music
# on FOA rooms, one talker: median 1.7 -> 2.7 degrees with 8 kHz; intensity about the same).
BAND_LOW = 300.0  # Hz
MICS_BAND_TOP = (6000.0, 8000.0)  # Hz: 2 c / aperture, clipped to this
AMBISONIC_BAND = (300.0, 6000.0)


def band_plan(cfg, array, sample_rate: float) -> tuple[float, float]:
    """The localization band (Hz) on ``array`` (a MicArray) at ``sample_rate``:
    ``localize.band`` if set, else the array's (see MICS_BAND_TOP), its upper edge clipped to
    Nyquist.

    Raises
    ------
    ConfigError
        A band that starts above Nyquist, or a set band that reaches far past it (a typo).
    """
    band = cfg.localize.band
    if band is None and array.kind == "ambisonic":
        band = AMBISONIC_BAND
    elif band is None:
        top = 2.0 * cfg.localize.speed_of_sound / max(array.aperture, 1e-6)
        band = (BAND_LOW, min(max(top, MICS_BAND_TOP[0]), MICS_BAND_TOP[1]))
    nyquist = sample_rate / 2
    if band[0] >= nyquist:
        raise ConfigError(f"key 'localize.band': {list(band)} Hz lies above Nyquist ({nyquist:g} Hz)")
    if cfg.localize.band is not None and band[1] > 2 * nyquist:  # a little past (6 kHz on 8 kHz audio) is clipped
        raise ConfigError(f"key 'localize.band': {list(band)} Hz reaches far past Nyquist ({nyquist:g} Hz at "
                          f"{sample_rate} Hz); give an upper edge up to {nyquist:g}")
    return band[0], min(band[1], nyquist)


@dataclass(frozen=True)
class SrpPhatOptions:
    """localize.srp_phat.*: steered response power with the phase transform."""


@dataclass(frozen=True)
class TfSparseOptions:
    """localize.tf_sparse.*: a direction per time-frequency bin, votes over the grid."""

    min_coherence: float = 0.7  # a bin votes when one direction explains its cross-spectra this well (0..1)
    spread_deg: float = 4.0  # Gaussian spread of each vote (in the array's plane for a planar array)
    memory_s: float = 0.5  # time constant of the vote memory; 0 = each update alone
    # a bin votes only when its best direction beats the mean of all by this much: low-frequency
    # and diffuse bins fit every direction (on a small planar array they pile up at the zenith)
    min_margin: float = 0.2
    # a bin's local maxima within this coherence of its best (grating lobes, on an array sparser
    # than half a wavelength) share its vote by the square of what the vote memory holds at each
    alias_tie: float = 0.1
    # each bin's vote weighted by bin_onset + its energy's rise over its own last onset_s (at most
    # 10): the precedence effect per bin; null = off
    bin_onset: Optional[float] = 0.1
    onset_s: float = 0.032

    def validate(self, key):
        _check(0 < self.min_coherence < 1, f"{key}.min_coherence", "must be within (0, 1)")
        _check(0.5 <= self.spread_deg <= 45, f"{key}.spread_deg", "must be within 0.5..45 degrees")
        _check(0 <= self.memory_s <= 60, f"{key}.memory_s", "must be within 0..60 s")
        _check(0 <= self.min_margin < 1, f"{key}.min_margin", "must be within 0..1")
        _check(0 <= self.alias_tie < 1, f"{key}.alias_tie", "must be within 0..1")
        _check(self.bin_onset is None or self.bin_onset > 0, f"{key}.bin_onset", "must be > 0 or null")
        _check(0.005 <= self.onset_s <= 2, f"{key}.onset_s", "must be within 0.005..2 s")


@dataclass(frozen=True)
class MvdrOptions:
    """localize.mvdr.*: minimum-variance distortionless beams on the spatial covariance."""

    bins: int = 48  # band bins used (spread over the band)
    loading: float = 0.05  # diagonal loading, as a share of the mean microphone power
    memory_s: float = 0.25  # time constant of the covariance estimate

    def validate(self, key):
        _check(2 <= self.bins <= 4096, f"{key}.bins", "must be within 2..4096")
        _check(0 < self.loading <= 10, f"{key}.loading", "must be within (0, 10]")
        _check(0 <= self.memory_s <= 60, f"{key}.memory_s", "must be within 0..60 s")


@dataclass(frozen=True)
class MusicOptions:
    """localize.music.*: NormMUSIC on the spatial covariance."""

    bins: int = 48  # band bins used (spread over the band)
    n_sources: Union[int, Literal["auto"]] = "auto"  # signal subspace size; auto: eigenvalues above threshold
    threshold: float = 0.1  # auto: eigenvalues above this share of the largest count as sources
    memory_s: float = 0.25  # time constant of the covariance estimate

    def validate(self, key):
        _check(2 <= self.bins <= 4096, f"{key}.bins", "must be within 2..4096")
        _check(self.n_sources == "auto" or self.n_sources >= 1, f"{key}.n_sources", "must be auto or >= 1")
        _check(0 < self.threshold < 1, f"{key}.threshold", "must be within (0, 1)")
        _check(0 <= self.memory_s <= 60, f"{key}.memory_s", "must be within 0..60 s")


@dataclass(frozen=True)
class CleanScOptions:
    """localize.clean_sc.*: CLEAN-SC deconvolution of the conventional beamformer's map."""

    bins: int = 32  # band bins used (spread over the band)
    iterations: int = 8  # sources removed per bin at most
    gain: float = 0.6  # loop gain (acoular's default)
    stop: float = 0.1  # stop when the dirty map's maximum falls below this share of the first
    spread_deg: float = 4.0  # Gaussian spread of the clean components
    memory_s: float = 0.25  # time constant of the covariance estimate

    def validate(self, key):
        _check(2 <= self.bins <= 4096, f"{key}.bins", "must be within 2..4096")
        _check(1 <= self.iterations <= 64, f"{key}.iterations", "must be within 1..64")
        _check(0 < self.gain <= 1, f"{key}.gain", "must be within (0, 1]")
        _check(0 <= self.stop < 1, f"{key}.stop", "must be within [0, 1)")
        _check(0.5 <= self.spread_deg <= 45, f"{key}.spread_deg", "must be within 0.5..45 degrees")
        _check(0 <= self.memory_s <= 60, f"{key}.memory_s", "must be within 0..60 s")


@dataclass(frozen=True)
class IntensityOptions:
    """localize.intensity.*: pseudo-intensity votes of a first-order ambisonic array."""

    spread_deg: float = 8.0  # width of each bin's vote on the sphere
    memory_s: float = 0.5  # time constant of the vote memory; 0 = each update alone
    bin_onset: Optional[float] = 0.1  # each vote weighted by bin_onset + its bin's energy rise (at most 10); null = off
    onset_s: float = 0.016  # ... over the bin's own last onset_s (0.032 before the 8 ms frames: 27 rooms, recall
    # +0.004 / +0.01 / +0.02 for one / two / three talkers, median error 2.3 -> 1.9 degrees for one)
    sharpness: float = 1.0  # a vote weighs (1 - diffuseness) ** sharpness: higher keeps only steady bins

    def validate(self, key):
        _check(0.5 <= self.spread_deg <= 45, f"{key}.spread_deg", "must be within 0.5..45 degrees")
        _check(0 <= self.sharpness <= 16, f"{key}.sharpness", "must be within 0..16")
        _check(0 <= self.memory_s <= 60, f"{key}.memory_s", "must be within 0..60 s")
        _check(self.bin_onset is None or self.bin_onset > 0, f"{key}.bin_onset", "must be > 0 or null")
        _check(0.005 <= self.onset_s <= 2, f"{key}.onset_s", "must be within 0.005..2 s")


@dataclass(frozen=True)
class PwdOptions:
    """localize.pwd.*: first-order plane-wave decomposition (max-DI beams) of an ambisonic array."""

    bins: int = 48  # band bins used (spread over the band)
    memory_s: float = 0.25  # time constant of the covariance estimate

    def validate(self, key):
        _check(2 <= self.bins <= 4096, f"{key}.bins", "must be within 2..4096")
        _check(0 <= self.memory_s <= 60, f"{key}.memory_s", "must be within 0..60 s")


METHODS = ("srp_phat", "tf_sparse", "mvdr", "music", "clean_sc", "intensity", "pwd")  # the localizers (avstream/localize)
AUTO_METHODS = ("tf_sparse", "srp_phat", "intensity")  # what method auto picks from (LocalizeConfig.resolve)
AUTO_MAX_MICS = 8  # auto: tf_sparse on arrays of at most this many microphones, else srp_phat  # the localizers (avstream/localize); each has its options section


@dataclass(frozen=True)
class LocalizeConfig:
    # auto | one of METHODS; a method's options are localize.<method>.*. auto: tf_sparse on arrays
    # of up to 8 microphones (on the real two-loudspeaker ReSpeaker recordings it keeps both
    # talkers in 96-100% of updates, SRP-PHAT in 66-73%; on the simulated HAT and UMA-8 rooms
    # it is better for two sources of every kind, worse for three noise sources), srp_phat on larger arrays (on
    # UMA-16 rooms it finds broadband noise sources far better, talkers about as well);
    # intensity on ambisonic arrays (at every order: music at orders 2-3 tracks two talkers
    # better, but also a talker's floor reflection; README, Ambisonic microphones)
    method: Literal[("auto",) + METHODS] = "auto"
    grid: str = "auto"  # auto (camera:BLOCK with a camera, else sphere:2562) | sphere:N | hemisphere:N | fov:H,V:COLS,ROWS | camera:BLOCK
    band: Optional[tuple[float, float]] = None  # Hz; null: the array's (band_plan: 300 to 6000-8000 on microphones, 300-6000 on ambisonic)
    update_frames: Optional[int] = None  # STFT frames per heatmap update; null: the array kind's (4; 16 on ambisonic)
    sources: int = 3  # at most this many sources per update (a maximum, not a quota)
    min_power: Optional[float] = None  # a peak is a source at or above this power (method's scale); null = the method's
    min_relative: float = 0.3  # ... and at or above this fraction of the strongest peak
    exclusion_deg: float = 20.0  # peaks closer than this are one source
    smoothing: float = 0.0  # exponential smoothing between updates, 0..<1
    speed_of_sound: float = 343.0  # m/s
    onset_floor: Optional[float] = 0.1  # frame weight floor (precedence weighting); null = off
    srp_phat: SrpPhatOptions = field(default_factory=SrpPhatOptions)
    tf_sparse: TfSparseOptions = field(default_factory=TfSparseOptions)
    mvdr: MvdrOptions = field(default_factory=MvdrOptions)
    music: MusicOptions = field(default_factory=MusicOptions)
    clean_sc: CleanScOptions = field(default_factory=CleanScOptions)
    intensity: IntensityOptions = field(default_factory=IntensityOptions)
    pwd: PwdOptions = field(default_factory=PwdOptions)

    def resolve(self, n_mics: int, kind: str = "mics") -> str:
        """The method used on an array of ``n_mics`` microphones (``kind`` "ambisonic": intensity)."""
        if self.method != "auto":
            return self.method
        if kind == "ambisonic":
            return "intensity"
        return "tf_sparse" if n_mics <= AUTO_MAX_MICS else "srp_phat"

    def options(self, method: str) -> dict:
        """A method's options."""
        return dataclasses.asdict(getattr(self, method))

    def validate(self, key):
        allowed = AUTO_METHODS if self.method == "auto" else (self.method,)
        for name in METHODS:
            section = getattr(self, name)
            if hasattr(section, "validate"):
                section.validate(f"{key}.{name}")
            for f in dataclasses.fields(section):
                _check(name in allowed or getattr(section, f.name) == f.default, f"{key}.{name}.{f.name}",
                       f"is an option of method {name}, but the method is {self.method}")
        _check(self.band is None or 0 <= self.band[0] < self.band[1], f"{key}.band",
               f"must be [low, high] Hz with low < high, or null; got {self.band}")
        _check(self.update_frames is None or 1 <= self.update_frames <= 1000, f"{key}.update_frames",
               "must be within 1..1000 or null")
        _check(0 <= self.sources <= 64, f"{key}.sources", "must be within 0..64")
        _check(0 < self.exclusion_deg <= 180, f"{key}.exclusion_deg", "must be within (0, 180]")
        _check(self.min_power is None or self.min_power >= 0, f"{key}.min_power", "must be >= 0 or null")
        _check(0 <= self.min_relative <= 1, f"{key}.min_relative", "must be within 0..1")
        _check(0 <= self.smoothing < 1, f"{key}.smoothing", "must be within [0, 1)")
        _check(200 <= self.speed_of_sound <= 2000, f"{key}.speed_of_sound", "must be within 200..2000 m/s")
        _check(self.onset_floor is None or self.onset_floor > 0, f"{key}.onset_floor", "must be > 0 or null")


@dataclass(frozen=True)
class TrackConfig:
    """Tracking (avstream/track): sources with stable ids, ODAS SST style."""

    enabled: bool = True
    gate_deg: float = 20.0  # a peak further than this from a track's prediction is not that track's
    measurement_deg: float = 5.0  # standard deviation of a peak's direction
    accel_deg_s2: float = 10.0  # process noise: angular acceleration of a source (a stray peak sets less of a
    # velocity that carries a track off its source; scripts/sources_table.py, 5 rooms a row: 60 -> 20 gained
    # 0.0-0.1 of recall, 20 -> 10 another 0.0-0.08 on the default methods; a source at 20 deg/s is still followed)
    confirm: float = 0.8  # a track is reported (and named) once its probability reaches this
    silence_s: float = 2.5  # a track lives through silences this long, keeping its id
    min_age_s: float = 0.3  # ... and has lived this long (a ghost of the first updates dies unnamed)
    coast_s: float = 0.5  # a silent track's velocity fades with this time constant (0 = it keeps it)
    max_speed_deg_s: float = 120.0  # a track's angular speed is capped here (0 = no cap)
    audio_mask: float = 4.0  # per-source audio and speech: exponent of the time-frequency mask among the sources' beams (0 = plain beams)

    def validate(self, key):
        _check(0 < self.gate_deg <= 90, f"{key}.gate_deg", "must be within (0, 90]")
        _check(0 < self.measurement_deg <= 45, f"{key}.measurement_deg", "must be within (0, 45]")
        _check(0 <= self.accel_deg_s2 <= 10000, f"{key}.accel_deg_s2", "must be within 0..10000")
        _check(0 < self.confirm < 1, f"{key}.confirm", "must be within (0, 1)")
        _check(0 < self.silence_s <= 60, f"{key}.silence_s", "must be within (0, 60] s")
        _check(0 <= self.audio_mask <= 16, f"{key}.audio_mask", "must be within 0..16")
        _check(0 <= self.min_age_s <= 10, f"{key}.min_age_s", "must be within 0..10 s")
        _check(0 <= self.coast_s <= 60, f"{key}.coast_s", "must be within 0..60 s")
        _check(0 <= self.max_speed_deg_s <= 3600, f"{key}.max_speed_deg_s", "must be within 0..3600")


@dataclass(frozen=True)
class TopicQos:
    """QoS of one topic. Reliable (default) matches reliable subscribers (RViz) and best-effort ones."""

    reliability: Literal["reliable", "best_effort"] = "reliable"
    depth: int = 5  # KEEP_LAST history depth

    def validate(self, key):
        _check(1 <= self.depth <= 1000, f"{key}.depth", "must be within 1..1000")


@dataclass(frozen=True)
class QosConfig:
    heatmap: TopicQos = field(default_factory=TopicQos)  # heatmap/image and heatmap/camera_info
    sources: TopicQos = field(default_factory=TopicQos)  # sources, sources_cloud, the respeaker topics
    markers: TopicQos = field(default_factory=TopicQos)
    tracks: TopicQos = field(default_factory=TopicQos)
    diagnostics: TopicQos = field(default_factory=TopicQos)
    overlay: TopicQos = field(default_factory=TopicQos)  # overlay/image
    camera_info: TopicQos = field(default_factory=TopicQos)  # overlay/camera_info
    engine_heatmap: TopicQos = field(default_factory=TopicQos)  # engine/heatmap
    segmentation: TopicQos = field(default_factory=TopicQos)  # engine/segmentation
    audio: TopicQos = field(default_factory=lambda: TopicQos(depth=50))  # audio, source_audio/track_<id>

    def validate(self, key):
        for f in dataclasses.fields(self):
            getattr(self, f.name).validate(f"{key}.{f.name}")


# the raw audio topic is on by default up to this many channels at this rate (a UMA-16 at 16 kHz
# is 512 kB/s of DDS traffic: opt in with ros.audio: on)
AUDIO_AUTO_CHANNELS = 8
AUDIO_AUTO_RATE = 48000


@dataclass(frozen=True)
class RosConfig:
    """ROS 2 naming shared by every ROS transport (DDS, rclpy, MCAP recording)."""

    # the node's namespace and name: topics are relative (<namespace>/heatmap/image, ...), so
    # __ns:= and remaps apply; on rclpy the node's own namespace and name (from ros2 run/launch) win
    namespace: str = "/avstream"
    node_name: str = "avstream"  # diagnostics are named "<namespace>/<node_name>: audio", ": camera"
    remap: tuple[str, ...] = ()  # "from:=to" rules (the DDS path; rclpy reads -r itself)
    frame_id: str = "mic_array"  # the array frame in header.frame_id
    camera_frame_id: str = "camera_optical"  # the camera optical frame of overlay and camera_info
    parent_frame_id: Optional[str] = None  # e.g. base_link: /tf_static gets parent -> frame_id too
    parent_xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the array's origin in the parent frame, m
    parent_rpy_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)  # its roll, pitch, yaw in the parent frame
    distro: Literal["humble", "iron", "jazzy", "kilted"] = "jazzy"  # message definitions and type hashes
    publish: bool = True  # publish the topics live (rclpy when importable, else native DDS)
    audio: Literal["auto", "on", "off"] = "auto"  # raw audio on `audio` (+ latched `audio_info`); auto:
    # on up to AUDIO_AUTO_CHANNELS channels at AUDIO_AUTO_RATE Hz
    respeaker: bool = False  # also sound_direction, sound_localization, is_speeching (respeaker_ros)
    source_audio: bool = True  # each track's beam on source_audio/track_<id> (live and in recordings)
    qos: QosConfig = field(default_factory=QosConfig)  # per topic: ros.qos.heatmap.reliability, ...

    def validate(self, key):
        from .sinks.ros_names import check_name

        def name(value, what, absolute=False):
            try:
                check_name(value, what, absolute)
            except ConfigError as exc:
                raise _Invalid(f"{key}.{what}", str(exc)) from None

        _check(self.namespace == "" or self.namespace.startswith("/"), f"{key}.namespace",
               "must start with '/' (or be empty)")
        if self.namespace.strip("/"):
            name(self.namespace, "namespace", absolute=True)
        name(self.node_name, "node_name")
        for i, rule in enumerate(self.remap):
            _check(":=" in rule, f"{key}.remap[{i}]", f"'{rule}': expected FROM:=TO")
            for part in rule.split(":=", 1):
                name(part, f"remap[{i}]")
        _check(bool(self.frame_id), f"{key}.frame_id", "must not be empty")
        _check(self.parent_frame_id is None or (bool(self.parent_frame_id) and self.parent_frame_id != self.frame_id),
               f"{key}.parent_frame_id", "must be a frame other than frame_id")
        self.qos.validate(f"{key}.qos")

    def audio_on(self, channels: int, rate: int) -> bool:
        """Whether the raw audio topic is published for this many channels at this rate."""
        if self.audio != "auto":
            return self.audio == "on"
        return channels <= AUDIO_AUTO_CHANNELS and rate <= AUDIO_AUTO_RATE


@dataclass(frozen=True)
class FoxgloveConfig:
    """The ROS 2 topics live to the Foxglove app over its WebSocket protocol (needs foxglove-sdk)."""

    port: Optional[int] = None  # serve on this port (8765 is Foxglove's default); null = off
    host: str = "127.0.0.1"  # loopback by default: the protocol has no authentication

    def validate(self, key):
        _check(self.port is None or 0 <= self.port <= 65535, f"{key}.port", "must be within 0..65535 (0: any free)")


@dataclass(frozen=True)
class ZmqConfig:
    """The ZeroMQ stream for dashboards (see avstream/sinks/zmq_sink.py for the wire format)."""

    endpoint: Optional[str] = "tcp://127.0.0.1:5556"  # PUB binds here; null turns the stream off
    hwm: int = 2  # send high-water mark in updates: a slow subscriber loses updates, the pipeline never waits
    curve_secret_key: Optional[str] = None  # server certificate (.key_secret): CURVE encryption
    curve_clients: Optional[str] = None  # folder of allowed client public keys: authentication
    overlay_quality: int = 80  # JPEG quality of the overlay picture on topic avstream/overlay; 0 = not sent
    source_audio: bool = True  # each track's beam on topic avstream/audio/<id> (float32 PCM)

    def validate(self, key):
        _check(1 <= self.hwm <= 100000, f"{key}.hwm", "must be within 1..100000")
        _check(0 <= self.overlay_quality <= 100, f"{key}.overlay_quality", "must be within 0..100")


@dataclass(frozen=True)
class OutputConfig:
    jsonl: Optional[str] = None  # path, or "-" for stdout
    npz: Optional[str] = None  # heatmaps, stamps and peaks, written at the end
    record: Optional[str] = None  # MCAP file with every ROS 2 topic (ros2msg schemas, CDR messages)
    record_split_mb: Optional[float] = None  # split the recording into <stem>_0.mcap, _1, ... of this size
    status: bool = True  # live status line on stderr
    overlay: Optional[str] = "auto"  # video of the overlay (.mp4/.avi); auto: avstream_overlay.mp4 for the demo
    view: bool = False  # show the overlay live in a window (needs a display and OpenCV with a GUI)
    recording: Optional[str] = None  # folder: audio.wav, video.mp4, frames.csv and the calibration used
    sources: Optional[str] = None  # folder: a WAV per track (its beam) and tracks.csv

    def validate(self, key):
        _check(self.record is None or self.record.endswith(".mcap"), f"{key}.record", "must be a .mcap path")
        _check(self.record_split_mb is None or self.record_split_mb >= 0.1, f"{key}.record_split_mb",
               "must be at least 0.1 (MB) or null")
        _check(self.overlay in (None, "auto") or self.overlay.lower().endswith((".mp4", ".avi")), f"{key}.overlay",
               "must be a .mp4 or .avi path, auto or null")


@dataclass(frozen=True)
class EngineConfig:
    """Learned engines (docs: README, "Learned engines"; engines/README.md)."""

    path: Optional[str] = None  # ONNX file of an audio-visual engine (avstream train writes one); null = none
    backend: Literal["auto", "tensorrt", "onnxruntime", "torch"] = "auto"  # auto: TensorRT on a GPU, else ONNX Runtime
    threads: int = 2  # ONNX Runtime intra-op threads
    precision: Literal["fp16", "fp32", "int8"] = "fp16"  # TensorRT plans
    cache_dir: Optional[str] = None  # TensorRT plan cache; default ~/.cache/avstream/engines
    fusion: Literal["array", "engine", "product"] = "product"  # the published picture map
    speech: Literal["auto", "on", "off"] = "auto"  # speech probabilities (silero-vad); auto: when ONNX Runtime is there
    gate_db: float = -55.0  # the engine map is gated off while the mono mix is quieter than this (dB full scale)

    def validate(self, key):
        _check(1 <= self.threads <= 64, f"{key}.threads", "must be within 1..64")
        _check(-120 <= self.gate_db <= 0, f"{key}.gate_db", "must be within [-120, 0] dB full scale")


@dataclass(frozen=True)
class Config:
    array: str = "auto"  # preset or YAML; auto: the recording's array.yaml for a recording, else minidsp_uma16
    duration: Optional[float] = 5.0  # seconds of audio to process; None = until the end/stop
    source: SourceConfig = field(default_factory=SourceConfig)
    stft: StftConfig = field(default_factory=StftConfig)
    localize: LocalizeConfig = field(default_factory=LocalizeConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    ros: RosConfig = field(default_factory=RosConfig)
    zmq: ZmqConfig = field(default_factory=ZmqConfig)
    foxglove: FoxgloveConfig = field(default_factory=FoxgloveConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)

    def validate(self, key=""):
        _check(self.duration is None or self.duration > 0, "duration", "must be positive or null")
        self.source.validate("source")
        self.stft.validate("stft")
        self.localize.validate("localize")
        self.track.validate("track")
        self.output.validate("output")
        self.ros.validate("ros")
        self.zmq.validate("zmq")
        self.foxglove.validate("foxglove")
        self.camera.validate("camera")
        self.engine.validate("engine")
        _check(self.camera.source != "synthetic" or self.source.kind == "synthetic", "camera.source",
               "the synthetic camera films the synthetic audio scene: it needs source.kind synthetic")

    @property
    def camera_source(self) -> str | None:
        """The camera actually used: None, "synthetic" or an OpenCV source string."""
        s = self.camera.source.strip()
        if s == "auto":
            return {"synthetic": "synthetic", "recording": "recording"}.get(self.source.kind)
        return None if s == "none" else s


class _Invalid(Exception):
    def __init__(self, key, message):
        super().__init__(f"key '{key}': {message}")
        self.key = key


def _check(ok, key, message):
    if not ok:
        raise _Invalid(key, message)


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "a list"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {type(None): "null", float: "a number", int: "an integer", bool: "true/false", str: "a string"}.get(
        tp, str(tp))


def _coerce(tp, value, key):
    """Check ``value`` against annotation ``tp``; return it converted (lists to tuples, etc.)."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        for arg in typing.get_args(tp):
            try:
                return _coerce(arg, value, key)
            except _Invalid:
                continue
        raise _Invalid(key, f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if isinstance(value, bool) and {"on", "off"} <= set(typing.get_args(tp)):
            value = "on" if value else "off"  # YAML 1.1 reads a bare on/off as true/false
        if value in typing.get_args(tp):
            return value
        raise _Invalid(key, f"expected {_type_name(tp)}, got {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise _Invalid(key, f"expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise _Invalid(key, f"expected a list of {len(args)} values, got {len(value)}")
        return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise _Invalid(key, f"expected a mapping, got {value!r}")
        return _build(tp, value, key)
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise _Invalid(key, f"expected {_type_name(tp)}, got {value!r}")


def _build(cls, data: dict, prefix: str):
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in hints:
            raise _Invalid(key, f"unknown key (known here: {', '.join(names)})")
        kwargs[k] = _coerce(hints[k], v, key)
    return cls(**kwargs)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _nest(dotted: str, value) -> dict:
    d: dict = value
    for part in reversed(dotted.split(".")):
        d = {part: d}
    return d


def parse_override(text: str) -> tuple[str, object]:
    """``key.sub=value`` with the value read as YAML (numbers, lists, null, strings)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}': expected KEY=VALUE, e.g. stft.hop=128")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> Config:
    """Defaults, then the YAML file, then ``overrides`` ({"stft.hop": 128, ...}), validated.

    Raises
    ------
    ConfigError
        Naming the file and the key at fault.
    """
    data: dict = {}
    where = "defaults"
    if path is not None:
        where = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read configuration ({exc.strerror or exc})") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: malformed YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(loaded).__name__}")
        data = loaded
    for key, value in (overrides or {}).items():
        data = _merge(data, _nest(key, value))
    try:
        cfg = _build(Config, data, "")
        cfg.validate()
    except _Invalid as exc:
        origin = where if path is not None else "the command line"
        if path is not None and overrides and any(exc.key == k or exc.key.startswith(k + ".") for k in overrides):
            origin = "the command line"
        raise ConfigError(f"{origin}: {exc}") from None
    return cfg


# keys a running pipeline can take (Pipeline.reconfigure, the ROS node's parameter callback): the
# localizer is rebuilt between two blocks; every other key needs a restart
LIVE_PREFIXES = ("localize.",)
NOT_LIVE = {"localize.grid", "localize.update_frames"}


def is_live(key: str) -> bool:
    return key.startswith(LIVE_PREFIXES) and key not in NOT_LIVE


def updated(cfg, overrides: dict):
    """``cfg`` with dotted-key ``overrides``, validated like ``load_config``."""
    data = to_dict(cfg)
    for key, value in overrides.items():
        data = _merge(data, _nest(key, value))
    try:
        new = _build(Config, data, "")
        new.validate()
    except _Invalid as exc:
        raise ConfigError(str(exc)) from None
    return new


def to_dict(cfg) -> dict:
    """The configuration as plain data (for logs, outputs and ROS parameter declarations)."""
    return dataclasses.asdict(cfg)
