"""Camera models, calibration files and extrinsics."""
import numpy as np
import pytest

from helpers import ROOT, assert_file_refused

from avstream.geometry.camera import (Camera, Extrinsics, load_camera, load_extrinsics, save_camera,
                                      save_extrinsics)
from avstream.geometry.grids import angular_distance_deg, to_unit

pytest.importorskip("cv2")
CAL = ROOT / "calibration"


def _dirs_in_view(half_fov_deg, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return d[np.rad2deg(np.arccos(np.clip(d[:, 2], -1, 1))) < half_fov_deg]


@pytest.mark.parametrize("name,half_fov", [("example_pinhole.yaml", 30), ("example_fisheye.yaml", 85),
                                           ("example_equirectangular.yaml", 179)])
def test_direction_pixel_direction_round_trip(name, half_fov):
    cam = load_camera(CAL / name)
    d = _dirs_in_view(half_fov)
    u, v = cam.project(d)
    assert np.isfinite(u).all() and np.isfinite(v).all()
    back = cam.unproject(u, v)
    assert angular_distance_deg(back, d).max() < 0.01


def test_pinhole_projection_matches_the_textbook_formula():
    cam = load_camera(CAL / "example_pinhole.yaml")
    d = _dirs_in_view(25, 50)
    x, y = d[:, 0] / d[:, 2], d[:, 1] / d[:, 2]
    k1, k2, p1, p2, k3 = cam.D
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    u, v = cam.project(d)
    np.testing.assert_allclose(u, cam.K[0, 0] * xd + cam.K[0, 2], atol=1e-6)
    np.testing.assert_allclose(v, cam.K[1, 1] * yd + cam.K[1, 2], atol=1e-6)
    u, _ = cam.project(np.array([[0.0, 0.0, -1.0]]))  # behind the camera
    assert np.isnan(u).all()


def test_equirectangular_conventions():
    cam = load_camera(CAL / "example_equirectangular.yaml")
    u, v = cam.project(np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]]))
    np.testing.assert_allclose(u[:2], [960.0, 1440.0])  # forward at the centre, right of it to the right
    np.testing.assert_allclose(v[[0, 2]], [480.0, 0.0])  # up (optical -y) at the top


def test_yaml_round_trip_and_ros_file(tmp_path):
    cam = Camera(640, 480, "plumb_bob", np.array([[500.0, 0, 321], [0, 502.0, 239], [0, 0, 1]]),
                 np.array([-0.1, 0.02, 0.001, -0.001, 0.0]), "cam0")
    save_camera(cam, tmp_path / "c.yaml", reprojection_error=0.21)
    back = load_camera(tmp_path / "c.yaml")
    assert back.model == "plumb_bob" and np.array_equal(back.K, cam.K) and np.array_equal(back.D, cam.D)
    assert "reprojection error: 0.2100 px" in (tmp_path / "c.yaml").read_text()
    # the layout ROS camera_calibration writes (flow-style matrices, binning, roi)
    (tmp_path / "ros.yaml").write_text(
        "image_width: 640\nimage_height: 480\ncamera_name: 08144361026320a0\n"
        "camera_matrix:\n  rows: 3\n  cols: 3\n  data: [485.2, 0, 320.1, 0, 485.9, 240.7, 0, 0, 1]\n"
        "distortion_model: plumb_bob\n"
        "distortion_coefficients:\n  rows: 1\n  cols: 5\n  data: [-0.41, 0.16, 0.001, -0.0003, 0]\n"
        "rectification_matrix:\n  rows: 3\n  cols: 3\n  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]\n"
        "projection_matrix:\n  rows: 3\n  cols: 4\n  data: [400.0, 0, 322.1, 0, 0, 435.2, 243.3, 0, 0, 0, 1, 0]\n"
        "binning_x: 0\nbinning_y: 0\nroi: {x_offset: 0, y_offset: 0, height: 0, width: 0, do_rectify: false}\n")
    ros = load_camera(tmp_path / "ros.yaml")
    assert ros.K[0, 0] == 485.2 and len(ros.D) == 5 and ros.name == "08144361026320a0"


def test_extrinsics_and_parallax(tmp_path):
    ext = load_extrinsics(CAL / "example_extrinsics.yaml")
    # array +x (forward) is the camera's optical axis; array +y (left) is optical -x
    np.testing.assert_allclose(ext.to_camera(np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])),
                               [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-12)
    # a source 1 m ahead of the array, seen by a camera 5 cm above: it looks slightly down
    d = ext.to_camera(to_unit(0.0, 0.0)[None], distance=1.0)[0]
    np.testing.assert_allclose(np.rad2deg(np.arctan2(d[1], d[2])), np.rad2deg(np.arctan(0.05)), atol=1e-9)
    save_extrinsics(ext, tmp_path / "e.yaml", residual_deg=0.4)
    again = load_extrinsics(tmp_path / "e.yaml")
    np.testing.assert_allclose(again.rotation, ext.rotation, atol=1e-12)


@pytest.mark.parametrize("text,needle", [
    ("image_width: 640\n", "key 'image_height'"),
    ("image_width: 640\nimage_height: 480\ndistortion_model: plumb_bob\n", "missing key 'camera_matrix'"),
    ("image_width: 640\nimage_height: 480\ncamera_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0]}\n"
     "distortion_coefficients: {rows: 1, cols: 5, data: [0, 0, 0, 0, 0]}\n", "key 'camera_matrix' must be 3x3"),
    ("image_width: 640\nimage_height: 480\ncamera_matrix: {rows: 3, cols: 3, data: [1, 0, 0, 0, 1, 0, 0, 0, 1]}\n"
     "distortion_model: equidistant\ndistortion_coefficients: {rows: 1, cols: 5, data: [0, 0, 0, 0, 0]}\n",
     "equidistant takes 4 values"),
    ("image_width: 640\nimage_height: 480\ndistortion_model: kannala\n", "key 'distortion_model'"),
    ("image_width: [640\n", "malformed YAML"),
])
def test_bad_camera_files(tmp_path, text, needle):
    assert_file_refused(tmp_path, "cam.yaml", text, load_camera, needle)


@pytest.mark.parametrize("text,needle", [
    ("translation: [0, 0, 0]\n", "missing key 'rotation'"),
    ("rotation: [[1, 0], [0, 1]]\n", "must be 3x3"),
    ("rotation: [[1, 0, 0], [0, 1, 0], [0, 0.5, 1]]\n", "not a rotation"),
    ("rotation: [[1, 0, 0], [0, 1, 0], [0, 0, -1]]\n", "not a rotation"),  # a mirror, det -1
    ("rotation: [[1, 0, 0], [0, 1, 0], [0, 0, 1]]\ntranslation: [0, 0]\n", "key 'translation'"),
])
def test_bad_extrinsics(tmp_path, text, needle):
    assert_file_refused(tmp_path, "ext.yaml", text, load_extrinsics, needle)
