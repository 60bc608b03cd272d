"""War and Peace (../shared/data/war-and-peace.txt), the default model's training text, as the
oracle of "the model writes words": its lower-cased words, and what share of a text's words are
among them."""
import functools
import os
import re

WORD = re.compile(r"[A-Za-z]+")


@functools.lru_cache(maxsize=1)
def novel_words():
    shared = os.environ.get("KVSERVE_SHARED") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared")
    with open(os.path.join(shared, "data", "war-and-peace.txt"), encoding="utf-8") as f:
        return frozenset(w.lower() for w in WORD.findall(f.read()))


def word_share(text):
    """(number of words in `text`, share of them that occur in the novel)."""
    words = WORD.findall(text)
    known = [w for w in words if w.lower() in novel_words()]
    return len(words), len(known) / max(1, len(words))
