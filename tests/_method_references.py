"""Literal transcriptions of the official code of the baselines in goal_plugin.methods.

Each function keeps the official code's structure, variable names and
operations (only I/O, logging and device moves removed) so that it can be read
against its source line by line; the library's implementations are tested
against them. The prefix names the method (``gb_``: Gradient-Blending,
``mla_``: MLA, ``dnr_``: D&R, ...); the docstring names the file it transcribes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn import preprocessing
from sklearn.cluster import KMeans
from sklearn.metrics import accuracy_score


# ------------------------------------------------------------ Gradient-Blending
def gb_super_epoch_weights(pre_train_loss, pre_validation_loss, now_train_loss, now_validation_loss):
    """BalanceBenchmark balancemm/trainer/GBlending_trainer.py, end of
    ``super_epoch_origin``: dicts keyed by modality (and 'output') -> weights."""
    weights = {}
    for modality in pre_train_loss:
        g = now_validation_loss[modality] - pre_validation_loss[modality]
        o_pre = pre_validation_loss[modality] - pre_train_loss[modality]
        o_now = now_validation_loss[modality] - now_train_loss[modality]
        o = o_now - o_pre
        weights[modality] = abs((g) / (o**2))
    sums = sum(weights.values())
    for modality in weights:
        weights[modality] /= sums
    return weights


# ------------------------------------------------------------------------- MLA
def mla_before_update(Pl, before_batch_input, grad, batch_index, len_dataloader, train_exp_counter):
    """MLA utils/utils.py ``GSPlugin.before_update`` body (the branch the released
    code means to run on the shared head's weight); returns (Pl, new grad)."""
    lamda = batch_index / len_dataloader + 1
    alpha = 1.0 * 0.1**lamda
    if train_exp_counter != 0:
        r = torch.mean(before_batch_input, 0, True)
        k = torch.mm(Pl, torch.t(r))
        Pl = torch.sub(Pl, torch.mm(k, torch.t(k)) / (alpha + torch.mm(k, r)))
        pnorm2 = torch.norm(Pl.data, p="fro")
        Pl.data = Pl.data / pnorm2
        grad = torch.mm(grad, torch.t(Pl.data))
    return Pl, grad


def mla_owm_before_update(Pl, before_batch_input, grad, batch_index, len_dataloader, train_exp_counter):
    """The same body with OWM's scalar denominator ``alpha + torch.mm(r, k)``
    (Zeng et al. 2019, which MLA's projection follows)."""
    lamda = batch_index / len_dataloader + 1
    alpha = 1.0 * 0.1**lamda
    if train_exp_counter != 0:
        r = torch.mean(before_batch_input, 0, True)
        k = torch.mm(Pl, torch.t(r))
        Pl = torch.sub(Pl, torch.mm(k, torch.t(k)) / (alpha + torch.mm(r, k)))
        pnorm2 = torch.norm(Pl.data, p="fro")
        Pl.data = Pl.data / pnorm2
        grad = torch.mm(grad, torch.t(Pl.data))
    return Pl, grad


def mla_calculate_entropy(output):
    """MLA main.py ``calculate_entropy`` (softmax over dim 0, as released)."""
    probabilities = F.softmax(output, dim=0)
    log_probabilities = torch.log(probabilities)
    entropy = -torch.sum(probabilities * log_probabilities)
    return entropy


def mla_calculate_gating_weights(encoder_output_1, encoder_output_2):
    """MLA main.py ``calculate_gating_weights``."""
    entropy_1 = mla_calculate_entropy(encoder_output_1)
    entropy_2 = mla_calculate_entropy(encoder_output_2)
    max_entropy = max(entropy_1, entropy_2)
    gating_weight_1 = torch.exp(max_entropy - entropy_1)
    gating_weight_2 = torch.exp(max_entropy - entropy_2)
    sum_weights = gating_weight_1 + gating_weight_2
    gating_weight_1 /= sum_weights
    gating_weight_2 /= sum_weights
    return gating_weight_1, gating_weight_2


def mla_calculate_gating_weights3(encoder_output_1, encoder_output_2, encoder_output_3):
    """MLA main.py ``calculate_gating_weights3``."""
    entropy_1 = mla_calculate_entropy(encoder_output_1)
    entropy_2 = mla_calculate_entropy(encoder_output_2)
    entropy_3 = mla_calculate_entropy(encoder_output_3)
    max_entropy = max(entropy_1, entropy_2, entropy_3)
    gating_weight_1 = torch.exp(max_entropy - entropy_1)
    gating_weight_2 = torch.exp(max_entropy - entropy_2)
    gating_weight_3 = torch.exp(max_entropy - entropy_3)
    sum_weights = gating_weight_1 + gating_weight_2 + gating_weight_3
    gating_weight_1 /= sum_weights
    gating_weight_2 /= sum_weights
    gating_weight_3 /= sum_weights
    return gating_weight_1, gating_weight_2, gating_weight_3


def mla_balancebenchmark_gating_weights(output, modalitys):
    """BalanceBenchmark models/avclassify_model.py ``calculate_gating_weights``
    (per-sample entropies over classes); ``output``: dict modality -> logits."""
    key = list(modalitys)
    entropy = {}
    gating_weight = {}
    for modality in modalitys:
        probabilities = F.softmax(output[modality], dim=1)
        log_probabilities = torch.log(probabilities)
        entropy[modality] = -torch.sum(probabilities * log_probabilities, dim=1, keepdim=True)
    max_entropy = torch.max(entropy[key[0]], entropy[key[1]])
    for modality in modalitys:
        gating_weight[modality] = torch.exp(max_entropy - entropy[modality])
    sum_weights = sum(gating_weight.values())
    for modality in modalitys:
        gating_weight[modality] = gating_weight[modality] / sum_weights
    return gating_weight


# ------------------------------------------------------------------------- D&R
def dnr_purity_score(y_true, y_pred):
    """D&R code/ours.py ``purity_score`` (BalanceBenchmark's is identical)."""
    y_voted_labels = np.zeros(y_true.shape)
    labels = np.unique(y_true)
    ordered_labels = np.arange(labels.shape[0])
    for k in range(labels.shape[0]):
        y_true[y_true == labels[k]] = ordered_labels[k]
    labels = np.unique(y_true)
    bins = np.concatenate((labels, [np.max(labels) + 1]), axis=0)
    for cluster in np.unique(y_pred):
        hist, _ = np.histogram(y_true[y_pred == cluster], bins=bins)
        winner = np.argmax(hist)
        y_voted_labels[y_pred == cluster] = winner
    return accuracy_score(y_true, y_voted_labels)


def dnr_reinit_score(modalitys, n_classes, move_lambda, train_features, val_features, n_init=10):
    """BalanceBenchmark ReLearning_trainer.py ``reinit_score`` (the official
    ours.py ``reinit_score`` per modality); ``n_init=10`` is the KMeans default
    of scikit-learn < 1.4, which the official code ran under."""
    train_purity = {}
    val_purity = {}
    purity_gap = {}
    weight = {}
    train_features["label"] = np.array(train_features["label"])
    val_features["label"] = np.array(val_features["label"])
    for modality in modalitys:
        result = np.array(train_features[modality])
        scaler = preprocessing.MinMaxScaler(feature_range=(-1, 1))
        result = scaler.fit_transform(result)
        y_pred = KMeans(n_clusters=n_classes, random_state=0, n_init=n_init).fit_predict(result)
        train_purity[modality] = dnr_purity_score(train_features["label"].copy(), y_pred)
    for modality in modalitys:
        result = np.array(val_features[modality])
        scaler = preprocessing.MinMaxScaler(feature_range=(-1, 1))
        result = scaler.fit_transform(result)
        y_pred = KMeans(n_clusters=n_classes, random_state=0, n_init=n_init).fit_predict(result)
        val_purity[modality] = dnr_purity_score(val_features["label"].copy(), y_pred)
    for modality in modalitys:
        purity_gap[modality] = np.abs(train_purity[modality] - val_purity[modality])
    for modality in modalitys:
        weight[modality] = torch.tanh(torch.tensor(move_lambda * purity_gap[modality]))
    return weight


def dnr_reinit(model, init_params, weight, modalitys):
    """BalanceBenchmark ReLearning_trainer.py ``reinit`` (official ours.py
    ``reinit`` for 'audio_net' / 'visual_net'): parameters whose name contains
    the modality move towards ``init_params[name]`` by ``weight[modality]``."""
    for name, param in model.named_parameters():
        for modality in modalitys:
            if modality in name:
                init_weight = init_params[name]
                current_weight = param.data
                new_weight = weight[modality] * init_weight + (1 - weight[modality]) * current_weight
                param.data = new_weight
    return model


# ------------------------------------------------------------------ MMPareto
# GeWu-Lab/MMPareto_ICML2024 @ a339db39: code/min_norm_solvers.py, code/MMPareto.py.


def mmpareto_min_norm_element_from2(v1v1, v1v2, v2v2):
    """MinNormSolver._min_norm_element_from2, line by line."""
    if v1v2 >= v1v1:
        gamma = 0.999
        cost = v1v1
        return gamma, cost
    if v1v2 >= v2v2:
        gamma = 0.001
        cost = v2v2
        return gamma, cost
    gamma = -1.0 * ((v1v2 - v2v2) / (v1v1 + v2v2 - 2 * v1v2))
    cost = v2v2 + gamma * (v1v2 - v2v2)
    return gamma, cost


def mmpareto_find_min_norm_element(vecs):
    """MinNormSolver._min_norm_2d + find_min_norm_element for two tasks (n < 3 returns early)."""
    dps = {}
    dmin = 1e8
    for i in range(len(vecs)):
        for j in range(i + 1, len(vecs)):
            if (i, j) not in dps:
                dps[(i, j)] = 0.0
                for k in range(len(vecs[i])):
                    dps[(i, j)] += torch.mul(vecs[i][k], vecs[j][k]).sum().data.cpu()
                dps[(j, i)] = dps[(i, j)]
            if (i, i) not in dps:
                dps[(i, i)] = 0.0
                for k in range(len(vecs[i])):
                    dps[(i, i)] += torch.mul(vecs[i][k], vecs[i][k]).sum().data.cpu()
            if (j, j) not in dps:
                dps[(j, j)] = 0.0
                for k in range(len(vecs[i])):
                    dps[(j, j)] += torch.mul(vecs[j][k], vecs[j][k]).sum().data.cpu()
            c, d = mmpareto_min_norm_element_from2(dps[(i, i)], dps[(i, j)], dps[(j, j)])
            if d < dmin:
                dmin = d
                sol = [(i, j), c, d]
    sol_vec = np.zeros(len(vecs))
    c = sol[1].numpy() if torch.is_tensor(sol[1]) else sol[1]
    sol_vec[sol[0][0]] = c
    sol_vec[sol[0][1]] = 1 - c
    return sol_vec, sol[2]


def mmpareto_official_encoder(names, grads_both, grads_uni, gamma=1.5):
    """One encoder of MMPareto.py's train_epoch: grads_*[name] are the per-parameter
    gradients of loss_mm ('both') and of the encoder's unimodal loss; param.grad after
    loss.backward() of the summed loss is taken as their sum. Returns {name: new grad}."""
    both = dict(grads_both)
    uni = dict(grads_uni)
    both["concat"] = torch.cat([both[n].flatten() for n in names])
    uni["concat"] = torch.cat([uni[n].flatten() for n in names])
    this_cos = F.cosine_similarity(both["concat"], uni["concat"], dim=0)
    k = [0, 0]
    if this_cos > 0:
        k[0] = 0.5
        k[1] = 0.5
    else:
        k, _min_norm = mmpareto_find_min_norm_element([list(both.values()), list(uni.values())])
    out = {}
    for name in names:
        three_norm = torch.norm(grads_both[name] + grads_uni[name])
        new_grad = 2 * k[0] * grads_both[name] + 2 * k[1] * grads_uni[name]
        new_norm = torch.norm(new_grad)
        diff = three_norm / new_norm
        if diff > 1:
            out[name] = diff * new_grad * gamma
        else:
            out[name] = new_grad * gamma
    return out, (float(k[0]), float(k[1]))


# ----------------------------------------------------------------------- AGM
# lihong2303/AGM_ICCV2023 @ 5a65542c: model/CREMAD_net.py, run/CREMAD_main.py (two
# modalities), model/URFunny_net.py, run/URFunny_main.py (three modalities).


def agm_two_modalities(total_out, pad_visual_out, pad_audio_out, label, train_score_a, train_score_v,
                       iteration, alpha):
    """CREMAD: Modality_Audio / Modality_Visual, the scores, ratios, coefficients and running scores."""
    import math

    softmax = torch.nn.Softmax(dim=1)
    out_a = 0.5 * (total_out - pad_audio_out + pad_visual_out)
    out_v = 0.5 * (total_out - pad_visual_out + pad_audio_out)
    score_audio = 0.
    score_visual = 0.
    for k in range(out_a.size(0)):
        if torch.isinf(torch.log(softmax(out_a)[k][label[k]])) or softmax(out_a)[k][label[k]] < 1e-8:
            score_audio += - torch.log(torch.tensor(1e-8, dtype=out_a.dtype, device=out_a.device))
        else:
            score_audio += - torch.log(softmax(out_a)[k][label[k]])
        if torch.isinf(torch.log(softmax(out_v)[k][label[k]])) or softmax(out_v)[k][label[k]] < 1e-8:
            score_visual += - torch.log(torch.tensor(1e-8, dtype=out_v.dtype, device=out_v.device))
        else:
            score_visual += - torch.log(softmax(out_v)[k][label[k]])
    score_audio = score_audio / out_a.size(0)
    score_visual = score_visual / out_v.size(0)

    ratio_a = math.exp(score_visual.item() - score_audio.item())
    ratio_v = math.exp(score_audio.item() - score_visual.item())

    optimal_ratio_a = math.exp(train_score_v - train_score_a)
    optimal_ratio_v = math.exp(train_score_a - train_score_v)

    coeff_a = math.exp(alpha * (min(optimal_ratio_a - ratio_a, 10)))
    coeff_v = math.exp(alpha * (min(optimal_ratio_v - ratio_v, 10)))

    train_score_a = train_score_a * (iteration - 1) / iteration + score_audio.item() / iteration
    train_score_v = train_score_v * (iteration - 1) / iteration + score_visual.item() / iteration
    return [out_a, out_v], [coeff_a, coeff_v], [train_score_a, train_score_v]


def agm_three_modalities(total_out, pad_visual_out, pad_audio_out, pad_text_out, pad_visual_audio_out,
                         pad_visual_text_out, pad_audio_text_out, label, train_score_a, train_score_v,
                         train_score_t, iteration, alpha):
    """URFunny: Modality_Audio / _Visual / _Text, scores, ratios, coefficients, running scores.
    Returns everything in the order (audio, visual, text)."""
    import math

    softmax = torch.nn.Softmax(dim=1)
    m_t_out = (total_out - pad_text_out + pad_visual_audio_out) / 3 + (
        pad_visual_out - pad_audio_text_out + pad_audio_out - pad_visual_text_out) / 6
    m_a_out = (total_out - pad_audio_out + pad_visual_text_out) / 3 + (
        pad_visual_out - pad_audio_text_out + pad_text_out - pad_visual_audio_out) / 6
    m_v_out = (total_out - pad_visual_out + pad_audio_text_out) / 3 + (
        pad_audio_out - pad_visual_text_out + pad_text_out - pad_visual_audio_out) / 6
    score_visual = 0.
    score_audio = 0.
    score_text = 0.
    for k in range(total_out.size(0)):
        score_visual += - torch.log(softmax(m_v_out)[k][label[k]]) / m_v_out.size(0)
        score_audio += - torch.log(softmax(m_a_out)[k][label[k]]) / m_a_out.size(0)
        score_text += - torch.log(softmax(m_t_out)[k][label[k]]) / m_t_out.size(0)

    mean_score = (score_visual.item() + score_audio.item() + score_text.item()) / 3

    ratio_v = math.exp((mean_score - score_visual.item()) * 3 / 2)
    ratio_a = math.exp((mean_score - score_audio.item()) * 3 / 2)
    ratio_t = math.exp((mean_score - score_text.item()) * 3 / 2)

    optimal_mean_score = (train_score_v + train_score_a + train_score_t) / 3
    optimal_ratio_v = math.exp((optimal_mean_score - train_score_v) * 3 / 2)
    optimal_ratio_a = math.exp((optimal_mean_score - train_score_a) * 3 / 2)
    optimal_ratio_t = math.exp((optimal_mean_score - train_score_t) * 3 / 2)

    coeff_a = math.exp(alpha * (min(optimal_ratio_a - ratio_a, 7)))
    coeff_v = math.exp(alpha * (min(optimal_ratio_v - ratio_v, 7)))
    coeff_t = math.exp(alpha * (min(optimal_ratio_t - ratio_t, 7)))

    train_score_v = train_score_v * (iteration - 1) / iteration + score_visual.item() / iteration
    train_score_a = train_score_a * (iteration - 1) / iteration + score_audio.item() / iteration
    train_score_t = train_score_t * (iteration - 1) / iteration + score_text.item() / iteration
    return ([m_a_out, m_v_out, m_t_out], [coeff_a, coeff_v, coeff_t],
            [train_score_a, train_score_v, train_score_t])


def agm_hooked_output(phis, scales):
    """GradMod: each phi_m passes an identity module whose full backward hook
    returns ``ginp[0].clone() * scale_m``; the fused output is their sum."""
    class ModalityOut(torch.nn.Module):
        def forward(self, x):
            return x

    out = 0
    for phi, scale in zip(phis, scales):
        module = ModalityOut()
        module.register_full_backward_hook(lambda m, ginp, gout, s=scale: (ginp[0].clone() * s,))
        out = out + module(phi)
    return out


# ----------------------------------------------------------------------- PMR
# fanyunfeng-bit/Modal-Imbalance-PMR @ 3615e489: main_Prototype_grad.py.


def pmr_eu_dist(x1, x2):
    """EU_dist, line by line."""
    d_matrix = torch.zeros(x1.shape[0], x2.shape[0]).to(x1.device)
    for i in range(x1.shape[0]):
        for j in range(x2.shape[0]):
            d = torch.sqrt(torch.dot((x1[i] - x2[j]), (x1[i] - x2[j])))
            d_matrix[i, j] = d
    return d_matrix


def pmr_calculate_prototype(batches, n_classes, embed_dims, epoch, momentum_coef, protos=None):
    """calculate_prototype for any number of modalities: ``batches`` is a list of
    (features_per_modality, label); reads the first len(batches) // 10 batches
    (at least one), per-sample accumulation, then the epoch <= 0 / momentum rule."""
    prototypes = [torch.zeros(n_classes, dim) for dim in embed_dims]
    count_class = [0 for _ in range(n_classes)]
    sample_count = 0
    all_num = len(batches)
    for features, label in batches:
        for c, l in enumerate(label):
            l = l.long()
            count_class[l] += 1
            for m in range(len(prototypes)):
                prototypes[m][l, :] += features[m][c, :]
        sample_count += 1
        if sample_count >= all_num // 10:
            break
    for c in range(prototypes[0].shape[0]):
        for m in range(len(prototypes)):
            prototypes[m][c, :] /= count_class[c]
    if epoch <= 0:
        return prototypes
    return [(1 - momentum_coef) * prototypes[m] + momentum_coef * protos[m] for m in range(len(prototypes))]


def pmr_two_modalities(a, v, out, label, audio_proto, visual_proto, alpha):
    """train_epoch's 'Proto' branch: the loss and the two coefficients (beta, lam)."""
    criterion = torch.nn.CrossEntropyLoss()
    softmax = torch.nn.Softmax(dim=1)
    audio_sim = -pmr_eu_dist(a, audio_proto)
    visual_sim = -pmr_eu_dist(v, visual_proto)
    score_a_p = sum([softmax(audio_sim)[i][label[i]] for i in range(audio_sim.size(0))])
    score_v_p = sum([softmax(visual_sim)[i][label[i]] for i in range(visual_sim.size(0))])
    ratio_a_p = score_a_p / score_v_p
    loss_proto_a = criterion(audio_sim, label)
    loss_proto_v = criterion(visual_sim, label)
    if ratio_a_p > 1:
        beta = 0
        lam = 1 * alpha
    elif ratio_a_p < 1:
        beta = 1 * alpha
        lam = 0
    else:
        beta = 0
        lam = 0
    loss = criterion(out, label) + beta * loss_proto_a + lam * loss_proto_v
    return loss, [beta, lam]
