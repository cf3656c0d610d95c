"""Keypoints and matching: OpenCV SIFT, BF kNN ratio test, RANSAC homography (CPU)."""
