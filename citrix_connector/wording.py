"""Small helpers that keep messages grammatical ("an RSA 2048 key", "an enroll order")."""

from __future__ import annotations

__all__ = ["with_article"]

# Letters whose English name starts with a vowel sound: "an RSA", "an SCM", "an HA node"...
_VOWEL_SOUND_LETTERS = frozenset("AEFHILMNORSX")
# Words starting with a vowel letter but a consonant sound
_CONSONANT_SOUND_WORDS = ("uni", "use", "usu", "one", "eu")


def with_article(phrase: str) -> str:
    """``phrase`` with "a" or "an" before it, by how its first word sounds: an acronym (all capitals,
    like RSA or ECDSA) by the name of its first letter, any other word by its first letter."""
    word = phrase.split(" ", 1)[0]
    if not word:
        return phrase
    if len(word) > 1 and word.isupper():
        vowel = word[0] in _VOWEL_SOUND_LETTERS
    else:
        lower = word.lower()
        vowel = lower[0] in "aeiou" and not lower.startswith(_CONSONANT_SOUND_WORDS)
    return f"{'an' if vowel else 'a'} {phrase}"
