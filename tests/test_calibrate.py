"""Extrinsics calibration: a known rotation back from noisy pairs with outliers."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from helpers import ROOT, run_cli

from avstream.calibrate.extrinsics import fit_rotation
from avstream.geometry.camera import load_camera, load_extrinsics
from avstream.geometry.grids import to_azel, to_unit

pytest.importorskip("cv2")


def _rotation_angle_deg(R1, R2):
    return float(np.rad2deg(np.arccos(np.clip((np.trace(R1.T @ R2) - 1) / 2, -1, 1))))


def _pairs(R, n, noise_deg, outlier_share, seed):
    """Sound directions in front of the camera, their pixels through R (with noise), and a
    share of pairs whose pixel belongs to something else."""
    rng = np.random.default_rng(seed)
    cam = load_camera(ROOT / "calibration/example_pinhole.yaml")
    rows = []
    while len(rows) < n:
        a = to_unit(rng.uniform(-25, 25), rng.uniform(-18, 18))
        c = R @ a
        if c[2] <= 0:
            continue
        noisy = Rotation.from_rotvec(np.deg2rad(noise_deg) * rng.normal(size=3) / np.sqrt(3)).apply(c)
        u, v = cam.project(noisy[None])
        if not (0 <= u[0] < cam.width and 0 <= v[0] < cam.height):
            continue
        if rng.random() < outlier_share:
            u, v = rng.uniform(0, cam.width, 1), rng.uniform(0, cam.height, 1)
        az, el = to_azel(a)
        rows.append((float(az), float(el), float(u[0]), float(v[0])))
    return cam, np.array(rows)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rotation_recovered_within_one_degree(seed):
    base = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])  # camera looking along array +x
    R = Rotation.from_euler("xyz", np.random.default_rng(seed).uniform(-8, 8, 3), degrees=True).as_matrix() @ base
    cam, rows = _pairs(R, 40, 0.5, 0.2, seed)
    a = to_unit(rows[:, 0], rows[:, 1])
    c = cam.unproject(rows[:, 2], rows[:, 3])
    fit = fit_rotation(a, c)
    assert _rotation_angle_deg(fit.rotation, R) < 1.0
    assert fit.residual_deg < 1.5 and 0.6 * len(rows) <= fit.inliers.sum() <= 0.95 * len(rows)


def test_cli_writes_extrinsics(tmp_path):
    base = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    R = Rotation.from_euler("z", 5, degrees=True).as_matrix() @ base
    _, rows = _pairs(R, 30, 0.5, 0.2, 9)
    csv = tmp_path / "pairs.csv"
    csv.write_text("azimuth_deg,elevation_deg,u,v\n" + "\n".join(",".join(f"{x:.6f}" for x in r) for r in rows))
    out = tmp_path / "ext.yaml"
    p = run_cli("calibrate", "extrinsics", "--pairs", csv, "--camera", ROOT / "calibration/example_pinhole.yaml",
                "--out", out)
    assert p.returncode == 0, p.stderr
    assert "rejected as outliers" in p.stderr and "residual" in out.read_text()
    assert _rotation_angle_deg(load_extrinsics(out).rotation, R) < 1.0


@pytest.mark.parametrize("text,needle", [
    ("az,el,u,v\n1,2,3,4\n", "first line must be exactly azimuth_deg,elevation_deg,u,v"),
    ("azimuth_deg,elevation_deg,u,v\n1,2,x,4\n", "line 2: not 4 numbers"),
    ("azimuth_deg,elevation_deg,u,v\n1,2,3,4\n5,6,7,8\n", "at least 3"),
])
def test_bad_pairs_files(tmp_path, text, needle):
    csv = tmp_path / "pairs.csv"
    csv.write_text(text)
    p = run_cli("calibrate", "extrinsics", "--pairs", csv, "--camera", ROOT / "calibration/example_pinhole.yaml",
                "--out", tmp_path / "e.yaml")
    assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr, p.stderr
