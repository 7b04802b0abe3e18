"""Speech recognition helpers: greedy CTC decoding and error rates (CER, WER, SER).

Error rates use :func:`torchaudio.functional.edit_distance` (the Levenshtein distance: the fewest
substitutions, deletions and insertions that turn the hypothesis into the reference). For a
corpus of references :math:`r_i` and hypotheses :math:`h_i`,

.. math::

    \\mathrm{ER} = \\frac{\\sum_i d(r_i, h_i)}{\\sum_i |r_i|},

where :math:`d` is the edit distance and :math:`|r_i|` the length of the reference in the unit
counted: characters for the character error rate (CER), words for the word error rate (WER).
The rate is a sum over the corpus, not a mean of per-utterance rates, and it can exceed 1 when
the hypotheses insert many tokens.

Examples
--------
>>> from audiolab.recognition import error_rates
>>> error_rates(["three one four"], ["three one five"])["wer"]
0.3333333333333333
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def ctc_greedy_decode(
    log_probs: Tensor, lengths: Tensor | None = None, blank: int = 0
) -> list[list[int]]:
    """Best-path (greedy) CTC decoding: the arg-max class per frame, repeats merged, no blanks.

    Parameters
    ----------
    log_probs
        Scores ``(batch, frames, classes)`` (log-probabilities or logits: only the arg-max
        matters). Note: batch first, unlike :class:`torch.nn.CTCLoss`'s ``(frames, batch, ...)``.
    lengths
        Valid frames of each row ``(batch,)``; default: all frames.
    blank
        The index of the CTC blank.

    Returns
    -------
    list of list of int
        The decoded label sequence of each row.

    Examples
    --------
    >>> import torch
    >>> best = torch.tensor([[0, 3, 3, 0, 3, 1, 1, 0]])  # blank = 0
    >>> ctc_greedy_decode(torch.nn.functional.one_hot(best, 4).float(), blank=0)
    [[3, 3, 1]]
    """
    if log_probs.ndim != 3:
        raise ValueError(
            f"log_probs must be (batch, frames, classes), got shape {tuple(log_probs.shape)}"
        )
    batch, frames, classes = log_probs.shape
    if isinstance(blank, bool) or not isinstance(blank, int) or not 0 <= blank < classes:
        raise ValueError(f"blank must be a class index 0 to {classes - 1}, got {blank!r}")
    if lengths is None:
        lengths = torch.full((batch,), frames)
    best = log_probs.argmax(dim=-1).cpu()
    decoded = []
    for row, n in zip(best, torch.as_tensor(lengths).tolist(), strict=True):
        path = torch.unique_consecutive(row[: int(n)])
        decoded.append([int(k) for k in path if k != blank])
    return decoded


def error_rate(references: Sequence[Sequence], hypotheses: Sequence[Sequence]) -> float:
    """Corpus error rate ``Σ edit_distance(r, h) / Σ len(r)`` over token sequences.

    The tokens can be anything comparable with ``==``: characters of strings, words, label
    indices.
    """
    from torchaudio.functional import edit_distance

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    total = sum(len(r) for r in references)
    if total == 0:
        raise ValueError("the references are empty: an error rate needs at least one token")
    pairs = zip(references, hypotheses, strict=True)
    return sum(edit_distance(list(r), list(h)) for r, h in pairs) / total


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """Character, word and sentence error rates of transcripts.

    Parameters
    ----------
    references, hypotheses
        Transcripts (strings), one per utterance; words are separated by white space.

    Returns
    -------
    dict
        ``cer``: character error rate over the words joined by single spaces (the spaces are
        characters: a missing word costs its letters and a space); ``wer``: word error rate;
        ``ser``: sentence error rate, the fraction of utterances with at least one word wrong.
    """
    ref_words = [r.split() for r in references]
    hyp_words = [h.split() for h in hypotheses]
    wer = error_rate(ref_words, hyp_words)  # also checks the lengths
    return {
        "cer": error_rate([" ".join(r) for r in ref_words], [" ".join(h) for h in hyp_words]),
        "wer": wer,
        "ser": sum(r != h for r, h in zip(ref_words, hyp_words, strict=True)) / len(ref_words),
    }
