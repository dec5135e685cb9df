"""ROS 2 messages for a heatmap update, as CDR bytes: the format every ROS transport shares.

DDS, rclpy and MCAP all carry the same bytes: plain CDR (``00 01 00 00`` + little-endian body),
produced by rosbags' type store for the chosen distro, so they equal what rmw_cyclonedds and
``ros2 bag`` write. Topic names are relative, under the node's namespace (default
``/avstream``), resolved by ``RosNames`` (remaps apply); see ``TOPICS`` for the whole table:

- ``heatmap/image``: sensor_msgs/Image, 32FC1, laid out by geometry.grids.ImageLayout: one
  pixel per cell of a fov grid; a sphere grid resampled to an equirectangular image; on a
  camera grid (``camera:BLOCK``) one pixel per block of the picture, framed in the camera
  optical frame, with its sibling ``heatmap/camera_info`` (the camera's, binning = the block).
- ``sources``: geometry_msgs/PoseArray, one pose per source at unit distance along its
  direction in the array frame, oriented along it (the pose's x axis points at the source);
  ``sources_cloud``: sensor_msgs/PointCloud2 of the same sources, fields x, y, z, intensity
  (float32; intensity = power), as odas_ros publishes, so they transform through TF.
- ``tracks``: vision_msgs/Detection3DArray, one detection per tracked source: ``id`` the track
  id (a string, as the message has it), one hypothesis with ``class_id`` "speech" (speech
  probability at least 0.5) or "sound" and ``score`` the track's probability, its pose at unit
  distance along the direction (x axis toward the source) with the measurement variance on the
  position's diagonal, ``bbox.center`` the same pose. vision_msgs because it is the message
  ROS 2 perception stacks already consume for detections with ids (odas_ros has its own type,
  which nothing else reads); ``ros2 topic echo`` needs the ros-<distro>-vision-msgs package.
- ``markers``: visualization_msgs/MarkerArray, one arrow per tracked source (marker id = track
  id; per peak when tracking is off), length and colour by power; its text says "#id", the
  power and, with the speech engine, the source's speech probability.
- ``/diagnostics``: diagnostic_msgs/DiagnosticArray, once a second: ``<node>: audio`` (the
  microphone's hardware id; ERROR for NaN/Inf or silent input and for a stalled device),
  ``<node>: camera`` (ERROR while the camera is lost), ``<node>: publishing`` (failed writes) and
  ``<node>: recording`` (ERROR once a recording stopped, e.g. on a full disk).
- with an audio-visual engine: ``engine/heatmap``, sensor_msgs/Image 32FC1 over the picture
  (the engine's map, rows x cols cells over the whole picture), and ``engine/segmentation``,
  sensor_msgs/Image mono8 (255 on the sounding object), in the camera optical frame.
- with a camera: ``overlay/image``, sensor_msgs/Image bgr8 (the map drawn on the camera frame),
  and its sibling ``overlay/camera_info`` (not for equirectangular cameras, which CameraInfo
  cannot describe), both with the frame's header, so image_transport and RViz pair them.
- ``audio`` (audio_common_msgs/AudioDataStamped, interleaved S16LE, every sample once) and
  ``audio_info`` (AudioInfo, latched): the array's microphones (``ros.audio``).
- ``/tf_static``: the array -> camera optical frame (and parent -> array) static transforms.
- ``ros.respeaker``: ``sound_direction`` (std_msgs/Int32, degrees), ``sound_localization``
  (geometry_msgs/PoseStamped) and, with the speech engine, ``is_speeching`` (std_msgs/Bool), as
  respeaker_ros publishes them.

``header.stamp`` is the capture time of the first sample behind the update; ``frame_id`` the
array frame.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from ..geometry.grids import ImageLayout, to_unit

IMAGE = "sensor_msgs/msg/Image"
POSE_ARRAY = "geometry_msgs/msg/PoseArray"
TRACKS = "vision_msgs/msg/Detection3DArray"

# vision_msgs (ROS 2, 4.x: Humble to Kilted) is not in rosbags' stores: its definitions, registered
# from their text, give the same CDR layout and RIHS01 hash as the ROS 2 package
VISION_MSGS = {
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": "vision_msgs/ObjectHypothesis hypothesis\n"
                                                "geometry_msgs/PoseWithCovariance pose\n",
    "vision_msgs/msg/BoundingBox3D": "geometry_msgs/Pose center\ngeometry_msgs/Vector3 size\n",
    "vision_msgs/msg/Detection3D": "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
                                   "vision_msgs/BoundingBox3D bbox\nstring id\n",
    "vision_msgs/msg/Detection3DArray": "std_msgs/Header header\nvision_msgs/Detection3D[] detections\n",
}
# audio_common_msgs as ros-drivers/audio_common's ros2 branch defines it (the package that
# audio_capture and audio_play use; FACTS 3.4: another package shares its name), registered from
# its text like vision_msgs
AUDIO = "audio_common_msgs/msg/AudioDataStamped"
AUDIO_INFO = "audio_common_msgs/msg/AudioInfo"
AUDIO_MSGS = {
    "audio_common_msgs/msg/AudioData": "uint8[] data\n",
    "audio_common_msgs/msg/AudioDataStamped": "std_msgs/Header header\naudio_common_msgs/AudioData audio\n",
    "audio_common_msgs/msg/AudioInfo": "uint8 channels\nuint32 sample_rate\nstring sample_format\nuint32 bitrate\n"
                                       "string coding_format\n",
}
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
TF_STATIC = "/tf_static"  # tf2's static transforms: absolute, reliable, transient local, depth 1
MARKER_ARRAY = "visualization_msgs/msg/MarkerArray"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINT_CLOUD = "sensor_msgs/msg/PointCloud2"
INT32 = "std_msgs/msg/Int32"
BOOL = "std_msgs/msg/Bool"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"

# kind -> (name relative to the node's namespace, message type, ros.qos key; None = latched:
# reliable, transient local, depth 1, so late joiners get the last one)
TOPICS = {
    "heatmap": ("heatmap/image", IMAGE, "heatmap"),
    "heatmap_info": ("heatmap/camera_info", CAMERA_INFO, "heatmap"),
    "sources": ("sources", POSE_ARRAY, "sources"),
    "sources_cloud": ("sources_cloud", POINT_CLOUD, "sources"),
    "markers": ("markers", MARKER_ARRAY, "markers"),
    "tracks": ("tracks", TRACKS, "tracks"),
    "diagnostics": ("/diagnostics", DIAGNOSTIC_ARRAY, "diagnostics"),
    "overlay": ("overlay/image", IMAGE, "overlay"),
    "overlay_info": ("overlay/camera_info", CAMERA_INFO, "camera_info"),
    "engine_heatmap": ("engine/heatmap", IMAGE, "engine_heatmap"),
    "segmentation": ("engine/segmentation", IMAGE, "segmentation"),
    "audio": ("audio", AUDIO, "audio"),
    "audio_info": ("audio_info", AUDIO_INFO, None),
    "sound_direction": ("sound_direction", INT32, "sources"),
    "sound_localization": ("sound_localization", POSE_STAMPED, "sources"),
    "is_speeching": ("is_speeching", BOOL, "sources"),
    "tf_static": (TF_STATIC, TF_MESSAGE, None),
}
SOURCE_AUDIO = "source_audio"  # <ns>/source_audio/track_<id> and source_audio/audio_info (recordings)

DISTROS = ("humble", "iron", "jazzy", "kilted")
DIAGNOSTICS_PERIOD_S = 1.0  # /diagnostics at most this often (by capture time), whatever the update rate


def typestore(distro: str = "jazzy"):
    """The rosbags typestore of ``distro`` with the vision and audio messages, one per process,
    every topic's (de)serializers compiled: rosbags generates them on a type's first use, some
    0.2 s of Python for our topics, which on the first update of a live run would put it behind
    real time (two ROS sinks paid it twice and skipped updates at the start)."""
    return _typestore(distro)  # cached by the distro's name, however the caller passed it


@functools.cache
def _typestore(distro: str):
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    if distro not in DISTROS:
        raise ValueError(f"unknown ROS 2 distro '{distro}' (known: {', '.join(DISTROS)})")
    ts = get_typestore(getattr(Stores, "ROS2_" + distro.upper()))
    found = {}
    for name, text in {**VISION_MSGS, **AUDIO_MSGS}.items():
        if name not in ts.types:
            found.update(get_types_from_msg(text, name))
    if found:
        ts.register(found)
    for typename in sorted({typename for _, typename, _ in TOPICS.values()}):
        ts.get_msgdef(typename)
    return ts


@dataclass(frozen=True)
class Message:
    """One serialized message: where it goes, its type and its CDR bytes."""

    topic: str
    typename: str
    cdr: bytes
    stamp_ns: int


def quaternion_x_to(u: np.ndarray) -> tuple:
    """Quaternion (x, y, z, w) rotating +x onto unit vector u (shortest arc)."""
    x = np.array([1.0, 0.0, 0.0])
    c = float(np.dot(x, u))
    if c < -1.0 + 1e-9:
        return (0.0, 0.0, 1.0, 0.0)  # half turn about z
    axis = np.cross(x, u)
    w = 1.0 + c
    q = np.array([axis[0], axis[1], axis[2], w])
    q /= np.linalg.norm(q)
    return tuple(float(v) for v in q)


class RosFormatter:
    """Turns heatmaps into ROS 2 messages (CDR) for one grid.

    Parameters
    ----------
    grid : Grid
    names : RosNames
        Namespace, node name and remaps: topic names and diagnostic status names.
    frame_id : str
        The array frame.
    distro : str
        ROS 2 distro whose message definitions and type hashes are used.
    sphere_resolution_deg : float
        Pixel size of the equirectangular image a sphere grid is resampled to.
    camera : Camera or None
        With a camera, the overlay topics exist.
    camera_frame_id : str
    audio_channels : int
        Channels of the raw ``audio`` topic; 0: not published.
    respeaker : bool
        Also the respeaker_ros topics.
    parent : (frame_id, xyz, rpy_deg) or None
        A parent frame of the array frame for ``/tf_static``.
    """

    def __init__(self, grid, names=None, frame_id="mic_array", distro="jazzy",
                 sphere_resolution_deg=2.0, camera=None, camera_frame_id="camera_optical", engine=False,
                 tracks=True, sample_rate=16000, extrinsics=None, audio_channels=0, respeaker=False,
                 speech=False, parent=None):
        from .ros_names import RosNames

        self.ts = typestore(distro)
        self.names = names if names is not None else RosNames()
        self.sample_rate = sample_rate
        self.extrinsics = extrinsics
        self.T = self.ts.types
        self.frame_id = frame_id
        self.topics = {kind: self.names.resolve(name) for kind, (name, _, _) in TOPICS.items()}
        self.engine, self.tracks = engine, tracks
        self.camera, self.camera_frame_id = camera, camera_frame_id
        self.audio_channels, self.respeaker, self.speech, self.parent = audio_channels, respeaker, speech, parent
        self.layout = ImageLayout(grid, sphere_resolution_deg)
        # a camera grid is an image of the picture: the camera's optical frame and CameraInfo
        self.registered = camera is not None and self.layout.definition.get("type") == "camera"
        self._last_diag = None
        self._audio_id_max = 0  # track ids count up: ids up to this one had their audio_info sent
        self.failed_writes = 0  # set by the transport: writes that did not go out
        self.height, self.width = self.layout.rows, self.layout.cols

    @classmethod
    def for_run(cls, meta: dict, ros=None, names=None) -> "RosFormatter":
        """The formatter for a run's ``Pipeline.meta()`` and ``ros`` (a RosConfig): its grid, its
        camera if it has one, and the topics the configuration asks for."""
        from ..config import RosConfig
        from .ros_names import RosNames

        ros = ros if ros is not None else RosConfig()
        engine = bool((meta.get("engines") or {}).get("av")) and meta.get("picture") is not None
        tracks = bool(meta.get("config", {}).get("track", {}).get("enabled", True))
        rate = int(meta.get("sample_rate", 16000))
        n_mics = int((meta.get("array") or {}).get("n_mics", 0))
        parent = (ros.parent_frame_id, ros.parent_xyz, ros.parent_rpy_deg) if ros.parent_frame_id else None
        return cls(meta["grid_object"], names if names is not None else RosNames.from_config(ros), ros.frame_id,
                   ros.distro, camera=meta.get("camera"), camera_frame_id=ros.camera_frame_id, engine=engine,
                   tracks=tracks, sample_rate=rate, extrinsics=meta.get("extrinsics"),
                   audio_channels=n_mics if n_mics and ros.audio_on(n_mics, rate) else 0, respeaker=ros.respeaker,
                   speech=bool((meta.get("engines") or {}).get("speech")), parent=parent)

    # --- individual messages -------------------------------------------------------------
    def _header(self, stamp_ns: int, frame_id: str | None = None):
        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        return self.T["std_msgs/msg/Header"](stamp=self.T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                             frame_id=frame_id or self.frame_id)

    def overlay_image(self, overlay: np.ndarray, header):
        return self.raw_image(overlay, header, "bgr8")

    def camera_info(self, header, binning: int = 0):
        """The camera's CameraInfo; ``binning`` > 1 for an image of binning x binning pixel blocks."""
        cam = self.camera
        P = np.zeros((3, 4))
        P[:, :3] = cam.K
        T = self.T
        roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        return T[CAMERA_INFO](header=header, height=cam.height, width=cam.width, distortion_model=cam.model,
                              d=np.asarray(cam.D, dtype=np.float64), k=np.asarray(cam.K, dtype=np.float64).ravel(),
                              r=np.eye(3).ravel(), p=P.ravel(), binning_x=binning, binning_y=binning, roi=roi)

    def heatmap_camera_info(self, header):
        """CameraInfo of a camera-grid heatmap: the camera's with binning = the block size when
        the blocks tile the picture exactly; else the camera scaled to the heatmap's size."""
        cam = self.camera
        bx, by = cam.width / self.width, cam.height / self.height
        if bx == by and float(bx).is_integer():
            return self.camera_info(header, int(bx))
        msg = self.camera_info(header)
        S = np.diag([self.width / cam.width, self.height / cam.height, 1.0])
        K = S @ np.asarray(cam.K, dtype=np.float64)
        P = np.zeros((3, 4))
        P[:, :3] = K
        msg.height, msg.width, msg.k, msg.p = self.height, self.width, K.ravel(), P.ravel()
        return msg

    def raw_image(self, array: np.ndarray, header, encoding: str):
        """An Image of a (rows, cols) float32 (32FC1), (rows, cols) uint8 (mono8) or (rows, cols, 3)
        uint8 (bgr8) raster: one row of the C-ordered array is one step."""
        a = np.ascontiguousarray(array)
        return self.T[IMAGE](header=header, height=a.shape[0], width=a.shape[1], encoding=encoding, is_bigendian=0,
                             step=a.strides[0], data=a.reshape(-1).view(np.uint8))

    def image_array(self, values: np.ndarray) -> np.ndarray:
        """The heatmap as the (height, width) float32 image that is published."""
        return self.layout.image(values)

    def image(self, heatmap, header):
        return self.raw_image(self.image_array(heatmap.values), header, "32FC1")

    def pose_array(self, heatmap, header):
        T = self.T
        poses = []
        for p in heatmap.peaks:
            u = to_unit(p.azimuth_deg, p.elevation_deg)
            qx, qy, qz, qw = quaternion_x_to(u)
            poses.append(T["geometry_msgs/msg/Pose"](
                position=T["geometry_msgs/msg/Point"](x=float(u[0]), y=float(u[1]), z=float(u[2])),
                orientation=T["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw)))
        return T[POSE_ARRAY](header=header, poses=poses)

    def point_cloud(self, heatmap, header):
        """The sources as a PointCloud2 (x, y, z, intensity float32; one point per source at unit
        range along its direction, intensity = power), as odas_ros's ssl_pcl2."""
        T = self.T
        pts = np.zeros((len(heatmap.peaks), 4), "<f4")
        for i, p in enumerate(heatmap.peaks):
            pts[i, :3] = to_unit(p.azimuth_deg, p.elevation_deg)
            pts[i, 3] = p.power
        fields = [T["sensor_msgs/msg/PointField"](name=n, offset=4 * i, datatype=7, count=1)  # 7 = FLOAT32
                  for i, n in enumerate("x y z intensity".split())]
        return T[POINT_CLOUD](header=header, height=1, width=len(pts), fields=fields, is_bigendian=False,
                              point_step=16, row_step=16 * len(pts), data=pts.reshape(-1).view(np.uint8),
                              is_dense=True)

    def respeaker_messages(self, heatmap, header, ns) -> list:
        """respeaker_ros's topics for the strongest source: sound_direction (Int32, degrees
        0..359 counter-clockwise from the array's x axis), sound_localization (PoseStamped, unit
        range, oriented toward it) and, with the speech engine, is_speeching (Bool)."""
        if not heatmap.peaks:
            return []
        T = self.T
        p = max(heatmap.peaks, key=lambda q: q.power)
        u = to_unit(p.azimuth_deg, p.elevation_deg)
        qx, qy, qz, qw = quaternion_x_to(u)
        out = [self._msg("sound_direction", T[INT32](data=int(round(p.azimuth_deg)) % 360), ns),
               self._msg("sound_localization", T[POSE_STAMPED](header=header, pose=T["geometry_msgs/msg/Pose"](
                   position=T["geometry_msgs/msg/Point"](x=float(u[0]), y=float(u[1]), z=float(u[2])),
                   orientation=T["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw))), ns)]
        speech = p.speech if p.speech is not None else heatmap.speech
        if self.speech and speech is not None:
            out.append(self._msg("is_speeching", T[BOOL](data=bool(speech >= 0.5)), ns))
        return out

    def _msg(self, kind, msg, stamp_ns) -> "Message":
        typename = TOPICS[kind][1]
        return Message(self.topics[kind], typename, self.serialize(msg, typename), stamp_ns)

    def detections(self, heatmap, header, variance=(5.0 * np.pi / 180.0) ** 2):
        T = self.T
        out = []
        for tr in heatmap.tracks or []:
            u = to_unit(tr.azimuth_deg, tr.elevation_deg)
            qx, qy, qz, qw = quaternion_x_to(u)
            pose = T["geometry_msgs/msg/Pose"](
                position=T["geometry_msgs/msg/Point"](x=float(u[0]), y=float(u[1]), z=float(u[2])),
                orientation=T["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw))
            cov = np.zeros(36)
            cov[[0, 7, 14]] = variance
            speech = tr.speech is not None and tr.speech >= 0.5
            hyp = T["vision_msgs/msg/ObjectHypothesisWithPose"](
                hypothesis=T["vision_msgs/msg/ObjectHypothesis"](class_id="speech" if speech else "sound",
                                                                 score=float(tr.probability)),
                pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=cov))
            bbox = T["vision_msgs/msg/BoundingBox3D"](center=pose, size=T["geometry_msgs/msg/Vector3"](
                x=0.0, y=0.0, z=0.0))
            out.append(T["vision_msgs/msg/Detection3D"](header=header, results=[hyp], bbox=bbox, id=str(tr.id)))
        return T[TRACKS](header=header, detections=out)

    def marker_array(self, heatmap, header):
        T = self.T
        origin = T["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0)
        # first a DELETEALL: sources come and go, and old arrows must not linger in RViz
        markers = [self._marker(dict(
            header=header, ns="avstream", id=0, type=0, action=3,
            pose=T["geometry_msgs/msg/Pose"](position=origin, orientation=T["geometry_msgs/msg/Quaternion"](
                x=0.0, y=0.0, z=0.0, w=1.0)),
            scale=T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
            color=T["std_msgs/msg/ColorRGBA"](r=0.0, g=0.0, b=0.0, a=0.0),
            lifetime=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=0), frame_locked=False, points=[],
            colors=[], text="", mesh_resource="", mesh_use_embedded_materials=False), header)]
        # one arrow per track (its marker id is the track's id) or, without tracking, per peak
        shown = heatmap.tracks if heatmap.tracks is not None else heatmap.peaks
        for k, p in enumerate(shown):
            u = to_unit(p.azimuth_deg, p.elevation_deg)
            qx, qy, qz, qw = quaternion_x_to(u)
            power = float(np.clip(p.power, 0.0, 1.0))
            label = f"#{p.id} " if heatmap.tracks is not None else ""
            fields = dict(
                header=header, ns="avstream", id=p.id if heatmap.tracks is not None else k + 1, type=0, action=0,
                pose=T["geometry_msgs/msg/Pose"](
                    position=origin, orientation=T["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw)),
                scale=T["geometry_msgs/msg/Vector3"](x=0.2 + 0.8 * power, y=0.03, z=0.03),
                color=T["std_msgs/msg/ColorRGBA"](r=power, g=0.2, b=1.0 - power, a=1.0),
                lifetime=T["builtin_interfaces/msg/Duration"](sec=0, nanosec=500_000_000),
                frame_locked=False, points=[], colors=[],
                text=label + f"power {p.power:.2f}" + (f" speech {p.speech:.2f}" if p.speech is not None else ""),
                mesh_resource="",
                mesh_use_embedded_materials=False)
            markers.append(self._marker(fields, header))
        return T[MARKER_ARRAY](markers=markers)

    def _marker(self, fields, header):
        """A Marker with the distro's extra fields (Jazzy added texture and mesh_file) filled empty."""
        T = self.T
        names = [f[0] for f in self.ts.fielddefs["visualization_msgs/msg/Marker"][1]]
        extra = {"texture_resource": "",
                 "texture": lambda: T["sensor_msgs/msg/CompressedImage"](header=header, format="",
                                                                         data=np.zeros(0, np.uint8)),
                 "uv_coordinates": [],
                 "mesh_file": lambda: T["visualization_msgs/msg/MeshFile"](filename="", data=np.zeros(0, np.uint8))}
        for name in names:
            if name not in fields and name in extra:
                v = extra[name]
                fields[name] = v() if callable(v) else v
        return T["visualization_msgs/msg/Marker"](**{n: fields[n] for n in names})

    def diagnostics(self, header, statuses: list):
        T = self.T
        return T[DIAGNOSTIC_ARRAY](header=header, status=[T["diagnostic_msgs/msg/DiagnosticStatus"](
            level=st["level"], name=st["name"], message=st["message"], hardware_id=st.get("hardware_id", ""),
            values=[T["diagnostic_msgs/msg/KeyValue"](key=str(k), value=str(v)) for k, v in st["values"].items()])
            for st in statuses])

    # --- all at once ---------------------------------------------------------------------
    def diagnostics_of(self, heatmap) -> list:
        """DiagnosticStatus fields from the pipeline's status on a heatmap, one per device:
        ``<node>: audio`` (ERROR for unusable input: NaN/Inf, silence; WARN for drops, overflows
        and clipping), ``<node>: camera`` with a camera (ERROR while lost, not found or in a
        wrong frame size; WARN while its frames are stale) and ``<node>: publishing``."""
        st = heatmap.status or {}
        flags = set(heatmap.flags)
        node = self.names.fully_qualified.lstrip("/")
        level, message = 0, "ok"
        if st.get("dropped_blocks") or st.get("overflows") or flags & {"clipped", "overrun"}:
            level, message = 1, "audio lost or clipped"
        if flags & {"gap"}:
            level, message = 1, "audio device was gone; samples missing before this update"
        if flags & {"nonfinite", "silent"}:
            level, message = 2, "unusable audio: " + ", ".join(sorted(flags & {"nonfinite", "silent"}))
        audio_keys = ("updates", "skipped_updates", "dropped_blocks", "overflows", "latency_s", "device_state", "reconnects",
                      "gap_samples")
        values = {k: st[k] for k in audio_keys if k in st}
        values["sources"] = len(heatmap.peaks)
        out = [{"name": f"{node}: audio", "level": level, "message": message, "values": values,
                "hardware_id": str(st.get("device", ""))}]
        if "camera_state" in st:
            camera = st["camera_state"]
            level, message = 0, "ok" if camera == "running" else camera
            if camera in ("lost", "not found", "wrong frame size"):
                level = 2
                message = f"camera {camera}" + (", retrying" if camera != "wrong frame size" else "") + "; audio goes on"
            elif camera not in ("running", "ended"):
                level, message = 1, f"camera {camera}; audio goes on"
            values = {k: v for k, v in st.items() if k.startswith(("camera", "video"))}
            out.append({"name": f"{node}: camera", "level": level, "message": message, "values": values,
                        "hardware_id": str(st.get("camera", ""))})
        for what, why in st.get("failed_outputs", {}).items():  # stopped for good; the rest goes on
            out.append({"name": f"{node}: {what}", "level": 2, "message": f"stopped: {why}", "values": {},
                        "hardware_id": ""})
        out.append({"name": f"{node}: publishing", "level": 1 if self.failed_writes else 0,
                    "message": f"{self.failed_writes} writes failed" if self.failed_writes else "ok",
                    "values": {"failed_writes": self.failed_writes}, "hardware_id": ""})
        return out

    def stalled(self, seconds: float, stamp_ns: int, device: str = "") -> "Message":
        """``/diagnostics`` while no audio arrives: the audio status at ERROR."""
        node = self.names.fully_qualified.lstrip("/")
        msg = self.diagnostics(self._header(stamp_ns), [{
            "name": f"{node}: audio", "level": 2, "message": f"audio device stalled: nothing for {seconds:.1f} s",
            "values": {"stalled_s": round(seconds, 1)}, "hardware_id": device}])
        return self._msg("diagnostics", msg, stamp_ns)

    def messages(self, heatmap) -> list:
        """Every topic's message for one update, serialized; diagnostics once per period."""
        ns = int(round(heatmap.stamp * 1e9))  # once: header and recording time must agree to the ns
        header = self._header(ns)
        # a camera grid's heatmap is an image of the picture: the camera's frame, beside its CameraInfo
        hm_header = self._header(ns, self.camera_frame_id) if self.registered else header
        out = [self._msg("heatmap", self.image(heatmap, hm_header), ns)]
        if self.registered:
            out.append(self._msg("heatmap_info", self.heatmap_camera_info(hm_header), ns))
        out += [self._msg("sources", self.pose_array(heatmap, header), ns),
                self._msg("sources_cloud", self.point_cloud(heatmap, header), ns),
                self._msg("markers", self.marker_array(heatmap, header), ns)]
        if self.tracks:
            out.append(self._msg("tracks", self.detections(heatmap, header), ns))
        if self.respeaker:
            out += self.respeaker_messages(heatmap, header, ns)
        if self._last_diag is None or heatmap.stamp - self._last_diag >= DIAGNOSTICS_PERIOD_S:
            self._last_diag = heatmap.stamp
            out.append(self._msg("diagnostics", self.diagnostics(header, self.diagnostics_of(heatmap)), ns))
        pic = heatmap.picture
        fns = int(round(heatmap.frame.stamp * 1e9)) if heatmap.frame is not None else ns
        cam_header = self._header(fns, self.camera_frame_id)
        if self.engine and pic is not None:
            if pic.engine is not None:
                out.append(self._msg("engine_heatmap", self.raw_image(pic.engine.astype(np.float32), cam_header,
                                                                      "32FC1"), fns))
            if pic.mask is not None:
                out.append(self._msg("segmentation", self.raw_image(pic.mask.astype(np.uint8), cam_header, "mono8"),
                                     fns))
        if heatmap.overlay is not None and self.camera is not None:
            out.append(self._msg("overlay", self.overlay_image(heatmap.overlay, cam_header), fns))
            if self.camera.model != "equirectangular":
                out.append(self._msg("overlay_info", self.camera_info(cam_header), fns))
        if self.audio_channels and heatmap.audio is not None and heatmap.audio.shape[1]:
            ans = int(round(heatmap.audio_stamp * 1e9))
            out.append(self._msg("audio", self.audio_message(heatmap.audio, self._header(ans)), ans))
        return out

    def audio_message(self, samples: np.ndarray, header):
        """AudioDataStamped of (channels, n) float32 samples: interleaved S16LE (x 32768, so
        16-bit input comes back bit for bit)."""
        pcm = np.clip(np.round(np.asarray(samples, np.float64).T * 32768.0), -32768, 32767).astype("<i2")
        return self.T[AUDIO](header=header, audio=self.T["audio_common_msgs/msg/AudioData"](
            data=np.ascontiguousarray(pcm).reshape(-1).view(np.uint8)))

    def audio_info(self, channels: int):
        return self.T[AUDIO_INFO](channels=int(channels), sample_rate=int(self.sample_rate), sample_format="S16LE",
                                  bitrate=16 * int(channels) * int(self.sample_rate), coding_format="wave")

    def latched(self, stamp_ns: int) -> list:
        """What goes out once at the start, kept for late joiners: ``/tf_static`` and ``audio_info``."""
        out = []
        static = self.static_transform(stamp_ns)
        if static is not None:
            out.append(static)
        if self.audio_channels:
            out.append(self._msg("audio_info", self.audio_info(self.audio_channels), stamp_ns))
        return out

    def static_transform(self, stamp_ns: int):
        """``/tf_static`` (a tf2_msgs/TFMessage, or None with nothing to say): the array frame ->
        the camera optical frame from the extrinsics, and the parent frame -> the array frame when
        ``ros.parent_frame_id`` is set. Extrinsics map array directions into the optical frame
        (d_cam = R d_array, t = the array origin in the optical frame); TF wants the child's pose
        in the parent: rotation R^T, translation -R^T t."""
        from scipy.spatial.transform import Rotation

        T = self.T

        def transform(parent, child, origin, rotation):
            qx, qy, qz, qw = rotation.as_quat()
            return T["geometry_msgs/msg/TransformStamped"](
                header=self._header(stamp_ns, parent), child_frame_id=child,
                transform=T["geometry_msgs/msg/Transform"](
                    translation=T["geometry_msgs/msg/Vector3"](x=float(origin[0]), y=float(origin[1]),
                                                               z=float(origin[2])),
                    rotation=T["geometry_msgs/msg/Quaternion"](x=float(qx), y=float(qy), z=float(qz), w=float(qw))))

        tfs = []
        if self.parent is not None:
            frame, xyz, rpy = self.parent
            tfs.append(transform(frame, self.frame_id, xyz, Rotation.from_euler("xyz", rpy, degrees=True)))
        if self.extrinsics is not None and self.camera is not None:
            R = np.asarray(self.extrinsics.rotation, dtype=np.float64)
            origin = -R.T @ np.asarray(self.extrinsics.translation, dtype=np.float64)
            tfs.append(transform(self.frame_id, self.camera_frame_id, origin, Rotation.from_matrix(R.T)))
        if not tfs:
            return None
        return self._msg("tf_static", T[TF_MESSAGE](transforms=tfs), stamp_ns)

    @staticmethod
    def qos_key_of(typename: str):
        """The ros.qos key of a topic made during the run (a track's audio), None when latched."""
        return None if typename == AUDIO_INFO else "audio"

    def source_audio(self, heatmap) -> list:
        """Each track's audio of this update (separate/): ``source_audio/track_<id>``,
        AudioDataStamped, S16LE mono at the array's rate, stamped with the capture time of its
        first sample; and ``source_audio/audio_info`` (AudioInfo) when a track's audio first appears."""
        audio = heatmap.source_audio or {}
        if not audio:
            return []
        ns = int(round(heatmap.source_audio_stamp * 1e9))
        header = self._header(ns)
        out = []
        base = self.names.resolve(SOURCE_AUDIO)
        for tid, x in audio.items():
            if tid > self._audio_id_max:
                self._audio_id_max = tid
                out.append(Message(f"{base}/audio_info", AUDIO_INFO, self.serialize(self.audio_info(1), AUDIO_INFO), ns))
            msg = self.audio_message(np.asarray(x)[None, :], header)
            out.append(Message(f"{base}/track_{tid}", AUDIO, self.serialize(msg, AUDIO), ns))
        return out

    def topic_types(self) -> dict:
        """kind ("heatmap", ...) -> (ROS topic name, message type, ros.qos key or None for
        latched), for every topic produced."""
        kinds = ["heatmap", "sources", "sources_cloud", "markers", "diagnostics"]
        if self.registered:
            kinds.append("heatmap_info")
        if self.tracks:
            kinds.append("tracks")
        if self.engine:
            kinds += ["engine_heatmap", "segmentation"]
        if self.camera is not None:
            kinds.append("overlay")
            if self.camera.model != "equirectangular":
                kinds.append("overlay_info")
        if self.audio_channels:
            kinds += ["audio", "audio_info"]
        if self.respeaker:
            kinds += ["sound_direction", "sound_localization"] + (["is_speeching"] if self.speech else [])
        if self.parent is not None or (self.extrinsics is not None and self.camera is not None):
            kinds.append("tf_static")
        return {k: (self.topics[k], TOPICS[k][1], TOPICS[k][2]) for k in kinds}

    def serialize(self, msg, typename) -> bytes:
        return bytes(self.ts.serialize_cdr(msg, typename))

    def msgdef(self, typename) -> str:
        """The ros2msg schema text (with its dependencies) for MCAP and Foxglove."""
        return self.ts.generate_msgdef(typename, ros_version=2)[0]

    def type_hash(self, typename) -> str:
        """RIHS01 hash (Iron and later; Humble has none)."""
        return self.ts.hash_rihs01(typename)
