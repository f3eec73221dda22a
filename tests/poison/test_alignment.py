"""The Alignment Difficulty metric, as the implosion paper defines it."""

from __future__ import annotations

import pytest
import torch

from fissure.errors import FissureError
from fissure.poison import alignment_difficulty
from fissure.poison.alignment import calibrate_band


def _by_the_definition(images, texts, a=0.2, b=4.0, alpha=0.8) -> float:
    """compute_AD.py's loops, written out: the reference the vectorised metric must equal."""
    images = [x / x.norm() for x in images.double()]
    texts = [t / t.norm() for t in texts.double()]
    n = len(images)
    feature = (
        sum(
            1 - min(max((float(x @ t) - a) * b, 0.0), 1.0)
            for x, t in zip(images, texts, strict=True)
        )
        / n
    )
    structure = 0.0
    for i in range(n):
        for j in range(i + 1, n):
            structure += abs(float(images[i] @ images[j]) - float(texts[i] @ texts[j]))
    return alpha * feature + (1 - alpha) * 2 / n**2 * structure


def test_perfectly_aligned_pairs_have_no_difficulty():
    embeddings = torch.randn(6, 16, generator=torch.Generator().manual_seed(0))
    assert alignment_difficulty(embeddings, 3 * embeddings) == pytest.approx(0.0, abs=1e-8)


def test_two_pairs_by_hand():
    """One pair aligned (cos 1), one orthogonal (cos 0, clipped to 0): D_fea = 0.5; the
    images are orthogonal and the texts equal: D_stru = 2/4 · |0 − 1| = 0.5; AD = 0.5."""
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    texts = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert alignment_difficulty(images, texts) == pytest.approx(0.5, abs=1e-12)


def test_five_pairs_match_the_definition_exactly():
    generator = torch.Generator().manual_seed(1)
    images, texts = torch.randn(5, 8, generator=generator), torch.randn(5, 8, generator=generator)
    texts[:2] = images[:2] + 0.3 * texts[:2]  # some pairs partly aligned: s inside (0, 1)
    for a, b, alpha in ((0.2, 4.0, 0.8), (0.0, 1.5, 0.5)):
        expected = _by_the_definition(images, texts, a, b, alpha)
        assert alignment_difficulty(images, texts, a, b, alpha) == pytest.approx(
            expected, abs=1e-12
        )


def test_swapping_the_images_of_more_concepts_raises_it():
    """The paper's Theorem 4.2 on separated concepts: each poisoned concept's captions are
    paired with another concept's images, and AD grows with the number poisoned."""
    generator = torch.Generator().manual_seed(2)
    concepts, per_concept = 8, 6
    centres = torch.eye(concepts, 32)
    texts = centres.repeat_interleave(per_concept, dim=0)
    images = texts + 0.1 * torch.randn(texts.shape, generator=generator)
    values = []
    for poisoned in range(0, concepts + 1, 2):
        swapped = images.clone()
        for concept in range(poisoned):
            rows = slice(concept * per_concept, (concept + 1) * per_concept)
            other = (concept + 1) % concepts
            swapped[rows] = images[other * per_concept : (other + 1) * per_concept]
        values.append(alignment_difficulty(swapped, texts))
    assert values == sorted(values) and values[0] < values[-1]


def test_mismatched_inputs_are_one_line_errors():
    with pytest.raises(FissureError, match="paired by row"):
        alignment_difficulty(torch.randn(4, 8), torch.randn(3, 8))
    with pytest.raises(FissureError, match="at least 2 pairs"):
        alignment_difficulty(torch.randn(1, 8), torch.randn(1, 8))


def test_the_calibrated_band_sits_between_mismatched_and_matched_pairs():
    """Pairs whose cosines are known: image i = m_i·e_i + √(1 − m_i²)·e_(n+i) and text i =
    e_i, so a matched pair's cosine is m_i and a mismatched one's 0. Then a is halfway
    between the medians (0 and m's) and a + 1/b is m's 95th percentile."""
    count = 41
    basis = torch.eye(2 * count)
    matched = torch.linspace(0.3, 0.9, count, dtype=torch.float64)
    texts = basis[:count].double()
    images = matched[:, None] * texts + (1 - matched[:, None] ** 2).sqrt() * basis[count:].double()
    a, b = calibrate_band(images, texts)
    assert a == pytest.approx(float(matched.median()) / 2)
    assert a + 1 / b == pytest.approx(float(matched.quantile(0.95)))
