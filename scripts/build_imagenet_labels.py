"""Write the 1,000 ImageNet-1k class names used by CLIP zero-shot judges.

The names come from timm's synset tables (Apache-2.0; WordNet lemmas), read
straight from its wheel so nothing of timm is imported or installed:

    pip download --no-deps -d /tmp/timm timm
    python scripts/build_imagenet_labels.py /tmp/timm/timm-*.whl
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

OUTPUT = Path(__file__).resolve().parents[1] / "src/fissure/judges/imagenet_labels.txt"

#: Two classes share a first lemma: a label names one class only, and a CLIP judge's two
#: identical prompts would split one class's probability. The bird and the machine have no
#: second lemma; the second maillot takes its own ("tank suit").
DISTINCT = {"n02012849": "crane bird", "n03126707": "construction crane"}


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as archive:
        synsets = archive.read("timm/data/_info/imagenet_synsets.txt").decode().split()
        lemma_lines = (
            archive.read("timm/data/_info/imagenet_synset_to_lemma.txt").decode().splitlines()
        )
    lemmas = dict(line.split("\t", 1) for line in lemma_lines)
    names: list[str] = []
    for synset in synsets:
        choices = [DISTINCT.get(synset), *(name.strip() for name in lemmas[synset].split(","))]
        names.append(next(name for name in choices if name and name not in names))
    assert len(names) == 1000 == len(set(names)), len(set(names))
    OUTPUT.write_text("\n".join(names) + "\n")
    print(f"wrote {len(names)} names to {OUTPUT}")


if __name__ == "__main__":
    main(sys.argv[1])
