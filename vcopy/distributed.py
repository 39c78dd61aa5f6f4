"""Scale-out on Ray (``pip install "vcopy[ray]"``): videos are decoded and described by Ray Data
``map_batches`` actors (one model load per actor, on a GPU where ``--device`` names one), and their
encodings come back to the one process that owns the library, which stores them (``vcopy.library``:
the same commits, crash safety and incremental rules as a local run) or matches them
(``vcopy.query``). Workers read the video files themselves (shared storage: every path must be
readable at the same name on every node) and write nothing; a worker that dies has its videos
encoded again by another (Ray restarts actors and retries their tasks), and the owner keeps the
first encoding of each file, so nothing is lost or doubled.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import re
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vcopy.errors import VcopyError
from vcopy.processes import Reaper

if TYPE_CHECKING:
    from vcopy.features import EncodedVideo, FailedVideo
    from vcopy.pipeline import PipelineSpec

RAY_MISSING = "--ray needs Ray: pip install 'vcopy[ray]'"
MAX_VIDEOS_PER_TASK = 8  # a task decodes its videos in one decoder process; a lost task redoes them


RAY_CONNECT_TIMEOUT_S = 5.0  # a cluster address that takes longer to answer is refused


def parse_address(address: str) -> tuple[str, int] | None:
    """The (host, port) of a ``--ray`` address ``HOST:PORT`` or ``ray://HOST:PORT`` (an IPv6 host
    in brackets), None for ``auto``, ``local`` and ``none``; ValueError saying what is wrong."""
    if address in ("auto", "local", "none"):
        return None
    match = re.fullmatch(r"(?:ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.\-]*):(\d{1,5})", address)
    if match is None:
        raise ValueError(
            "not a cluster address (HOST:PORT, ray://HOST:PORT, auto, or none/local to start one here); "
            "put --ray after the paths"
        )
    port = int(match[2])
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not in 1..65535")
    return match[1].strip("[]"), port


def check_reachable(address: str, endpoint: tuple[str, int]) -> None:
    """A VcopyError now, not a hang later, when nothing answers at a cluster's address."""
    try:
        with socket.create_connection(endpoint, timeout=RAY_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise VcopyError(f"--ray {address}: cannot reach a Ray cluster there ({reason})") from None


@dataclass(frozen=True)
class RayCluster:
    """Where the work runs: ``address`` of a running cluster (``auto``: the one this machine
    belongs to), or None for a local one started for this run; ``workers``: encoding actors (None:
    one per CPU, or per GPU with a ``cuda`` device)."""

    address: str | None = None
    workers: int | None = None


class RaySession:
    """A connection to the cluster for one run (``with RaySession(cluster, device):``), whose
    actors run their models on ``device``; a local cluster it started ends with it."""

    def __init__(self, cluster: RayCluster, device: str = "cpu") -> None:
        self.cluster = cluster
        self.device = device
        self._reaper: Reaper | None = None

    def __enter__(self) -> RaySession:
        try:
            import ray
        except ImportError:
            raise VcopyError(RAY_MISSING) from None
        logging.getLogger("ray").setLevel(logging.ERROR)
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a cluster started here sends nothing out
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # Ray's C++ logs: not on our stderr
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
            "configure_logging": False,
        }
        address = self.cluster.address
        try:
            if address is None:  # a cluster of our own: reaped if we are killed
                self._reaper = Reaper()
                ray.init(address="local", num_cpus=os.cpu_count() or 1, **kwargs)
            else:
                ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            self._close_reaper()
            raise VcopyError(f"--ray {address or 'local'}: cannot reach a Ray cluster ({exc})") from None
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.execution_options.preserve_order = True  # results in input order, as locally
        return self

    def __exit__(self, *exc: object) -> None:
        import ray

        ray.shutdown()
        self._close_reaper()

    def _close_reaper(self) -> None:
        if self._reaper is not None:
            self._reaper.close()
            self._reaper = None

    @property
    def workers(self) -> int:
        """Encoding actors: as asked, else one per CPU (per GPU for a ``cuda`` device)."""
        import ray

        gpu = self.device.startswith("cuda")
        resources = ray.cluster_resources()
        if gpu and resources.get("GPU", 0) < 1:
            raise VcopyError(f"--device {self.device}: the Ray cluster has no GPU")
        if self.cluster.workers is not None:
            return self.cluster.workers
        return max(1, int(resources.get("GPU" if gpu else "CPU", 1)))


class _Encoder:
    """A Ray Data actor: the pipeline built once, then ``{"path": [...]}`` batches encoded."""

    def __init__(
        self,
        spec: PipelineSpec,
        keyframe_weights: str | None,
        library: bool,
        views: tuple[str, ...],
        stall_timeout_s: float,
        device: str,
    ) -> None:
        from vcopy.features import create_descriptor
        from vcopy.pipeline import Pipeline

        keyframer = None
        if keyframe_weights is not None:
            from vcopy.keyframes.ske import LearnedKeyFrames

            keyframer = LearnedKeyFrames(Path(keyframe_weights), device)
        descriptor = create_descriptor(spec.descriptor, device=device)
        self.pipeline = Pipeline(spec, descriptor, keyframer, device)
        self.library = library
        self.views = views
        self.stall_timeout_s = stall_timeout_s

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        paths = [Path(str(p)) for p in batch["path"]]
        encode = self.pipeline.encode(paths, self.stall_timeout_s, library=self.library, views=self.views)
        results = list(encode)
        return {
            "path": [str(r.path) for r in results],
            "result": [pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in results],
        }


def encode_on_ray(
    session: RaySession,
    paths: Sequence[Path],
    spec: PipelineSpec,
    library: bool = True,
    views: tuple[str, ...] = (),
    stall_timeout_s: float = 120.0,
    keyframe_weights: Path | None = None,
) -> Iterator[EncodedVideo | FailedVideo]:
    """Encode ``paths`` on the cluster as ``Pipeline.encode`` does here (library videos, or
    suspects with ``views``), yielding each file's first result, in input order."""
    import ray

    if not paths:
        return
    workers, device = session.workers, session.device
    per_task = max(1, min(MAX_VIDEOS_PER_TASK, math.ceil(len(paths) / (2 * workers))))
    chunks = [[str(p) for p in paths[i : i + per_task]] for i in range(0, len(paths), per_task)]
    dataset = ray.data.from_items(
        [{"path": path} for chunk in chunks for path in chunk], override_num_blocks=len(chunks)
    )
    gpu = device.startswith("cuda")
    encoded = dataset.map_batches(
        _Encoder,
        fn_constructor_kwargs={
            "spec": spec,
            "keyframe_weights": None if keyframe_weights is None else str(keyframe_weights),
            "library": library,
            "views": views,
            "stall_timeout_s": stall_timeout_s,
            "device": device,
        },
        batch_size=per_task,
        concurrency=workers,
        num_cpus=0 if gpu else 1,
        num_gpus=1 if gpu else 0,
        max_restarts=-1,  # a dead actor is replaced ...
        max_task_retries=-1,  # ... and its videos encoded again
    )
    seen: set[str] = set()
    for row in encoded.iter_rows():
        if row["path"] not in seen:  # a retried task's results come once
            seen.add(row["path"])
            yield pickle.loads(row["result"])
