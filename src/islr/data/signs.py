"""Sign names: the 250 signs of the Kaggle asl-signs competition and matching folder names to them.

:data:`KAGGLE_SIGNS` lists the competition's sign names in class-index order (the order of its
``sign_to_prediction_index_map.json``). The dataset is credited to Google, the Deaf Professional
Arts Network and Georgia Tech (PopSign), CC BY 4.0. The names are kept here as Python data so the
package needs no data file to know them.

:class:`SignMatcher` maps names written by people (folder names such as ``Thank_you``,
``thank-you``, ``thanks``, ``Goodbye``) to the canonical names of a vocabulary: case-insensitive,
spaces, hyphens and underscores ignored, then :data:`BUILTIN_ALIASES`, then the user's own aliases.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

KAGGLE_SIGNS: tuple[str, ...] = (
    "TV", "after", "airplane", "all", "alligator", "animal", "another", "any", "apple", "arm",
    "aunt", "awake", "backyard", "bad", "balloon", "bath", "because", "bed", "bedroom", "bee",
    "before", "beside", "better", "bird", "black", "blow", "blue", "boat", "book", "boy",
    "brother", "brown", "bug", "bye", "callonphone", "can", "car", "carrot", "cat", "cereal",
    "chair", "cheek", "child", "chin", "chocolate", "clean", "close", "closet", "cloud", "clown",
    "cow", "cowboy", "cry", "cut", "cute", "dad", "dance", "dirty", "dog", "doll",
    "donkey", "down", "drawer", "drink", "drop", "dry", "dryer", "duck", "ear", "elephant",
    "empty", "every", "eye", "face", "fall", "farm", "fast", "feet", "find", "fine",
    "finger", "finish", "fireman", "first", "fish", "flag", "flower", "food", "for", "frenchfries",
    "frog", "garbage", "gift", "giraffe", "girl", "give", "glasswindow", "go", "goose", "grandma",
    "grandpa", "grass", "green", "gum", "hair", "happy", "hat", "hate", "have", "haveto",
    "head", "hear", "helicopter", "hello", "hen", "hesheit", "hide", "high", "home", "horse",
    "hot", "hungry", "icecream", "if", "into", "jacket", "jeans", "jump", "kiss", "kitty",
    "lamp", "later", "like", "lion", "lips", "listen", "look", "loud", "mad", "make",
    "man", "many", "milk", "minemy", "mitten", "mom", "moon", "morning", "mouse", "mouth",
    "nap", "napkin", "night", "no", "noisy", "nose", "not", "now", "nuts", "old",
    "on", "open", "orange", "outside", "owie", "owl", "pajamas", "pen", "pencil", "penny",
    "person", "pig", "pizza", "please", "police", "pool", "potty", "pretend", "pretty", "puppy",
    "puzzle", "quiet", "radio", "rain", "read", "red", "refrigerator", "ride", "room", "sad",
    "same", "say", "scissors", "see", "shhh", "shirt", "shoe", "shower", "sick", "sleep",
    "sleepy", "smile", "snack", "snow", "stairs", "stay", "sticky", "store", "story", "stuck",
    "sun", "table", "talk", "taste", "thankyou", "that", "there", "think", "thirsty", "tiger",
    "time", "tomorrow", "tongue", "tooth", "toothbrush", "touch", "toy", "tree", "uncle", "underwear",
    "up", "vacuum", "wait", "wake", "water", "wet", "weus", "where", "white", "who",
    "why", "will", "wolf", "yellow", "yes", "yesterday", "yourself", "yucky", "zebra", "zipper",
)

#: Other names of the same sign (normalised name -> normalised Kaggle name). Only words signed
#: the same way in ASL: ``thanks`` is THANK-YOU, ``goodbye`` is BYE, ``mother`` is MOM.
BUILTIN_ALIASES: dict[str, str] = {
    "thanks": "thankyou", "thank": "thankyou", "thankyouverymuch": "thankyou",
    "goodbye": "bye", "byebye": "bye",
    "mother": "mom", "mommy": "mom", "mum": "mom", "mama": "mom",
    "father": "dad", "daddy": "dad", "papa": "dad",
    "grandmother": "grandma", "granny": "grandma", "grandfather": "grandpa",
    "television": "tv", "fridge": "refrigerator", "shh": "shhh", "hush": "shhh",
    "plane": "airplane", "aeroplane": "airplane", "pyjamas": "pajamas", "fries": "frenchfries",
    "trash": "garbage", "rubbish": "garbage", "window": "glasswindow", "phonecall": "callonphone",
    "vacuumcleaner": "vacuum",
}

_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise_sign(name: str) -> str:
    """Lower case without spaces, hyphens and underscores: ``"Thank_you"`` -> ``"thankyou"``."""
    return _SEPARATORS.sub("", name).lower()


class SignMatcher:
    """Maps written sign names to the canonical names of a vocabulary.

    ``vocabularies`` are tried in order (earlier wins when two spell the same sign differently,
    so an existing dataset's own spelling is kept). ``user_aliases`` (name -> target) are applied
    first; their targets are matched like any name and, when unknown, taken verbatim only if
    ``allow_new`` (else :meth:`unknown_alias_targets` lists them).
    """

    def __init__(self, vocabularies: Iterable[Iterable[str]], user_aliases: Mapping[str, str] | None = None,
                 allow_new: bool = False):
        self.canonical: dict[str, str] = {}
        for vocabulary in vocabularies:
            for name in vocabulary:
                self.canonical.setdefault(normalise_sign(name), name)
        self.allow_new = allow_new
        self.user_aliases = {normalise_sign(k): v for k, v in (user_aliases or {}).items()}

    def _known(self, key: str) -> str | None:
        if key in self.canonical:
            return self.canonical[key]
        alias = BUILTIN_ALIASES.get(key)
        return self.canonical.get(alias) if alias else None

    def unknown_alias_targets(self) -> list[str]:
        """User alias targets that name no sign of the vocabularies."""
        return sorted(t for t in self.user_aliases.values() if self._known(normalise_sign(t)) is None)

    def match(self, name: str) -> str | None:
        """Canonical sign of ``name``; None when unknown (a new name when ``allow_new``)."""
        key = normalise_sign(name)
        if key in self.user_aliases:
            target = self.user_aliases[key]
            known = self._known(normalise_sign(target))
            return known if known is not None else (target if self.allow_new else None)
        known = self._known(key)
        if known is not None:
            return known
        return key if self.allow_new and key else None


def parse_aliases(items: Iterable[str]) -> dict[str, str]:
    """``["FROM=TO", ...]`` -> ``{FROM: TO}``; raises ValueError on a malformed item."""
    aliases: dict[str, str] = {}
    for item in items:
        source, sep, target = item.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise ValueError(f"sign alias {item!r} must look like FROM=TO")
        aliases[source.strip()] = target.strip()
    return aliases
