"""Renders camera test images from a known camera model: a chessboard seen by a distorted
camera at a known pose, pixel by pixel (each pixel's ray through OpenCV's undistortion, met
with the board plane), so calibration tests have a ground truth nobody tuned."""
from __future__ import annotations

import cv2
import numpy as np


def chessboard_texture(cols=10, rows=7, px=40, margin=1):
    """A chessboard of cols x rows squares (px pixels each) with a white margin of squares."""
    tex = np.full(((rows + 2 * margin) * px, (cols + 2 * margin) * px), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            if (r + c) % 2 == 0:
                y, x = (r + margin) * px, (c + margin) * px
                tex[y:y + px, x:x + px] = 0
    return tex


def render_board(K, D, size, rvec, tvec, square=0.025, cols=10, rows=7, px=40, fisheye=False, background=128,
                 texture=None):
    """Grey image (h, w) of the board whose first inner corner is at the board origin; the
    board's x runs along its columns, y along its rows (OpenCV's object-point convention).
    ``texture`` replaces the chessboard: a grey image in which board point (x, y) is at texture
    pixel ((x / square + 2) * px - 0.5, (y / square + 2) * px - 0.5)."""
    w, h = size
    tex = chessboard_texture(cols, rows, px) if texture is None else texture
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    pts = np.stack([u.ravel(), v.ravel()], 1).reshape(-1, 1, 2)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-10)
    if fisheye:
        xy = cv2.fisheye.undistortPoints(pts, K, D, None, np.eye(3), np.eye(3), crit).reshape(-1, 2)
    else:
        xy = cv2.undistortPoints(pts, K, D, None, np.eye(3), np.eye(3), crit).reshape(-1, 2)
    rays = np.concatenate([xy, np.ones((len(xy), 1))], 1)
    R, _ = cv2.Rodrigues(np.asarray(rvec, float))
    t = np.asarray(tvec, float).ravel()
    # ray s * r meets the board plane {R p + t : p_z = 0}: n . (s r - t) = 0 with n = R e_z
    n = R[:, 2]
    s = (n @ t) / (rays @ n)
    p = (s[:, None] * rays - t) @ R  # board coordinates
    # first inner corner sits one square plus one margin in: texture pixel = (p / square + 2) * px - 0.5
    mx = (p[:, 0] / square + 2) * px - 0.5
    my = (p[:, 1] / square + 2) * px - 0.5
    bad = (s <= 0)
    mx[bad] = -10
    my[bad] = -10
    img = cv2.remap(tex, mx.reshape(h, w).astype(np.float32), my.reshape(h, w).astype(np.float32),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                    borderValue=background)
    return img


def board_poses(n, seed=0, distance=0.45):
    """n varied board poses (rvec, tvec) in front of the camera, board centred on the axis."""
    rng = np.random.default_rng(seed)
    out = []
    centre = np.array([4.5 * 0.025, 3.0 * 0.025, 0.0])
    for _ in range(n):
        ang = np.deg2rad(rng.uniform(-35, 35, 3)) * np.array([1, 1, 0.3])
        R, _ = cv2.Rodrigues(ang)
        shift = np.array([rng.uniform(-0.06, 0.06), rng.uniform(-0.05, 0.05), distance * rng.uniform(0.8, 1.2)])
        t = shift - R @ centre
        out.append((ang, t))
    return out
