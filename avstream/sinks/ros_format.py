"""ROS 2 messages for a heatmap update, as CDR bytes: the format every ROS transport shares.

DDS, rclpy and MCAP all carry the same bytes: plain CDR (``00 01 00 00`` + little-endian body),
produced by rosbags' type store for the chosen distro, so they equal what rmw_cyclonedds and
``ros2 bag`` write. Topics (under the namespace, default ``/avstream``):

- ``heatmap``: sensor_msgs/Image, 32FC1, laid out by geometry.grids.ImageLayout: one pixel
  per cell of a fov grid; a sphere grid resampled to an equirectangular image.
- ``sources``: geometry_msgs/PoseArray, one pose per source at unit distance along its
  direction in the array frame, oriented along it (the pose's x axis points at the source).
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
- ``/diagnostics``: diagnostic_msgs/DiagnosticArray.
- with an audio-visual engine: ``engine_heatmap``, sensor_msgs/Image 32FC1 over the picture
  (the engine's map, rows x cols cells over the whole picture), and ``segmentation``,
  sensor_msgs/Image mono8 (255 on the sounding object), in the camera optical frame.
- with a camera: ``overlay``, sensor_msgs/Image bgr8 (the map drawn on the camera frame), and
  ``camera_info``, sensor_msgs/CameraInfo of that camera (not for equirectangular cameras,
  which CameraInfo cannot describe), both stamped with the frame's capture time and framed in
  the camera optical frame, so image_transport tools and RViz's Camera display pair them.

``header.stamp`` is the capture time of the first sample behind the update; ``frame_id`` the
array frame.
"""
from __future__ import annotations

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

DISTROS = ("humble", "iron", "jazzy", "kilted")
DIAGNOSTICS_PERIOD_S = 1.0  # /diagnostics at most this often (by capture time), whatever the update rate


