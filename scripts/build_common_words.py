"""Rebuild ``src/fissure/world/assets/common_words.txt``: the filler words of captions.

Run from the repository root (wordfreq is needed by this script only, never at run time)::

    pip install wordfreq
    python scripts/build_common_words.py

It takes the most frequent English words from wordfreq and keeps those that
change nothing a scene shows: no word of a class name or synonym, no word the
caption templates give a meaning (sizes, counts, places, left/right), no word of
any pictograph's Unicode name (so no "tree", "red" or "moon"), and nothing offensive.
"""

from __future__ import annotations

import argparse
import sys
import unicodedata

from wordfreq import top_n_list

from fissure.world.captions import COMMON_WORDS, caption_words
from fissure.world.lexicon import class_words, words

PICTOGRAPH_RANGES = ((0x2600, 0x27C0), (0x1F300, 0x1FB00))


def word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words with a visible meaning of their own: counts, sizes, places in the frame, colours.
VISIBLE = word_set(
    "zero four five six seven eight nine ten eleven twelve thirteen fifteen twenty thirty "
    "forty fifty hundred thousand million billion first second third fourth fifth sixth "
    "seventh eighth ninth tenth dozen couple single double triple both several many few "
    "tall short long wide narrow giant mini tiny massive enormous bigger biggest smaller "
    "smallest larger largest top bottom above below behind front center centre middle upper "
    "lower over corner pink gray grey golden gold silver colored coloured colorful bright "
    "dark light pale"
)
OFFENSIVE = word_set(
    "fuck fucking fucked fucker shit shitty bitch bitches ass asshole damn dick cock pussy "
    "porn porno sex sexy sexual nude naked rape nigga nigger fag faggot slut whore cunt "
    "bastard hell kill killed killing murder suicide drug drugs cocaine"
)


def pictograph_words() -> frozenset[str]:
    """Every word in the Unicode names of the emoji blocks: things a scene could show."""
    names = (unicodedata.name(chr(cp), "") for lo, hi in PICTOGRAPH_RANGES for cp in range(lo, hi))
    return frozenset(word for name in names for word in words(name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000, help="How many words to keep.")
    args = parser.parse_args()
    excluded = class_words() | caption_words() | pictograph_words() | VISIBLE | OFFENSIVE
    kept: list[str] = []
    for word in top_n_list("en", 50_000):
        if word.isascii() and word.isalpha() and len(word) >= 3 and word not in excluded:
            kept.append(word)
            if len(kept) == args.count:
                break
    COMMON_WORDS.write_text("\n".join(kept) + "\n")
    print(f"wrote {len(kept)} words to {COMMON_WORDS}", file=sys.stderr)


if __name__ == "__main__":
    main()
