"""Frame sources: still images, videos (OpenCV/FFmpeg on CPU), frame folders, pair lists."""