def typestore(distro: str = "jazzy"):
    from rosbags.typesys import Stores, get_typestore

    from rosbags.typesys import get_types_from_msg

    if distro not in DISTROS:
        raise ValueError(f"unknown ROS 2 distro '{distro}' (known: {', '.join(DISTROS)})")
    ts = get_typestore(getattr(Stores, "ROS2_" + distro.upper()))
    found = {}
    for name, text in {**VISION_MSGS, **AUDIO_MSGS}.items():
        if name not in ts.types:
            found.update(get_types_from_msg(text, name))
    if found:
        ts.register(found)
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
    namespace : str
        Topic namespace, e.g. "/avstream".
    frame_id : str
        The array frame.
    distro : str
        ROS 2 distro whose message definitions and type hashes are used.
    sphere_resolution_deg : float
        Pixel size of the equirectangular image a sphere grid is resampled to.
    camera : Camera or None
        With a camera, the overlay and camera_info topics exist.
    camera_frame_id : str
    """

    def __init__(self, grid, namespace="/avstream", frame_id="mic_array", distro="jazzy",
                 sphere_resolution_deg=2.0, camera=None, camera_frame_id="camera_optical", engine=False,
                 tracks=True, sample_rate=16000, extrinsics=None):
        self.ts = typestore(distro)
        self.sample_rate = sample_rate
        self.extrinsics = extrinsics
        self.T = self.ts.types
        self.frame_id = frame_id
        ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.topics = {"heatmap": f"{ns}/heatmap", "sources": f"{ns}/sources", "markers": f"{ns}/markers",
                       "tracks": f"{ns}/tracks",
                       "diagnostics": "/diagnostics", "overlay": f"{ns}/overlay", "camera_info": f"{ns}/camera_info",
                       "engine_heatmap": f"{ns}/engine_heatmap", "segmentation": f"{ns}/segmentation",
                       "audio": f"{ns}/audio"}
        self.engine, self.tracks = engine, tracks
        self.camera, self.camera_frame_id = camera, camera_frame_id
        self.layout = ImageLayout(grid, sphere_resolution_deg)
        self._last_diag = None
        self._audio_ids: set = set()  # tracks whose audio/info went out
        self.height, self.width = self.layout.rows, self.layout.cols

    @classmethod
    def for_run(cls, meta: dict, namespace: str, frame_id: str, distro: str) -> "RosFormatter":
        """The formatter for a run's ``Pipeline.meta()``: its grid, and its camera if it has one."""
        cam_frame = meta.get("config", {}).get("ros", {}).get("camera_frame_id", "camera_optical")
        engine = bool((meta.get("engines") or {}).get("av")) and meta.get("picture") is not None
        tracks = bool(meta.get("config", {}).get("track", {}).get("enabled", True))
        return cls(meta["grid_object"], namespace, frame_id, distro, camera=meta.get("camera"),
                   camera_frame_id=cam_frame, engine=engine, tracks=tracks, sample_rate=int(meta.get("sample_rate", 16000)),
                   extrinsics=meta.get("extrinsics"))

    # --- individual messages -------------------------------------------------------------
    def _header(self, stamp_ns: int, frame_id: str | None = None):
        sec, nanosec = divmod(stamp_ns, 1_000_000_000)
        return self.T["std_msgs/msg/Header"](stamp=self.T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                             frame_id=frame_id or self.frame_id)

    def overlay_image(self, overlay: np.ndarray, header):
        return self.raw_image(overlay, header, "bgr8")

    def camera_info(self, header):
        cam = self.camera
        P = np.zeros((3, 4))
        P[:, :3] = cam.K
        T = self.T
        roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        return T[CAMERA_INFO](header=header, height=cam.height, width=cam.width, distortion_model=cam.model,
                              d=np.asarray(cam.D, dtype=np.float64), k=np.asarray(cam.K, dtype=np.float64).ravel(),
                              r=np.eye(3).ravel(), p=P.ravel(), binning_x=0, binning_y=0, roi=roi)

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

    def diagnostics(self, header, level: int, message: str, values: dict, hardware_id: str = ""):
        T = self.T
        status = T["diagnostic_msgs/msg/DiagnosticStatus"](
            level=level, name="avstream: localization", message=message, hardware_id=hardware_id,
            values=[T["diagnostic_msgs/msg/KeyValue"](key=str(k), value=str(v)) for k, v in values.items()])
        return T[DIAGNOSTIC_ARRAY](header=header, status=[status])

    # --- all at once ---------------------------------------------------------------------
    def diagnostics_of(self, heatmap) -> dict:
        """DiagnosticStatus fields from the pipeline's status on a heatmap: ERROR for unusable
        input (NaN/Inf, silence), WARN for drops, overflows and clipping, else OK."""
        st = heatmap.status or {}
        flags = set(heatmap.flags)
        level, message = 0, "ok"
        if st.get("dropped_blocks") or st.get("overflows") or flags & {"clipped", "overrun"}:
            level, message = 1, "audio lost or clipped"
        camera = st.get("camera_state", "running")
        if camera not in ("running", "ended") and level < 2:
            level = 1
            what = f"camera {camera}" + (", retrying" if camera in ("lost", "not found") else "")
            message = f"{what}; audio goes on" if message == "ok" else f"{message}; {what}"
        if flags & {"nonfinite", "silent"}:
            level, message = 2, "unusable audio: " + ", ".join(sorted(flags & {"nonfinite", "silent"}))
        values = {k: v for k, v in st.items()}
        values["sources"] = len(heatmap.peaks)
        return {"level": level, "message": message, "values": values, "hardware_id": st.get("device", "")}

    def messages(self, heatmap) -> list:
        """Every topic's message for one update, serialized; diagnostics once per period."""
        ns = int(round(heatmap.stamp * 1e9))  # once: header and recording time must agree to the ns
        header = self._header(ns)
        out = [
            Message(self.topics["heatmap"], IMAGE, self.serialize(self.image(heatmap, header), IMAGE), ns),
            Message(self.topics["sources"], POSE_ARRAY, self.serialize(self.pose_array(heatmap, header), POSE_ARRAY), ns),
            Message(self.topics["markers"], MARKER_ARRAY,
                    self.serialize(self.marker_array(heatmap, header), MARKER_ARRAY), ns),
        ]
        if self.tracks:
            out.append(Message(self.topics["tracks"], TRACKS, self.serialize(self.detections(heatmap, header), TRACKS),
                               ns))
        if self._last_diag is None or heatmap.stamp - self._last_diag >= DIAGNOSTICS_PERIOD_S:
            self._last_diag = heatmap.stamp
            msg = self.diagnostics(header, **self.diagnostics_of(heatmap))
            out.append(Message(self.topics["diagnostics"], DIAGNOSTIC_ARRAY, self.serialize(msg, DIAGNOSTIC_ARRAY), ns))
        pic = heatmap.picture
        if self.engine and pic is not None and (pic.engine is not None or pic.mask is not None):
            fns = int(round(heatmap.frame.stamp * 1e9)) if heatmap.frame is not None else ns
            cam_header = self._header(fns, self.camera_frame_id)
            if pic.engine is not None:
                out.append(Message(self.topics["engine_heatmap"], IMAGE, self.serialize(
                    self.raw_image(pic.engine.astype(np.float32), cam_header, "32FC1"), IMAGE), fns))
            if pic.mask is not None:
                out.append(Message(self.topics["segmentation"], IMAGE, self.serialize(
                    self.raw_image(pic.mask.astype(np.uint8), cam_header, "mono8"), IMAGE), fns))
        if heatmap.overlay is not None and self.camera is not None:
            fns = int(round(heatmap.frame.stamp * 1e9)) if heatmap.frame is not None else ns
            cam_header = self._header(fns, self.camera_frame_id)
            out.append(Message(self.topics["overlay"], IMAGE,
                               self.serialize(self.overlay_image(heatmap.overlay, cam_header), IMAGE), fns))
            if self.camera.model != "equirectangular":
                out.append(Message(self.topics["camera_info"], CAMERA_INFO,
                                   self.serialize(self.camera_info(cam_header), CAMERA_INFO), fns))
        return out

    def static_transform(self, stamp_ns: int):
        """``/tf_static``: the array frame -> the camera optical frame, from the extrinsics (a
        tf2_msgs/TFMessage with one transform), or None without a camera. Extrinsics map array
        directions into the optical frame (d_cam = R d_array, t = the array origin in the optical
        frame); TF wants the child's pose in the parent: rotation R^T, translation -R^T t."""
        if self.extrinsics is None or self.camera is None:
            return None
        from scipy.spatial.transform import Rotation

        T = self.T
        R = np.asarray(self.extrinsics.rotation, dtype=np.float64)
        origin = -R.T @ np.asarray(self.extrinsics.translation, dtype=np.float64)
        qx, qy, qz, qw = Rotation.from_matrix(R.T).as_quat()
        tf = T["geometry_msgs/msg/TransformStamped"](
            header=self._header(stamp_ns), child_frame_id=self.camera_frame_id,
            transform=T["geometry_msgs/msg/Transform"](
                translation=T["geometry_msgs/msg/Vector3"](x=float(origin[0]), y=float(origin[1]), z=float(origin[2])),
                rotation=T["geometry_msgs/msg/Quaternion"](x=float(qx), y=float(qy), z=float(qz), w=float(qw))))
        msg = T[TF_MESSAGE](transforms=[tf])
        return Message(TF_STATIC, TF_MESSAGE, self.serialize(msg, TF_MESSAGE), stamp_ns)

    def source_audio(self, heatmap) -> list:
        """Each track's audio of this update (separate/): ``audio/track_<id>``, AudioDataStamped,
        S16LE mono at the array's rate, stamped with the capture time of its first sample; and
        ``audio/info`` (AudioInfo) when a track's audio first appears."""
        audio = heatmap.source_audio or {}
        if not audio:
            return []
        ns = int(round(heatmap.source_audio_stamp * 1e9))
        header = self._header(ns)
        T, out = self.T, []
        for tid, x in audio.items():
            if tid not in self._audio_ids:
                self._audio_ids.add(tid)
                info = T[AUDIO_INFO](channels=1, sample_rate=int(self.sample_rate), sample_format="S16LE", bitrate=0,
                                     coding_format="wave")
                out.append(Message(f"{self.topics['audio']}/info", AUDIO_INFO, self.serialize(info, AUDIO_INFO), ns))
            pcm = np.clip(np.round(np.asarray(x, np.float64) * 32767.0), -32768, 32767).astype("<i2")
            msg = T[AUDIO](header=header, audio=T["audio_common_msgs/msg/AudioData"](data=pcm.view(np.uint8)))
            out.append(Message(f"{self.topics['audio']}/track_{tid}", AUDIO, self.serialize(msg, AUDIO), ns))
        return out

    def topic_types(self) -> dict:
        """kind ("heatmap", ...) -> (ROS topic name, message type), for every topic produced."""
        types_ = {"heatmap": IMAGE, "sources": POSE_ARRAY, "markers": MARKER_ARRAY, "diagnostics": DIAGNOSTIC_ARRAY}
        if self.tracks:
            types_["tracks"] = TRACKS
        if self.engine:
            types_["engine_heatmap"] = IMAGE
            types_["segmentation"] = IMAGE
        if self.camera is not None:
            types_["overlay"] = IMAGE
            if self.camera.model != "equirectangular":
                types_["camera_info"] = CAMERA_INFO
        return {kind: (self.topics[kind], t) for kind, t in types_.items()}

    def serialize(self, msg, typename) -> bytes:
        return bytes(self.ts.serialize_cdr(msg, typename))

    def msgdef(self, typename) -> str:
        """The ros2msg schema text (with its dependencies) for MCAP and Foxglove."""
        return self.ts.generate_msgdef(typename, ros_version=2)[0]

    def type_hash(self, typename) -> str:
        """RIHS01 hash (Iron and later; Humble has none)."""
        return self.ts.hash_rihs01(typename)
