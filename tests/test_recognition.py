import pytest
import torch
import torch.nn.functional as F

from audiolab import metrics
from audiolab.recognition import ctc_greedy_decode, error_rate, error_rates


def test_greedy_decode_merges_repeats_and_drops_blanks():
    blank = 10
    paths = torch.tensor([[10, 3, 3, 10, 3, 1, 1, 10], [7, 7, 10, 10, 7, 10, 2, 2]])
    scores = F.one_hot(paths, 11).float().log_softmax(-1)
    assert ctc_greedy_decode(scores, blank=blank) == [[3, 3, 1], [7, 7, 2]]
    # frames after a row's length are ignored
    assert ctc_greedy_decode(scores, torch.tensor([3, 8]), blank=blank) == [[3], [7, 7, 2]]
    all_blank = F.one_hot(torch.full((1, 4), blank), 11).float()
    assert ctc_greedy_decode(all_blank, blank=blank) == [[]]
    with pytest.raises(ValueError, match="batch, frames, classes"):
        ctc_greedy_decode(scores[0], blank=blank)


def test_error_rates_count_edits_over_the_corpus():
    refs = ["three one four", "one five"]
    hyps = ["three one five", "one five nine"]
    rates = error_rates(refs, hyps)
    assert rates["wer"] == pytest.approx(2 / 5)  # one substitution, one insertion
    # 'four' -> 'five': 3 substitutions ('o','u','r' -> 'i','v','e'); ' nine' inserted: 5
    assert rates["cer"] == pytest.approx((3 + 5) / (len(refs[0]) + len(refs[1])))
    assert rates["ser"] == 1.0
    assert error_rates(refs, ["three  one four ", "one five"]) == {"cer": 0, "wer": 0, "ser": 0}
    assert error_rate([[1, 2, 3]], [[]]) == 1.0  # deleting everything
    assert error_rate([[1]], [[1, 1, 1]]) == 2.0  # insertions can exceed 100 %
    with pytest.raises(ValueError, match="2 references but 1"):
        error_rates(refs, hyps[:1])
    with pytest.raises(ValueError, match="empty"):
        error_rate([[]], [[1]])


def test_si_sdr_ignores_gain_and_measures_distortion():
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(3, 8000, generator=gen)
    e = torch.randn(3, 8000, generator=gen)
    e = e - (e * s).sum(-1, keepdim=True) / (s * s).sum(-1, keepdim=True) * s  # orthogonal to s
    e = e - e.mean(-1, keepdim=True)
    s = s - s.mean(-1, keepdim=True)
    e = e * (s.norm(dim=-1, keepdim=True) / e.norm(dim=-1, keepdim=True)) * 10 ** (-10 / 20)
    estimate = 0.3 * (s + e)  # a gain does not matter
    assert torch.allclose(metrics.si_sdr_db(s, estimate), torch.full((3,), 10.0), atol=0.05)
    assert (metrics.si_sdr_db(s, 5 * s) > 60).all()
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.si_sdr_db(s, s[:, :10])
