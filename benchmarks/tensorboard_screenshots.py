"""TensorBoard on a real run, seen in a real browser: the screenshots of the README's TensorBoard section.

  python -m benchmarks.tensorboard_screenshots [--workdir=runs/tb_screenshots] [--output=docs]

Trains configs/cpu.py shrunk to 300 steps (so the curves have shape; skipped when the workdir already holds a
finished run), serves its logs with `tensorboard` on a free loopback port (`serve`, which tests/test_tensorboard.py
uses too), and saves headless Chromium's screenshots of the scalars and images dashboards as
OUTPUT/tensorboard_scalars.png and OUTPUT/tensorboard_images.png. Needs Debian's `chromium` (`apt-get install
chromium`); look at the PNGs before committing them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from benchmarks.common import free_port
from launch import Parser

RUN_ARGS = ("--config=configs/cpu.py", "--config.num_train_steps=300", "--config.steps_per_loop=10",
            "--config.eval_every_steps=50")
# Dashboard URL fragments (TensorBoard 2.21): the scalars view filtered to the main curves (one expanded group) and
# smoothed less than its default, so the points show.
# {name: (fragment, window size)}.
DASHBOARDS = {
    "scalars": ("#scalars&_smoothingWeight=0.3&tagFilter=" + urllib.parse.quote("^(accuracy|loss|learning_rate)$"),
                "1440,500"),
    "images": ("#images", "1440,1060"),
}


@contextlib.contextmanager
def serve(logdir: Path, timeout: float = 120) -> Iterator[tuple[str, subprocess.Popen]]:
    """Runs `tensorboard --logdir LOGDIR` on a free 127.0.0.1 port, in a session of its own, and yields (its base URL,
    its process) once it answers, with every event file loaded (it loads once, before serving). Stops the whole
    session on exit: SIGTERM, then SIGKILL after 10 s."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("tensorboard")), f"--logdir={logdir}", "--host=127.0.0.1",
               f"--port={port}", "--load_fast=false", "--reload_interval=0", "--reload_task=blocking"]
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile(mode="w+") as log:  # Not a pipe: nobody reads it while the server runs.
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"tensorboard exited {proc.returncode}: {log.read()[-2000:]}")
                try:
                    get(f"{url}/data/runs", timeout=2)
                    break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"tensorboard did not answer on {url} within {timeout:.0f} s") from None
                    time.sleep(0.2)
            yield url, proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def get(url: str, body: dict | None = None, timeout: float = 30):
    """GET (or POST `body` as JSON to) a TensorBoard data URL; returns the decoded JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def screenshot(url: str, path: Path, window: str, budget_ms: int = 15000) -> Path:
    """Headless Chromium's screenshot of `url`, after `budget_ms` of virtual time (the dashboard's data loads
    and its charts draw in that time)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("tensorboard_screenshots: error: no chromium on PATH; install it with "
                         "`sudo apt-get install chromium`")
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={window}", f"--virtual-time-budget={budget_ms}", f"--screenshot={path}", url],
                   check=True, capture_output=True, timeout=180)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="tensorboard_screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/tb_screenshots", help="The run to show (trained when missing).")
    parser.add_argument("--output", default="docs", help="Where the PNGs go.")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    if not (workdir / "results.json").is_file():
        subprocess.run([sys.executable, "-m", "fmnist.main", *RUN_ARGS, f"--workdir={workdir}"], check=True)
    with serve(workdir / "tensorboard") as (url, _):
        for name, (fragment, window) in DASHBOARDS.items():
            print(screenshot(f"{url}/{fragment}", Path(args.output) / f"tensorboard_{name}.png", window))
    return 0


if __name__ == "__main__":
    sys.exit(main())
