"""Data: the Human3.6M 17-joint skeleton, file readers, cameras and windowed datasets.

Human3.6M through VideoPose3D's files: :mod:`hourglass_tokenizer.data.h36m`; BVH motion capture:
:mod:`hourglass_tokenizer.data.bvh`; MPI-INF-3DHP: :mod:`hourglass_tokenizer.data.mpi_inf_3dhp`; 2D
detectors' output (MMPose, OpenPose, AlphaPose, VideoPose3D): :mod:`hourglass_tokenizer.data.keypoints`.
"""
from .cameras import (PinholeCamera, add_2d_noise, camera_to_world, image_coordinates, look_at_camera,
                      normalize_screen_coordinates, project_clips, project_to_2d, quaternion_to_matrix,
                      random_virtual_cameras, world_to_camera)
from .keypoints import Keypoints2D, network_input, read_keypoints
from .readers import (CMU_ACKNOWLEDGEMENT, CMUMocap, DataError, DataFileNotFoundError,
                      DataLayoutError, align_2d_to_3d, load_cmu, load_h36m_2d, load_h36m_3d, split_clips)
from .skeleton import (FLIP_PERMUTATION, H36M_32_TO_17, JOINT_NAMES, JOINTS_LEFT, JOINTS_RIGHT, NUM_JOINTS,
                       PARENTS, ROOT_JOINT, flip_pose)
from .windows import PoseWindowDataset, centred_start, edge_padded_window

__all__ = [
    "PinholeCamera", "add_2d_noise", "camera_to_world", "image_coordinates", "look_at_camera",
    "normalize_screen_coordinates", "project_clips", "project_to_2d", "quaternion_to_matrix",
    "random_virtual_cameras", "world_to_camera",
    "CMU_ACKNOWLEDGEMENT", "CMUMocap", "DataError", "DataFileNotFoundError", "DataLayoutError",
    "align_2d_to_3d", "load_cmu", "load_h36m_2d", "load_h36m_3d", "split_clips",
    "FLIP_PERMUTATION", "H36M_32_TO_17", "JOINT_NAMES", "JOINTS_LEFT", "JOINTS_RIGHT", "NUM_JOINTS", "PARENTS",
    "ROOT_JOINT", "flip_pose",
    "PoseWindowDataset", "centred_start", "edge_padded_window",
    "Keypoints2D", "read_keypoints", "network_input",
]
