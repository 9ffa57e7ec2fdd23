"""Camera geometry: world to camera, pinhole projection, VideoPose3D screen normalisation, and
seeded virtual cameras that turn 3D motion capture into 2D inputs.

Conventions: world coordinates are in metres with Y up (as in the shared CMU file). Camera
coordinates follow OpenCV: x right, y down, z forward (depth). A camera is given by a rotation
``R`` (3, 3) that maps world directions to camera axes (rows are the camera axes in world
coordinates) and its centre ``t`` (3,) in world coordinates, so ``X_cam = R (X_world - t)``.
VideoPose3D stores ``R`` as a quaternion of the inverse rotation; :func:`world_to_camera` accepts
that form as well.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

#: Human3.6M-like defaults for virtual cameras.
DEFAULT_FOCAL_PX = 1145.0
DEFAULT_IMAGE_SIZE = (1000, 1000)  # (width, height)
DEFAULT_DISTANCE_M = 5.0


def _out_dtype(X) -> np.dtype:
    # Keep float64 inputs in float64 (exact round trips); everything else becomes float32.
    return np.float64 if np.asarray(X).dtype == np.float64 else np.float32


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrix ``(3, 3)`` of a unit quaternion ``(w, x, y, z)``: ``M @ v`` rotates ``v``."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def _world_to_camera_matrix(R: np.ndarray) -> np.ndarray:
    R = np.asarray(R, dtype=np.float64)
    if R.shape == (4,):
        # VideoPose3D's quaternion is the camera-to-world orientation: invert it (transpose).
        return quaternion_to_matrix(R).T
    if R.shape != (3, 3):
        raise ValueError(f"R must be a (3, 3) matrix or a (4,) quaternion, got shape {R.shape}")
    return R


def world_to_camera(X: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Map world points ``(..., 3)`` to camera coordinates: ``R (X - t)``.

    ``R`` is the (3, 3) world-to-camera rotation, or a VideoPose3D orientation quaternion
    ``(w, x, y, z)`` (camera-to-world, as in ``h36m_dataset.py``); ``t`` is the camera centre in
    world coordinates (same units as ``X``).
    """
    M = _world_to_camera_matrix(R)
    out = (np.asarray(X, dtype=np.float64) - np.asarray(t, dtype=np.float64)) @ M.T
    return out.astype(_out_dtype(X))


