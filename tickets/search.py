"""Ticket search (issue #13 item 4): what the denormalised ``Ticket.search_text``
holds, and how a search term becomes the patterns matched against it.

Pure functions, no models (the migration that fills the column imports them).

Why a column of its own: a search covers the subject, the conversation, the
order no. and the buyer's name and phone, four tables. Matching each through
a join cannot use one index, so one lowercased text per ticket holds them all,
and PostgreSQL indexes it with one ``pg_trgm`` GIN index
(``tickets/migrations/0009_tags_views_search.py``); SQLite scans it with
``LIKE`` (the embedded default, small). Intake writes the ticket's own part and
its opening request; what is said later comes in batches, every 15 s
(``tickets.services.conversation.fold_search_text``), not with each message:
the index makes every change of the text a new version of the ticket's row in
all its indexes, with the trigrams of the whole text taken again.

Why bigrams: Chinese has no spaces, and a trigram index cannot find a
two-character word (快递, 退款: the most common kind of Chinese search term)
inside a longer run of characters, because ``LIKE '%快递%'`` yields no
trigram to look up. So every run of CJK characters is stored as its
overlapping bigrams, each a word of its own: ``快递没动`` → `` 快递 递没 没动 ``.
A term's CJK run becomes the same sequence with its word boundaries
(``快递`` → ``'% 快递 %'``), which contains whole-word trigrams the index can
look up, and which matches exactly the texts whose run contains the term
(a run's bigram sequence contains the term's iff the run contains the term).
Latin text, digits, order numbers and phones stay as they are (lowercased)
and are matched as substrings, which trigrams index from three characters on.
A term of several words (or of Chinese and Latin mixed) matches the tickets
that contain every word.
"""

from __future__ import annotations

import re
import unicodedata

# the column's cap: the ticket's own fields come first, then the conversation
# as it is posted, until the cap (a very long conversation's tail is not searchable)
SEARCH_TEXT_MAX = 6000
TERM_MAX = 100
# a search of only digits, shorter than this, is a ticket id (selectors.search_condition)
DIGITS_AS_TEXT = 5
MAX_TOKENS = 6

# CJK ideographs (unified + extension A + compatibility), kana and hangul
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_CJK_RUN = re.compile(f"[{_CJK}]+")
_TOKEN = re.compile(f"[{_CJK}]+|[^\\s{_CJK}]+")
_SPACES = re.compile(r"\s+")


def _fold(text: str) -> str:
    # full-width digits and letters (１３８, ＯＲＤ) as their ASCII selves, lowercased
    return unicodedata.normalize("NFKC", text or "").lower()


def _bigrams(run: str) -> str:
    if len(run) == 1:
        return run
    return " ".join(run[i:i + 2] for i in range(len(run) - 1))


def document(*parts: str | None) -> str:
    """The searchable form of ``parts`` (subject, order no., names, phone,
    message bodies): lowercased, CJK runs as bigram words, one space between
    words, and a space at either end so that every word is bounded."""
    text = " ".join(p for p in parts if p)
    text = _CJK_RUN.sub(lambda m: f" {_bigrams(m.group())} ", _fold(text))
    words = _SPACES.sub(" ", text).strip()
    return f" {words} " if words else ""


def extend(current: str, *parts: str | None, limit: int = SEARCH_TEXT_MAX) -> str:
    """``current`` with ``parts`` appended, within the cap."""
    addition = document(*parts)
    if not addition:
        return current or ""
    combined = (current or "").rstrip(" ") + addition if current else addition
    return combined[:limit]


def patterns(term: str) -> list[str]:
    """The substrings a ticket's ``search_text`` must all contain to match
    ``term`` (empty: no text condition). A CJK run of two or more characters
    is matched as its bigram words, bounded by spaces (indexable); a single
    CJK character, or Latin and digits, as a plain substring."""
    found: list[str] = []
    for token in _TOKEN.findall(_fold(term[:TERM_MAX])):
        if _CJK_RUN.fullmatch(token) and len(token) >= 2:
            pattern = f" {_bigrams(token)} "
        else:
            pattern = token
        if pattern not in found:
            found.append(pattern)
    return found[:MAX_TOKENS]
