"""Camera intrinsics from views of a chessboard or a ChArUco board (OpenCV), written in the ROS
camera_calibration_parsers YAML format with the reprojection error.

Views come from a folder of images, a video file or a camera (every ``step``-th frame). A view
without a detectable board is skipped and counted; too few views left is an error. Models as
ROS ``camera_calibration`` names them (docs FACTS 7.1): ``plumb_bob`` (k1, k2, p1, p2, k3),
``rational_polynomial`` (8 terms) and ``equidistant`` (OpenCV fisheye, k1..k4).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, InputError
from ..geometry.camera import Camera

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm"}


@dataclass
class CalibrationResult:
    camera: Camera
    rms_px: float  # RMS reprojection error over all used corners
    used: int  # views with the board found
    skipped: int  # views without it
    skipped_names: list


def parse_board(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not m or int(m.group(1)) < 2 or int(m.group(2)) < 2:
        raise ConfigError(f"--board '{text}': expected COLSxROWS, e.g. 9x6 (inner corners of a chessboard, "
                          "squares of a ChArUco board)")
    return int(m.group(1)), int(m.group(2))


def iter_views(images=None, video=None, device=None, step=10, max_views=60):
    """(name, BGR image) pairs from exactly one of a folder, a video file or a camera."""
    import cv2

    given = [x is not None for x in (images, video, device)]
    if sum(given) != 1:
        raise ConfigError("calibrate camera: give exactly one of --images DIR, --video FILE, --device N")
    if images is not None:
        folder = Path(images)
        if not folder.is_dir():
            raise ConfigError(f"--images {folder}: not a folder")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(f"--images {folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        for p in files:
            img = cv2.imread(str(p))
            yield p.name, img  # None (unreadable) is skipped and counted like a view without a board
        return
    src = video if video is not None else device
    if video is not None and not Path(video).is_file():
        raise ConfigError(f"--video {video}: no such file")
    cap = cv2.VideoCapture(int(src) if str(src).isdigit() else str(src))
    if not cap.isOpened():
        raise InputError(f"{'--video' if video is not None else '--device'} {src}: cannot open")
    try:
        k = n = 0
        while n < max_views:
            ok, img = cap.read()
            if not ok:
                break
            if k % step == 0:
                n += 1
                yield f"frame {k}", img
            k += 1
    finally:
        cap.release()


class _Chessboard:
    def __init__(self, cols, rows, square):
        self.size = (cols, rows)
        obj = np.zeros((rows * cols, 3), np.float32)
        obj[:, :2] = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * square
        self.obj = obj

    def detect(self, gray):
        import cv2

        found, corners = cv2.findChessboardCorners(
            gray, self.size, flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE)
        if not found:
            return None
        crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)
        corners = cv2.cornerSubPix(gray, corners, (5, 5), (-1, -1), crit)
        return self.obj, corners.reshape(-1, 2).astype(np.float32)


class _Charuco:
    def __init__(self, cols, rows, square, marker, dictionary):
        import cv2

        if not hasattr(cv2, "aruco") or not hasattr(cv2.aruco, "CharucoDetector"):
            raise ConfigError("--pattern charuco: this OpenCV has no ChArUco support (needs OpenCV >= 4.7)")
        try:
            d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary))
        except AttributeError:
            raise ConfigError(f"--dictionary {dictionary}: not an OpenCV ArUco dictionary (e.g. DICT_4X4_50)") \
                from None
        self.board = cv2.aruco.CharucoBoard((cols, rows), square, marker or square * 0.7, d)
        self.detector = cv2.aruco.CharucoDetector(self.board)

    def detect(self, gray):
        corners, ids, _, _ = self.detector.detectBoard(gray)
        if ids is None or len(ids) < 6:
            return None
        obj, img = self.board.matchImagePoints(corners, ids)
        return obj.reshape(-1, 3).astype(np.float32), img.reshape(-1, 2).astype(np.float32)


def calibrate_camera(views, board=(9, 6), square=0.025, pattern="chessboard", model="plumb_bob", marker=None,
                     dictionary="DICT_4X4_50", min_views=5, name="camera") -> CalibrationResult:
    """Intrinsics from ``views`` (iterable of (name, BGR image)).

    Raises
    ------
    InputError
        Fewer than ``min_views`` views show the board, or the images differ in size.
    """
    import cv2

    if model not in ("plumb_bob", "rational_polynomial", "equidistant"):
        raise ConfigError(f"--model {model}: one of plumb_bob, rational_polynomial, equidistant")
    if square <= 0:
        raise ConfigError(f"--square {square}: must be a positive length (metres)")
    det = _Chessboard(*board, square) if pattern == "chessboard" else _Charuco(*board, square, marker, dictionary)
    obj_pts, img_pts, skipped, size = [], [], [], None
    for name_, img in views:
        if img is None:
            skipped.append(f"{name_} (unreadable)")
            continue
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
        if size is None:
            size = gray.shape[::-1]
        elif gray.shape[::-1] != size:
            raise InputError(f"{name_}: {gray.shape[1]}x{gray.shape[0]} differs from the first view's "
                             f"{size[0]}x{size[1]}: calibrate one camera mode at a time")
        got = det.detect(gray)
        if got is None:
            skipped.append(name_)
            continue
        obj_pts.append(got[0])
        img_pts.append(got[1])
    if len(obj_pts) < min_views:
        raise InputError(f"the board ({pattern} {board[0]}x{board[1]}) was found in {len(obj_pts)} of "
                         f"{len(obj_pts) + len(skipped)} views; at least {min_views} are needed "
                         f"(check --board: inner corners for a chessboard, e.g. 9x6 for 10x7 squares)")
    if model == "equidistant":
        K, D = np.eye(3), np.zeros((4, 1))
        fe = cv2.fisheye if hasattr(cv2.fisheye, "CALIB_FIX_SKEW") else cv2  # OpenCV 4 | 5 names
        flags = fe.CALIB_RECOMPUTE_EXTRINSIC | fe.CALIB_FIX_SKEW
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)
        # (1, N, 3) / (1, N, 2) float64 per view: the layout OpenCV 4 and 5 both accept
        rms, K, D, _, _ = cv2.fisheye.calibrate([o.reshape(1, -1, 3).astype(np.float64) for o in obj_pts],
                                                [i.reshape(1, -1, 2).astype(np.float64) for i in img_pts],
                                                size, K, D, flags=flags, criteria=crit)
    else:
        flags = cv2.CALIB_RATIONAL_MODEL if model == "rational_polynomial" else 0
        rms, K, D, _, _ = cv2.calibrateCamera(obj_pts, img_pts, size, None, None, flags=flags)
    cam = Camera(int(size[0]), int(size[1]), model, np.asarray(K, float), np.asarray(D, float).ravel(), name)
    return CalibrationResult(cam, float(rms), len(obj_pts), len(skipped), skipped)
