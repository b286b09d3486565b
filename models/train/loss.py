"""NanoDet-Plus training objective: dynamic soft-label assignment + QFL + DFL + GIoU.

Follows the published NanoDet-Plus recipe (Apache-2.0, RangiLyu/nanodet), reimplemented here:
  * DynamicSoftLabelAssigner: candidate anchor points lie inside a ground-truth box; cost =
    soft classification cost + 3 * (-log IoU) + 10^(centre distance / stride - 3); each box
    takes its dynamic-k cheapest candidates (k = sum of its top-13 IoUs).
  * Quality Focal Loss on class scores (target = IoU of the matched prediction),
  * Distribution Focal Loss on the 8-bin side distributions,
  * GIoU loss on decoded boxes weighted by the predicted score.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model import REG_MAX, decode_boxes

TOPK = 13
IOU_FACTOR = 3.0
W_QFL, W_DFL, W_GIOU = 1.0, 0.25, 2.0


def box_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Pairwise IoU of x1y1x2y2 boxes [n,4] x [m,4] -> [n,m]."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None] - inter + eps)


def giou_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Element-wise 1 - GIoU for aligned boxes [n,4]."""
    lt = torch.max(pred[:, :2], target[:, :2])
    rb = torch.min(pred[:, 2:], target[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    ap = (pred[:, 2:] - pred[:, :2]).clamp(min=0).prod(-1)
    at = (target[:, 2:] - target[:, :2]).clamp(min=0).prod(-1)
    union = ap + at - inter + eps
    iou = inter / union
    enc = (torch.max(pred[:, 2:], target[:, 2:]) - torch.min(pred[:, :2], target[:, :2])).clamp(min=0).prod(-1) + eps
    return 1 - (iou - (enc - union) / enc)


@torch.no_grad()
def assign(priors, cls_logits, boxes_pred, gt_boxes, gt_labels, num_classes):
    """Dynamic soft-label assignment for one image.

    Returns (pos_index [P], matched_gt [P], matched_iou [P]).
    """
    n_prior = priors.shape[0]
    empty = (torch.zeros(0, dtype=torch.long),) * 2 + (torch.zeros(0),)
    if gt_boxes.shape[0] == 0:
        return empty
    centres = priors[:, :2]
    deltas = torch.cat([centres[:, None] - gt_boxes[None, :, :2], gt_boxes[None, :, 2:] - centres[:, None]], -1)
    valid = (deltas.min(-1).values > 0).any(1)
    if not valid.any():
        return empty
    valid_idx = valid.nonzero(as_tuple=True)[0]
    vp = priors[valid_idx]
    ious = box_iou(boxes_pred[valid_idx], gt_boxes)  # [V, G]
    gt_centre = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    dist = (vp[:, None, :2] - gt_centre[None]).pow(2).sum(-1).sqrt() / vp[:, 2:3]
    centre_cost = torch.pow(10.0, dist - 3)
    iou_cost = -torch.log(ious + 1e-7) * IOU_FACTOR
    logits = cls_logits[valid_idx][:, None, :].expand(-1, gt_boxes.shape[0], -1)
    soft = F.one_hot(gt_labels, num_classes).float()[None] * ious[..., None]
    scale = (soft - logits.sigmoid()).abs().pow(2)
    cls_cost = (F.binary_cross_entropy_with_logits(logits, soft, reduction="none") * scale).sum(-1)
    cost = cls_cost + iou_cost + centre_cost
    # Candidates must lie inside the box they are matched to.
    inside = deltas[valid_idx].min(-1).values > 0
    cost = cost + (~inside).float() * 1e8

    k_cand = min(TOPK, ious.shape[0])
    dynamic_k = ious.topk(k_cand, 0).values.sum(0).int().clamp(min=1)
    match = torch.zeros_like(cost)
    for g in range(gt_boxes.shape[0]):
        idx = cost[:, g].topk(int(dynamic_k[g]), largest=False).indices
        match[idx, g] = 1.0
    multi = match.sum(1) > 1
    if multi.any():  # a prior matched to several boxes keeps the cheapest one
        best = cost[multi].argmin(1)
        match[multi] = 0.0
        match[multi, best] = 1.0
    fg = match.sum(1) > 0
    matched_gt = match[fg].argmax(1)
    matched_iou = (match * ious).sum(1)[fg]
    return valid_idx[fg], matched_gt, matched_iou


def detection_loss(cls_logits, reg, priors, targets, num_classes):
    """cls_logits [B,N,nc], reg [B,N,32], targets: list of [n,5] (class, x1,y1,x2,y2)."""
    B = cls_logits.shape[0]
    boxes_pred = decode_boxes(reg, priors)  # [B,N,4]
    cls_target = torch.zeros_like(cls_logits)
    pos_b, pos_i, pos_gt_boxes = [], [], []
    for b in range(B):
        t = targets[b]
        idx, gt, iou = assign(priors, cls_logits[b].detach(), boxes_pred[b].detach(), t[:, 1:], t[:, 0].long(), num_classes)
        if len(idx):
            cls_target[b, idx, t[gt, 0].long()] = iou.clamp(min=0.0)
            pos_b.append(torch.full_like(idx, b))
            pos_i.append(idx)
            pos_gt_boxes.append(t[gt, 1:])
    num_pos = max(sum(len(p) for p in pos_i), 1)

    # Quality focal loss over every location and class.
    sig = cls_logits.sigmoid()
    qfl = F.binary_cross_entropy_with_logits(cls_logits, cls_target, reduction="none") * (sig - cls_target).abs().pow(2)
    loss_qfl = qfl.sum() / num_pos

    if pos_i:
        pb, pi = torch.cat(pos_b), torch.cat(pos_i)
        gt_boxes = torch.cat(pos_gt_boxes)
        weight = sig[pb, pi].detach().max(-1).values
        wsum = weight.sum().clamp(min=1e-6)
        loss_giou = (giou_loss(boxes_pred[pb, pi], gt_boxes) * weight).sum() / wsum
        # DFL: targets are distances to the four sides in stride units.
        p = priors[pi]
        ltrb = torch.cat([p[:, :2] - gt_boxes[:, :2], gt_boxes[:, 2:] - p[:, :2]], -1) / p[:, 2:3]
        ltrb = ltrb.clamp(0, REG_MAX - 0.01).reshape(-1)
        logits = reg[pb, pi].reshape(-1, REG_MAX + 1)
        left = ltrb.long()
        wl = left.float() + 1 - ltrb
        dfl = F.cross_entropy(logits, left, reduction="none") * wl + F.cross_entropy(logits, left + 1, reduction="none") * (1 - wl)
        loss_dfl = (dfl.reshape(-1, 4).mean(-1) * weight).sum() / wsum
    else:
        loss_giou = loss_dfl = cls_logits.sum() * 0.0
    total = W_QFL * loss_qfl + W_GIOU * loss_giou + W_DFL * loss_dfl
    return total, {
        "qfl": float(loss_qfl.detach()), "giou": float(loss_giou.detach()), "dfl": float(loss_dfl.detach()), "pos": num_pos / B,
    }
