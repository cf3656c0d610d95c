"""When the driver of a mining run dies (SIGKILL), its worker processes and their forkserver
end within seconds instead of mining on into the dataset folder."""

from __future__ import annotations

import sys

from mimic_fast.mining import synthetic
from process_tools import kill_leader_and_wait, kill_session, session_members, start_session, wait_until


def test_workers_end_with_a_killed_driver(tmp_path):
    for k in range(3):  # sources long enough that the workers are busy when the driver dies
        frames, _ = synthetic.camera_path(synthetic.photo("coffee"), 120, (240, 320), seed=k)
        synthetic.write_frames(frames, tmp_path / "in" / f"s{k}")
    driver = start_session([sys.executable, "-m", "mimic_fast.cli", "mine", str(tmp_path / "in"),
                            "--out", str(tmp_path / "ds"), "--workers", "2", "--no-progress"])
    try:
        # the driver, the resource tracker, the forkserver and 2 workers
        assert wait_until(lambda: len(session_members(driver.pid)) >= 5, 60), \
            driver.stderr.read() if driver.poll() is not None else session_members(driver.pid)
        left = kill_leader_and_wait(driver, 5)
        assert not left, f"left running: {left}"
    finally:
        kill_session(driver.pid)
