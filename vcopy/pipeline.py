"""The pipeline: what a library's frames are computed with (sampling, the descriptor, which frames
are kept, what else each frame keeps), as one object. Its spec is what the library records
(``vcopy.library``), so that indexing and querying a library compute frames the same way and
cannot drift apart; the models are built from it by name.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from vcopy.errors import LibraryError, VcopyError
from vcopy.keyframes import DEFAULT_KEYFRAMES, KeyFramer, create_keyframer, span_ends
from vcopy.video import SamplingConfig

if TYPE_CHECKING:
    from vcopy.features import Descriptor, EncodedVideo, FailedVideo


@dataclass(frozen=True)
class PipelineSpec:
    """What frames are computed with; recorded in every library."""

    descriptor: str  # the descriptor's full name: registry name, settings, weights' checksum
    dim: int  # the descriptor's vector size
    sample_fps: float  # frames sampled per second of video
    frame_size: int  # frames are decoded at this many pixels square
    text_features: bool = True  # each library frame's ImageNet classes and layout, for text search
    keyframes: str = DEFAULT_KEYFRAMES  # which sampled frames are kept: a key-framer's full name
    keyframes_sha256: str = ""  # of the key-framer's weights, where it has any

    @classmethod
    def of(
        cls,
        descriptor: Descriptor,
        sampling: SamplingConfig | None = None,
        keyframer: KeyFramer | None = None,
    ) -> PipelineSpec:
        """The spec of frames computed with these models (``sampling``: default rate, the
        descriptor's frame size; ``keyframer``: default uniform)."""
        sample_fps = (sampling or SamplingConfig()).sample_fps
        models = keyframer.models if keyframer is not None else []
        return cls(
            descriptor=descriptor.name,
            dim=descriptor.dim,
            sample_fps=sample_fps,
            frame_size=descriptor.frame_size,
            keyframes=keyframer.name if keyframer is not None else DEFAULT_KEYFRAMES,
            keyframes_sha256=models[0]["sha256"] if models else "",
        )

    @property
    def sampling(self) -> SamplingConfig:
        return SamplingConfig(sample_fps=self.sample_fps, frame_size=self.frame_size)


class Pipeline:
    """A spec with its models built: encodes library videos and suspect videos alike. The
    key-framer is built when the first library video is encoded (suspects keep every frame), by
    name unless one is given."""

    def __init__(
        self,
        spec: PipelineSpec,
        descriptor: Descriptor,
        keyframer: KeyFramer | None = None,
        device: str = "cpu",
    ) -> None:
        if descriptor.name != spec.descriptor:
            raise VcopyError(f"the pipeline needs descriptor {spec.descriptor}, not {descriptor.name}")
        if descriptor.frame_size != spec.frame_size:
            raise VcopyError(
                f"descriptor {descriptor.name} takes {descriptor.frame_size}-px frames, not {spec.frame_size}"
            )
        if keyframer is not None and keyframer.name != spec.keyframes:
            raise VcopyError(f"the pipeline needs key frames {spec.keyframes}, not {keyframer.name}")
        self.spec = spec
        self.descriptor = descriptor
        self._keyframer = keyframer
        self._device = device  # where a key-framer built by name runs

    @property
    def keyframer(self) -> KeyFramer:
        if self._keyframer is None:
            self._keyframer = create_keyframer(self.spec.keyframes, self._device)
        return self._keyframer

    @classmethod
    def build(cls, spec: PipelineSpec, device: str = "cpu") -> Pipeline:
        """The pipeline of ``spec``, its descriptor built by name (``vcopy.features``)."""
        from vcopy.features import create_descriptor

        return cls(spec, create_descriptor(spec.descriptor, device=device), device=device)

    @classmethod
    def of_library(
        cls,
        spec: PipelineSpec,
        root: Path,
        descriptor: Descriptor | None = None,
        keyframer: KeyFramer | None = None,
    ) -> Pipeline:
        """The pipeline the library at ``root`` records (``spec``), with ``descriptor`` (one built
        already, e.g. on a GPU) or its own built by name, and ``keyframer`` likewise; one of another
        name is a ``LibraryError`` naming the library."""
        if keyframer is not None and keyframer.name != spec.keyframes:
            raise LibraryError(f"{root}: built with key frames {spec.keyframes}, not {keyframer.name}")
        if descriptor is None:
            from vcopy.features import create_descriptor

            return cls(spec, create_descriptor(spec.descriptor), keyframer)
        if descriptor.name != spec.descriptor:
            raise LibraryError(f"{root}: built with descriptor {spec.descriptor}, not {descriptor.name}")
        return cls(spec, descriptor, keyframer)

    def encode(
        self,
        paths: Iterable[Path],
        stall_timeout_s: float = 120.0,
        library: bool = True,
        views: tuple[str, ...] = (),
    ) -> Generator[EncodedVideo | FailedVideo, None, None]:
        """Decode and describe each video: as a library video (its key frames only, with the text
        features the spec asks for) or, with ``library`` False, as a suspect (every sampled frame,
        with the query ``views`` asked for: a suspect's frames are not stored)."""
        from vcopy.features import EncodedVideo, encode_videos

        sampling = replace(self.spec.sampling, stall_timeout_s=stall_timeout_s)
        text = self.spec.text_features and library
        encoded = encode_videos(paths, self.descriptor, sampling, text=text, views=() if library else views)
        try:
            for video in encoded:
                yield self.key_frames(video) if library and isinstance(video, EncodedVideo) else video
        finally:
            encoded.close()  # the decoder ends with this generator, not when it is collected

    def key_frames(self, video: EncodedVideo) -> EncodedVideo:
        """``video`` with only the frames its key-framer keeps (vectors, times, text, views) and the
        span each stands for."""
        rows = self.keyframer.select(video.vectors)
        if len(rows) == len(video.vectors):
            return video
        holds = self.keyframer.holds
        return replace(
            video,
            vectors=video.vectors[rows],
            timestamps_s=video.timestamps_s[rows],
            span_ends_s=span_ends(video.timestamps_s, rows, self.spec.sample_fps, holds),
            text=video.text.take(rows) if video.text is not None else None,
            views=video.views[:, rows] if video.views is not None else None,
        )
