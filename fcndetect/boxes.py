"""Box utilities: NMS-max, NMS-avg (DDFD), clipping, box regression.

All boxes are ``[N, 4]`` float tensors ``[x1, y1, x2, y2]`` in image pixels with continuous edges
(``[0, 0, W, H]`` is the whole image). Ranking keys (``scores`` below) may be any real numbers: fcndetect
passes logits, which never saturate.

Overlap convention shared by both NMS variants: for the overlap test only, every box is given sides of at
least :data:`MIN_SIDE` pixels (``x2 = max(x2, x1 + MIN_SIDE)``, same for ``y``), so that zero-area duplicates
have IoU 1 instead of 0/0, and a degenerate box never merges with a real one. Ties in the ranking key are
broken by input order (a stable sort), in both variants.
"""

from __future__ import annotations

import math

import torch

from .tvops import torchvision_op

__all__ = ["MIN_SIDE", "nms_max", "nms_avg", "nms_avg_indexed", "cluster_mean", "suppress_contained", "clip_boxes", "refine_boxes", "box_iou"]

#: Smallest box side, in pixels, used for overlap tests (degenerate boxes are widened to it).
MIN_SIDE = 1e-3


def _overlap_boxes(boxes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``[N, 4]`` float64 boxes for overlap tests: sides of at least :data:`MIN_SIDE`, and each label moved
    to its own region of the plane (torchvision's ``batched_nms`` offset trick), so that boxes of different
    labels never overlap."""
    b = boxes.to(torch.float64)
    lo = b[:, :2]
    hi = torch.maximum(b[:, 2:], lo + MIN_SIDE)
    b = torch.cat([lo, hi], dim=1)
    if b.shape[0] == 0:
        return b
    span = float((b.max() - b.min()).item()) + 1.0
    return b + (labels.to(torch.float64) * span)[:, None]


def _stable_order(scores: torch.Tensor) -> torch.Tensor:
    return torch.argsort(scores, descending=True, stable=True)


def _nms_sorted(b: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS over boxes already in rank order; returns kept positions, increasing."""
    rank = torch.arange(b.shape[0], 0, -1, dtype=torch.float64, device=b.device)  # distinct, decreasing
    return torch.sort(torchvision_op("nms")(b, rank, iou_threshold)).values  # torchvision.ops.nms's operator


def nms_max(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Per-label greedy NMS keeping the best-ranked box of each overlap group.

    Args:
        boxes: ``[N, 4]`` xyxy.
        scores: ``[N]`` ranking keys (higher is better; logits or probabilities).
        labels: ``[N]`` int64; boxes of different labels never suppress each other.
        iou_threshold: a box is discarded if its IoU with a kept, better box is > this.

    Returns:
        ``[M]`` int64 indices of kept boxes, by decreasing score (ties: input order), on ``boxes.device``.
    """
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    order = _stable_order(scores)
    b = _overlap_boxes(boxes, labels)[order]
    return order[_nms_sorted(b, iou_threshold)]


def _expand(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For ``counts [M]``: ``(owner [sum], rank [sum])``: the index of the entry each element belongs to, and
    the element's position ``0 .. counts[owner] - 1`` within it."""
    owner = torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    return owner, torch.arange(owner.numel(), device=counts.device) - starts[owner]


def _candidate_pairs(bb: torch.Tensor, sbox: torch.Tensor, cell: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs ``(box, seed)`` whose boxes may overlap, found through a uniform grid of ``cell``-pixel cells
    holding each seed at its top-left corner (every seed's side is at most ``cell``).

    Args:
        bb: ``[B, 4]`` boxes; sbox: ``[S, 4]`` seeds, sides <= ``cell``.

    Returns:
        ``(box index [P], seed index [P])``; every overlapping pair is among them.
    """
    device = bb.device
    origin = torch.minimum(bb[:, :2].min(0).values, sbox[:, :2].min(0).values) - cell
    sg = torch.floor((sbox[:, :2] - origin) / cell).to(torch.int64)  # seed cells [S, 2] (x, y)
    ncols = int(sg[:, 0].max()) + 2
    skey = sg[:, 1] * ncols + sg[:, 0]
    skey, by_key = torch.sort(skey)
    # a seed overlapping box j starts in x (j.x1 - cell, j.x2) and in y (j.y1 - cell, j.y2)
    lo = torch.floor((bb[:, :2] - cell - origin) / cell).to(torch.int64).clamp_min(0)
    hi = torch.floor((bb[:, 2:] - origin) / cell).to(torch.int64)
    hi = torch.minimum(hi, torch.tensor([ncols - 1, int(sg[:, 1].max())], device=device))
    span = (hi - lo + 1).clamp_min(0)  # [B, 2] cells along x and y
    # (box, grid row) pairs: each row is one contiguous run of keys [row * ncols + x0, row * ncols + x1]
    owner, k = _expand(span[:, 1])
    row = lo[owner, 1] + k
    key_lo = row * ncols + lo[owner, 0]
    key_hi = row * ncols + hi[owner, 0]
    first = torch.searchsorted(skey, key_lo, right=False)
    last = torch.searchsorted(skey, key_hi, right=True)
    counts = (last - first).clamp_min(0)
    run, k2 = _expand(counts)
    return owner[run], by_key[first[run] + k2]


def _first_overlapping_seed(b: torch.Tensor, seeds: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """For each box, the first seed (in ``seeds`` order) whose IoU with it is > ``iou_threshold``.

    Candidate pairs are pruned before any IoU is computed: IoU > t needs an area ratio within ``(t, 1/t)``,
    so seeds and boxes are binned by ``log(area)`` in bins ``log(1/t)`` wide and only neighbouring bins are
    compared; within them, a spatial grid as coarse as the bin's largest seed leaves only nearby seeds. The
    cost is about that of NMS-max, whatever the number of boxes.

    Args:
        b: ``[N, 4]`` float64 overlap boxes (see :func:`_overlap_boxes`).
        seeds: ``[K]`` int64 indices into ``b``, in rank order.
        iou_threshold: the NMS threshold.

    Returns:
        ``[N]`` int64 positions into ``seeds`` (``K`` where no seed overlaps).
    """
    n, k = b.shape[0], seeds.shape[0]
    device = b.device
    first = torch.full((n,), k, dtype=torch.int64, device=device)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    binned = 0.0 < iou_threshold < 1.0
    if binned:
        bins = torch.floor(torch.log(area) / math.log(1.0 / iou_threshold)).to(torch.int64)
    else:  # t <= 0: any overlap counts, no area bound; t >= 1: nothing but the seed itself
        bins = torch.zeros(n, dtype=torch.int64, device=device)
    seed_bins = bins[seeds]
    for sb in torch.unique(seed_bins).tolist():
        in_bin = torch.nonzero(seed_bins == sb).flatten()  # positions into seeds, i.e. ranks
        sbox = b[seeds[in_bin]]
        boxes_idx = torch.nonzero((bins - sb).abs() <= 1 if binned else bins == sb).flatten()
        if boxes_idx.numel() == 0:
            continue
        bb = b[boxes_idx]
        cell = float((sbox[:, 2:] - sbox[:, :2]).max())
        pb_i, ps_i = _candidate_pairs(bb, sbox, cell)
        if pb_i.numel() == 0:
            continue
        pb, ps = bb[pb_i], sbox[ps_i]
        iw = (torch.minimum(pb[:, 2], ps[:, 2]) - torch.maximum(pb[:, 0], ps[:, 0])).clamp_min(0)
        ih = (torch.minimum(pb[:, 3], ps[:, 3]) - torch.maximum(pb[:, 1], ps[:, 1])).clamp_min(0)
        inter = iw * ih
        union = area[boxes_idx][pb_i] + (ps[:, 2] - ps[:, 0]) * (ps[:, 3] - ps[:, 1]) - inter
        hit = inter / union > iou_threshold
        cand = torch.full((boxes_idx.numel(),), k, dtype=torch.int64, device=device)
        cand.scatter_reduce_(0, pb_i[hit], in_bin[ps_i[hit]], reduce="amin")
        first[boxes_idx] = torch.minimum(first[boxes_idx], cand)
    first[seeds] = torch.arange(k, device=device)  # a seed is never overlapped by an earlier seed
    return first


def nms_avg(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    iou_threshold: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """DDFD's NMS-avg: cluster by overlap, average each cluster's boxes, keep its best score.

    Greedy, per label: the best remaining box seeds a cluster made of itself and every remaining box of the
    same label whose IoU with the seed is > ``iou_threshold``; the cluster is replaced by the mean of its
    boxes with the seed's score, and removed. Repeats until no box is left.

    The seeds are exactly the boxes :func:`nms_max` keeps, and each other box joins the first seed (in rank
    order) that overlaps it, which is how it is computed: one NMS-max, then one pruned pass of IoUs.

    Args:
        boxes: ``[N, 4]`` xyxy.
        scores: ``[N]`` ranking keys (logits or probabilities).
        labels: ``[N]`` int64.
        iou_threshold: overlap that joins a box to a seed's cluster.

    Returns:
        ``(boxes [M, 4], scores [M], labels [M], sizes [M])``: averaged boxes, the seeds' scores, labels and
        cluster sizes (number of boxes merged), by decreasing score; on the input's device. The seed of
        cluster ``m`` is ``nms_max(...)[m]``.
    """
    return nms_avg_indexed(boxes, scores, labels, iou_threshold)[:4]


def nms_avg_indexed(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    iou_threshold: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`nms_avg`, also returning ``seeds [M]`` (indices of each cluster's seed) and ``cluster [N]`` (the
    cluster of every input box), so that other per-box values can be averaged the same way."""
    device = boxes.device
    n = boxes.shape[0]
    if n == 0:
        e = torch.zeros(0, dtype=torch.int64, device=device)
        return boxes.new_zeros((0, 4)), scores.new_zeros((0,)), labels.new_zeros((0,)), e, e, e
    order = _stable_order(scores)
    b = _overlap_boxes(boxes, labels)[order]
    seed_pos = _nms_sorted(b, iou_threshold)
    first = _first_overlapping_seed(b, seed_pos, iou_threshold)
    k = seed_pos.shape[0]
    # Guard: every box must land in a cluster. A seed is its own cluster's even where its IoU with itself is
    # undefined (a zero-area box); a suppressed box that no seed exceeds the threshold with (rounding between
    # NMS and this IoU) joins the seed it overlaps most.
    positions = torch.arange(k, device=device)
    first[seed_pos] = torch.minimum(first[seed_pos], positions)
    lost = (first == k).nonzero(as_tuple=True)[0]
    if lost.numel():
        iou = box_iou(b[lost], b[seed_pos]).nan_to_num(-1.0)
        first[lost] = iou.argmax(dim=1)
    cluster = torch.empty(n, dtype=torch.int64, device=device)
    cluster[order] = first
    sizes = torch.bincount(cluster, minlength=k)
    seeds = order[seed_pos]
    return (
        cluster_mean(boxes, cluster, k).to(boxes.dtype),
        scores[seeds],
        labels[seeds],
        sizes,
        seeds,
        cluster,
    )


def cluster_mean(
    values: torch.Tensor, cluster: torch.Tensor, k: int, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean of ``values [N, D]`` within each of ``k`` clusters (``cluster [N]`` ids in ``0..k-1``), weighted
    by ``weight [N]`` if given (each cluster needs a member of positive weight): ``[k, D]`` float64, on the
    input's device. NMS-avg averages boxes (and landmarks, rotated windows) of a cluster with it."""
    w = torch.ones(values.shape[0], dtype=torch.float64, device=values.device) if weight is None else weight.double()
    sums = torch.zeros((k, values.shape[1]), dtype=torch.float64, device=values.device)
    sums.index_add_(0, cluster, values.double() * w[:, None])
    totals = torch.zeros(k, dtype=torch.float64, device=values.device).index_add_(0, cluster, w)
    return sums / totals[:, None]


def clip_boxes(boxes: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Clip ``[N, 4]`` xyxy boxes to ``[0, 0, width, height]`` (as ``torchvision.ops.clip_boxes_to_image``)."""
    out = boxes.clone()
    out[..., 0::2] = boxes[..., 0::2].clamp(min=0, max=width)
    out[..., 1::2] = boxes[..., 1::2].clamp(min=0, max=height)
    return out


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """IoU of ``[N, 4]`` and ``[M, 4]`` float xyxy boxes: ``[N, M]``, with ``torchvision.ops.box_iou``'s
    arithmetic (0/0 is NaN for two zero-area boxes)."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    lt = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area1[:, None] + area2[None, :] - inter)


def refine_boxes(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Apply box-regression offsets (MTCNN convention).

    Args:
        boxes: ``[N, 4]`` xyxy windows.
        offsets: ``[N, 4]`` ``[dx1, dy1, dx2, dy2]`` in units of the box's width (x) and height (y).

    Returns:
        ``[N, 4]`` xyxy: ``x1 + dx1 * w, y1 + dy1 * h, x2 + dx2 * w, y2 + dy2 * h``.
    """
    wh = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    return boxes + offsets.to(boxes.dtype) * wh


def suppress_contained(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Containment rule: drop each box that lies mostly inside a better-ranked kept box of its label.

    Greedy by decreasing score (ties: input order): a box is dropped when ``intersection / own area`` with a
    kept box is > ``threshold`` (the intersection over the smaller box when the kept box is the larger one).
    IoU-based NMS cannot remove a small box inside a big one (their IoU is small): this removes an eye or a
    cheek box nested in a face. A box that contains a better one is kept (only the nested one goes).

    Args:
        boxes: ``[N, 4]`` xyxy; scores: ``[N]`` ranking keys; labels: ``[N]`` int64.
        threshold: fraction of a box's area that must lie inside a better box for it to be dropped.

    Returns:
        ``[M]`` int64 indices of kept boxes, by decreasing score.
    """
    n = boxes.shape[0]
    order = _stable_order(scores)
    if n == 0:
        return order
    b = _overlap_boxes(boxes, labels)[order]
    area = (b[:, 2:] - b[:, :2]).prod(dim=1)
    # Pairs (i, j), j ranked before i, where box i lies more than `threshold` inside box j: computed in row
    # blocks, so memory stays O(block * N + pairs) rather than O(N^2).
    empty = torch.zeros(0, dtype=torch.int64, device=b.device)
    rows, cols = [empty], [empty]
    block = max(1, (1 << 22) // n)
    for start in range(1, n, block):
        stop = min(n, start + block)
        bi, bj = b[start:stop, None, :], b[None, :stop, :]
        inter = (torch.minimum(bi[..., 2:], bj[..., 2:]) - torch.maximum(bi[..., :2], bj[..., :2])) \
            .clamp_min(0).prod(dim=-1)
        inside = inter / area[start:stop, None] > threshold
        inside &= torch.arange(stop, device=b.device)[None, :] < torch.arange(start, stop, device=b.device)[:, None]
        i, j = inside.nonzero(as_tuple=True)
        rows.append(i + start)
        cols.append(j)
    pi, pj = torch.cat(rows), torch.cat(cols)
    # Greedy rule: keep[i] = no kept j < i contains i. Its dependencies form a DAG along the ranking, so this
    # fixed-point iteration reaches the greedy answer after (longest chain of nested boxes + 1) rounds.
    keep = torch.ones(n, dtype=torch.bool, device=b.device)
    while True:
        dropped = torch.zeros(n, dtype=torch.bool, device=b.device)
        dropped[pi[keep[pj]]] = True
        if torch.equal(~dropped, keep):
            break
        keep = ~dropped
    return order[keep]
