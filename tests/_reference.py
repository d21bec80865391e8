"""Literal, loop-by-loop transcriptions of the papers' algorithms in plain Python.

Deliberately naive (lists of floats, explicit loops, the papers' variable names)
so that they can be checked against the equations by eye; the library's
vectorised code is tested against them.
"""

from __future__ import annotations

import math

import numpy as np


def _softmax(row):
    peak = max(row)
    exps = [math.exp(v - peak) for v in row]
    total = sum(exps)
    return [e / total for e in exps]


def adaptive_leveraging(logits, temperature):
    """GOAL Eq. 6-8: w_m = mean_i softmax_m((1 - H(p_im)/log K) / T)."""
    num_modalities = len(logits)
    batch, num_classes = len(logits[0]), len(logits[0][0])
    per_sample = []
    for i in range(batch):
        confidences = []
        for m in range(num_modalities):
            p = _softmax(logits[m][i])
            entropy = -sum(q * math.log(q) for q in p if q > 0)
            u = entropy / math.log(num_classes)
            confidences.append(1.0 - u)
        per_sample.append(_softmax([c / temperature for c in confidences]))
    return [sum(per_sample[i][m] for i in range(batch)) / batch for m in range(num_modalities)]


def gradient_orthogonalisation(vectors, eps=1e-8):
    """Algorithm 2 for one set of M vectors (lists of floats)."""
    final = [list(v) for v in vectors]
    num_modalities = len(vectors)
    for i in range(num_modalities):
        for j in range(num_modalities):
            if j == i:
                continue
            dot = sum(a * b for a, b in zip(final[i], vectors[j]))
            if dot < 0:
                norm_sq = sum(b * b for b in vectors[j])
                final[i] = [a - dot / (norm_sq + eps) * b for a, b in zip(final[i], vectors[j])]
    return final


def apply_direction(grads, space, eps=1e-8):
    """GO per sample, or once over the flattened batch. grads[m][i][k] floats."""
    num_modalities, batch = len(grads), len(grads[0])
    if space == "batch":
        flat = [[x for row in grads[m] for x in row] for m in range(num_modalities)]
        done = gradient_orthogonalisation(flat, eps)
        width = len(grads[0][0])
        return [[done[m][i * width:(i + 1) * width] for i in range(batch)] for m in range(num_modalities)]
    out = [[None] * batch for _ in range(num_modalities)]
    for i in range(batch):
        done = gradient_orthogonalisation([grads[m][i] for m in range(num_modalities)], eps)
        for m in range(num_modalities):
            out[m][i] = done[m]
    return out


def scale(grads, weights):
    return [[[weights[m] * x for x in row] for row in grads[m]] for m in range(len(grads))]


def goal(grads, logits, temperature, space, eps=1e-8):
    return apply_direction(scale(grads, adaptive_leveraging(logits, temperature)), space, eps)


def ogm_two_modalities(out_a, out_v, label, alpha):
    """OGM-GE official main.py, with a = modality 0 and v = modality 1."""
    score_v = sum(_softmax(out_v[i])[label[i]] for i in range(len(out_v)))
    score_a = sum(_softmax(out_a[i])[label[i]] for i in range(len(out_a)))
    ratio_v = score_v / score_a
    ratio_a = 1 / ratio_v
    relu = lambda x: max(x, 0.0)  # noqa: E731
    if ratio_v > 1:
        coeff_v = 1 - math.tanh(alpha * relu(ratio_v))
        coeff_a = 1
    else:
        coeff_a = 1 - math.tanh(alpha * relu(ratio_a))
        coeff_v = 1
    return [coeff_a, coeff_v]


def ogm_many_modalities(outs, label, alpha):
    """BalanceMM's M >= 3 rule (with the true-class score of two modalities)."""
    scores = [sum(_softmax(out[i])[label[i]] for i in range(len(out))) for out in outs]
    min_score = min(scores)
    coeffs = []
    for score in scores:
        ratio = score / (min_score + 1e-5)
        coeffs.append(max(1 - math.tanh(alpha * max(ratio, 0.0)), 0) if ratio > 1 else 1)
    return coeffs


def arl_two_modalities(out_a, out_v, temperature):
    """ARL main_arl_variance.py's weight computation, with the weight applied as 1 + w."""
    out_a, out_v = np.asarray(out_a), np.asarray(out_v)
    calculate_a = np.mean(np.abs(out_a), 0).sum()
    calculate_b = np.mean(np.abs(out_v), 0).sum()
    soft_a = np.stack([_softmax(list(r)) for r in out_a])
    soft_v = np.stack([_softmax(list(r)) for r in out_v])
    H_a = np.sum(-soft_a * np.log(soft_a + 1e-16), axis=1).mean()
    H_v = np.sum(-soft_v * np.log(soft_v + 1e-16), axis=1).mean()
    H_a_n, H_v_n = H_a / (H_a + H_v), H_v / (H_a + H_v)
    H_a, H_v = max(H_a_n, 0.3), max(H_v_n, 0.3)
    a_weight, v_weight = 1 / H_a, 1 / H_v
    calculate_a, calculate_b = calculate_a / (calculate_a + calculate_b), calculate_b / (
        calculate_a + calculate_b
    )
    a_weight, v_weight = a_weight / (a_weight + v_weight), v_weight / (a_weight + v_weight)
    weight = _softmax([calculate_b * a_weight * temperature, calculate_a * v_weight * temperature])
    return [1 + weight[0], 1 + weight[1]]


def arl_many_modalities(outs, temperature, floor=0.3):
    """The M-modality generalisation: the other modality's d becomes the others' mean."""
    num_modalities = len(outs)
    entropies = []
    magnitudes = []
    for out in outs:
        rows = [_softmax(list(r)) for r in out]
        entropies.append(sum(-sum(q * math.log(q) for q in p if q > 0) for p in rows) / len(rows))
        magnitudes.append(sum(sum(abs(r[k]) for r in out) / len(out) for k in range(len(out[0]))))
    entropies = [max(h / sum(entropies), floor) for h in entropies]
    inverse = [1 / h for h in entropies]
    q = [v / sum(inverse) for v in inverse]
    d = [v / sum(magnitudes) for v in magnitudes]
    scores = [
        temperature * q[m] * sum(d[k] for k in range(num_modalities) if k != m) / (num_modalities - 1)
        for m in range(num_modalities)
    ]
    return [1 + w for w in _softmax(scores)]