def camera_to_world(X: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Inverse of :func:`world_to_camera`: ``R^T X + t``."""
    M = _world_to_camera_matrix(R)
    out = np.asarray(X, dtype=np.float64) @ M + np.asarray(t, dtype=np.float64)
    return out.astype(_out_dtype(X))


def project_to_2d(X_cam: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Pinhole projection of camera-frame points ``(..., 3)`` to pixels ``(..., 2)`` (no distortion)."""
    dtype = _out_dtype(X_cam)
    X_cam = np.asarray(X_cam, dtype=np.float64)
    z = X_cam[..., 2:3]
    if np.any(z <= 0):
        raise ValueError("points behind the camera (z <= 0) cannot be projected")
    uv = X_cam[..., :2] / z * np.array([fx, fy]) + np.array([cx, cy])
    return uv.astype(dtype)


def normalize_screen_coordinates(X: np.ndarray, w: int, h: int) -> np.ndarray:
    """Pixels to VideoPose3D's normalised screen coordinates: ``X / w * 2 - [1, h / w]``.

    x maps [0, w] to [-1, 1]; y is scaled by the same factor (aspect ratio kept), so the image
    centre maps to 0 and mirroring about the centre is ``x -> -x``.
    """
    X = np.asarray(X)
    if X.shape[-1] != 2:
        raise ValueError(f"expected (..., 2) pixel coordinates, got shape {X.shape}")
    return (X / w * 2 - np.array([1.0, h / w])).astype(_out_dtype(X))


def image_coordinates(X: np.ndarray, w: int, h: int) -> np.ndarray:
    """Inverse of :func:`normalize_screen_coordinates`: normalised coordinates back to pixels."""
    X = np.asarray(X)
    if X.shape[-1] != 2:
        raise ValueError(f"expected (..., 2) normalised coordinates, got shape {X.shape}")
    return ((X + np.array([1.0, h / w])) * w / 2).astype(_out_dtype(X))


@dataclass(frozen=True)
class PinholeCamera:
    """A static pinhole camera: world-to-camera rotation ``R`` (3, 3), centre ``t`` (3,) in metres,
    focal lengths and principal point in pixels, image size in pixels."""

    R: np.ndarray
    t: np.ndarray
    fx: float = DEFAULT_FOCAL_PX
    fy: float = DEFAULT_FOCAL_PX
    cx: float = DEFAULT_IMAGE_SIZE[0] / 2
    cy: float = DEFAULT_IMAGE_SIZE[1] / 2
    width: int = DEFAULT_IMAGE_SIZE[0]
    height: int = DEFAULT_IMAGE_SIZE[1]

    def to_camera(self, X_world: np.ndarray) -> np.ndarray:
        """World points ``(..., 3)`` to camera coordinates."""
        return world_to_camera(X_world, self.R, self.t)

    def project(self, X_world: np.ndarray) -> np.ndarray:
        """World points ``(..., 3)`` to pixels ``(..., 2)``."""
        return project_to_2d(self.to_camera(X_world), self.fx, self.fy, self.cx, self.cy)

    def project_normalized(self, X_world: np.ndarray) -> np.ndarray:
        """World points to normalised screen coordinates (the network input)."""
        return normalize_screen_coordinates(self.project(X_world), self.width, self.height)


def look_at_camera(target: Sequence[float], azimuth_deg: float, elevation_deg: float,
                   distance: float = DEFAULT_DISTANCE_M, *, up: Sequence[float] = (0.0, 1.0, 0.0),
                   **intrinsics) -> PinholeCamera:
    """A camera ``distance`` metres from ``target`` looking at it.

    The azimuth turns the camera about the world Y (up) axis (0 deg: camera on the +Z side looking
    towards -Z); positive elevation raises the camera so that it looks down. ``intrinsics`` go to
    :class:`PinholeCamera` (``fx, fy, cx, cy, width, height``).
    """
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    target = np.asarray(target, dtype=np.float64)
    offset = distance * np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
    centre = target + offset
    forward = -offset / np.linalg.norm(offset)
    # OpenCV axes: right x down = forward, so right = forward x up and down = forward x right.
    right = np.cross(forward, np.asarray(up, dtype=np.float64))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    return PinholeCamera(R=R, t=centre, **intrinsics)


def random_virtual_cameras(positions: np.ndarray, num_cameras: int, rng: Union[np.random.Generator, int],
                           *, distance: float = DEFAULT_DISTANCE_M, distance_jitter: float = 0.5,
                           elevation_range_deg: tuple[float, float] = (0.0, 20.0),
                           camera_height: float = 1.0, focal_jitter: float = 0.05,
                           root_joint: int = 0) -> list[PinholeCamera]:
    """Human3.6M-like static cameras around a clip of world positions ``(N, J, 3)`` (metres, Y up).

    Each camera looks at the clip's mean root position (at ``camera_height`` above the floor, the
    floor taken as the lowest joint), from a uniformly random azimuth, an elevation drawn from
    ``elevation_range_deg``, and a distance of ``distance`` (+- ``distance_jitter``) plus the
    horizontal radius of the root's path, so the subject is never nearer than about ``distance``.
    Focal length is 1145 px (+- ``focal_jitter`` relative), image 1000 x 1000, centred principal
    point. ``rng`` is a numpy Generator or a seed, so the cameras are reproducible.
    """
    rng = np.random.default_rng(rng)
    positions = np.asarray(positions, dtype=np.float64)
    root = positions[:, root_joint]
    centre = root.mean(axis=0)
    floor = positions[..., 1].min()
    target = np.array([centre[0], floor + camera_height, centre[2]])
    radius = float(np.max(np.linalg.norm((root - centre)[:, [0, 2]], axis=-1))) if len(root) else 0.0
    cameras = []
    for _ in range(num_cameras):
        az = rng.uniform(0.0, 360.0)
        el = rng.uniform(*elevation_range_deg)
        dist = distance + radius + rng.uniform(-distance_jitter, distance_jitter)
        f = DEFAULT_FOCAL_PX * (1.0 + rng.uniform(-focal_jitter, focal_jitter))
        cameras.append(look_at_camera(target, az, el, dist, fx=f, fy=f))
    return cameras


def add_2d_noise(keypoints_px: np.ndarray, sigma_px: float, rng: Union[np.random.Generator, int]) -> np.ndarray:
    """Add i.i.d. Gaussian noise of ``sigma_px`` pixels to 2D keypoints (a crude detector model)."""
    keypoints_px = np.asarray(keypoints_px, dtype=np.float32)
    if sigma_px <= 0:
        return keypoints_px.copy()
    rng = np.random.default_rng(rng)
    return (keypoints_px + rng.normal(0.0, sigma_px, size=keypoints_px.shape)).astype(np.float32)


def project_clips(clips: Sequence[np.ndarray], num_cameras: int = 4, seed: int = 0, *,
                  noise_px: float = 0.0, root_joint: int = 0,
                  **camera_kwargs) -> list[tuple[np.ndarray, np.ndarray]]:
    """Make ``(2D input, 3D target)`` sequences from world-frame clips through virtual cameras.

    For every clip ``(N, J, 3)`` (metres) and each of ``num_cameras`` cameras from
    :func:`random_virtual_cameras`, returns the normalised 2D keypoints ``(N, J, 2)`` (optionally
    with Gaussian noise of ``noise_px`` pixels before normalisation) and the root-relative 3D pose
    in camera coordinates ``(N, J, 3)`` in metres (root joint at 0). Seeded: the same ``seed``
    gives the same cameras and noise, clip by clip, independent of the other clips.
    """
    sequences = []
    for i, clip in enumerate(clips):
        rng = np.random.default_rng([seed, i])
        for cam in random_virtual_cameras(clip, num_cameras, rng, root_joint=root_joint, **camera_kwargs):
            px = add_2d_noise(cam.project(clip), noise_px, rng)
            kp2d = normalize_screen_coordinates(px, cam.width, cam.height)
            cam3d = cam.to_camera(clip).astype(np.float32)
            sequences.append((kp2d, cam3d - cam3d[:, root_joint:root_joint + 1]))
    return sequences
