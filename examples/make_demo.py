"""Make the bundled demo: a small library of reference videos and a folder of suspects.

    python examples/make_demo.py demo

writes demo/library_videos/*.mp4 (4 references), demo/suspects/*.mp4 (2 copies, 1 unrelated) and
demo/truth.json (which seconds of which reference each copy holds). Deterministic.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vcopy import synth
from vcopy.synth.shots import procedural_picture


def make_demo(root: Path) -> Path:
    refs, suspects = root / "library_videos", root / "suspects"
    harbour, garden = (procedural_picture(seed, (240, 320)) for seed in (40, 41))  # pictures to pan over
    references = {
        "harbour.mp4": synth.concat(
            [synth.procedural_video(1, 10), synth.photo_pan(harbour, 2, 4), synth.procedural_video(3, 10)]
        ),
        "garden.mp4": synth.concat([synth.photo_pan(garden, 4, 4), synth.procedural_video(5, 20)]),
        "shapes.mp4": synth.procedural_video(6, 30),
        "night.mp4": synth.procedural_video(7, 25),
    }
    for name, clip in references.items():
        synth.write_video(refs / name, clip)
    copies = {
        "reupload_cropped.mp4": ("harbour.mp4", 8.0, 20.0, lambda c: synth.crop(c, 0.8)),
        "reupload_recoloured.mp4": ("shapes.mp4", 12.0, 24.0, lambda c: synth.colour_shift(c, 0.1, 1.2, 0.6)),
    }
    truth = []
    for i, (name, (ref, start_s, end_s, edit)) in enumerate(copies.items()):
        intro = synth.procedural_video(100 + i, 5)
        query = synth.concat(
            [intro, edit(references[ref].cut(start_s, end_s)), synth.procedural_video(200 + i, 4)]
        )
        synth.write_video(suspects / name, query, crf=30, size=(180, 240))
        truth.append(
            {
                "query": name,
                "reference": ref,
                "query_start": 5.0,
                "query_end": 5.0 + end_s - start_s,
                "reference_start": start_s,
                "reference_end": end_s,
            }
        )
    synth.write_video(suspects / "original_content.mp4", synth.procedural_video(300, 15))
    (root / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return root


if __name__ == "__main__":
    print(make_demo(Path(sys.argv[1] if len(sys.argv) > 1 else "demo")))
