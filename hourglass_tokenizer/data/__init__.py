"""Data: the Human3.6M 17-joint skeleton, file readers, cameras and windowed datasets.

Human3.6M through VideoPose3D's files: :mod:`hourglass_tokenizer.data.h36m`; BVH motion capture:
:mod:`hourglass_tokenizer.data.bvh`.
"""
from .cameras import (PinholeCamera, add_2d_noise, camera_to_world, image_coordinates, look_at_camera,
                      normalize_screen_coordinates, project_clips, project_to_2d, quaternion_to_matrix,
                      random_virtual_cameras, world_to_camera)
from .readers import (CMU_ACKNOWLEDGEMENT, DEFAULT_CMU_PATH, CMUMocap, DataError, DataFileNotFoundError,
                      DataLayoutError, align_2d_to_3d, load_cmu, load_h36m_2d, load_h36m_3d, split_clips)
from .skeleton import (FLIP_PERMUTATION, H36M_32_TO_17, JOINT_NAMES, JOINTS_LEFT, JOINTS_RIGHT, NUM_JOINTS,
                       PARENTS, ROOT_JOINT, flip_pose)
from .windows import PoseWindowDataset, centred_start, edge_padded_window

__all__ = [
    "PinholeCamera", "add_2d_noise", "camera_to_world", "image_coordinates", "look_at_camera",
    "normalize_screen_coordinates", "project_clips", "project_to_2d", "quaternion_to_matrix",
    "random_virtual_cameras", "world_to_camera",
    "CMU_ACKNOWLEDGEMENT", "DEFAULT_CMU_PATH", "CMUMocap", "DataError", "DataFileNotFoundError", "DataLayoutError",
    "align_2d_to_3d", "load_cmu", "load_h36m_2d", "load_h36m_3d", "split_clips",
    "FLIP_PERMUTATION", "H36M_32_TO_17", "JOINT_NAMES", "JOINTS_LEFT", "JOINTS_RIGHT", "NUM_JOINTS", "PARENTS",
    "ROOT_JOINT", "flip_pose",
    "PoseWindowDataset", "centred_start", "edge_padded_window",
]
