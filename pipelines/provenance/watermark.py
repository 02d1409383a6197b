"""Invisible watermark in the aligned face frame: a 48-bit payload that survives JPEG, resizing and H.264.

Design (the constants below are immutable and shared by embedder and reader):
1. Geometry. Each face is warped with its 5 keypoints into the 128 px ArcFace frame (`estimate_norm`).
   Resizing, small rotations and crops are undone by re-detecting the keypoints, so the reader sees the
   same aligned face the embedder saw. Faces much larger than the frame are area-averaged first.
2. Carriers. 128 smooth, orthonormal functions on an 80 x 88 rectangle of that frame (eyes, nose, mouth,
   cheeks), spanning windowed low-frequency DCT patterns that fade out towards the rectangle's border and
   ignore brightness offsets. Low frequencies survive JPEG, H.264 and downscaling.
3. Modulation. Dithered quantisation index modulation on the carriers' coefficients (informed embedding:
   the face itself does not interfere). Each of the 64 code bits (16-bit tool id, 32-bit output id,
   CRC-16; see `payload`) rides on two carriers, whose soft decisions the reader adds.
4. Embedding. The smallest luma change that puts every coefficient on its bit's lattice is a weighted sum
   of the carriers; only this *difference* is warped back into the face and added equally to R, G and B.
5. Reading. Keypoints re-detected after an attack are off by a fraction of a pixel, which matters to a
   lattice, so the reader climbs the carriers' agreement over small shifts, scalings and rotations of
   the alignment. "Found" means a code word passes the CRC and carries the expected tool id (32 check
   bits). Every alignment visited (at most 128) is checked as read; only the best one also gets its
   least reliable bits corrected (4,096 flips). So an unmarked face passes with a probability of about
   10^-6, and a marked one is not misread as another output: correcting at every alignment turned
   noise into a wrong output id on about 4% of H.264 frames (`benchmarks.bench_watermark`).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from pipelines.face_align import estimate_norm, invert_affine, similarity_scale
from pipelines.provenance.payload import CODE_BITS, SWAPSPOT_TOOL_ID, WatermarkPayload, decode_soft, new_output_id
from pipelines.types import Face, ImageRGB, Keypoints5, Matrix2x3

__all__ = [
    "SWAPSPOT_TOOL_ID",
    "WatermarkPayload",
    "WatermarkReading",
    "decode_bits",
    "embed_watermark",
    "new_output_id",
    "read_watermark",
]

ALIGNED_SIZE = 128
REGION_X0, REGION_Y0, REGION_W, REGION_H = 24, 28, 80, 88
"""The carrier rectangle inside the 128 px aligned frame (x0, y0, width, height)."""

REPEAT = 2  # carriers per code bit
CANDIDATES = 200  # low-frequency DCT functions whose windowed span holds the carriers
KEEP_FRACTION = 0.5  # a candidate is kept when at least this share of its norm is new
QIM_STEP = 96.0  # lattice step of a carrier coefficient (orthonormal DCT units)
SEARCH_STEPS = (0.5, 0.5, 0.005, 0.005)
"""Reader's first alignment steps: dx, dy (aligned-frame pixels), log-scale, angle (radians); halved per level."""
SEARCH_LEVELS = 4
SEARCH_BUDGET = 128  # alignments the reader evaluates per face at most

_KEY = 0x5EED5BA9


def _make_window() -> NDArray[np.float32]:
    """Smooth elliptical weight over the carrier rectangle: 1 on the face, 0 at the rectangle border."""
    ys, xs = np.mgrid[0:REGION_H, 0:REGION_W].astype(np.float32)
    cx, cy = (REGION_W - 1) / 2.0, (REGION_H - 1) / 2.0
    radius = np.sqrt(((xs - cx) / (REGION_W / 2.0)) ** 2 + ((ys - cy) / (REGION_H / 2.0)) ** 2)
    inner, outer = 0.72, 0.98
    ramp = np.clip((outer - radius) / (outer - inner), 0.0, 1.0)
    window = (0.5 - 0.5 * np.cos(np.pi * ramp)).astype(np.float32)
    window.setflags(write=False)
    return window


def _keyed_uniform(count: int, salt: str) -> NDArray[np.float64]:
    """`count` numbers in [0, 1) from SHA-256 in counter mode: identical on every machine and numpy version."""
    blocks = (count * 8 + 31) // 32
    stream = b"".join(hashlib.sha256(f"{_KEY}:{salt}:{i}".encode()).digest() for i in range(blocks))
    words = np.frombuffer(stream[: count * 8], dtype=">u8").astype(np.float64)
    return words / 2.0**64


def _make_basis(window_2d: NDArray[np.float32]) -> NDArray[np.float32]:
    """128 orthonormal, smooth carrier functions living inside the window, one per row (flattened).

    1. Candidates: the window times 2D DCT basis functions, lowest frequencies first, each made blind to
       a brightness offset (codecs' colour conversions shift it) by subtracting a multiple of the window.
    2. Their best-conditioned 128-dimensional subspace (leading eigenvectors of the Gram matrix): energy
       on the face's interior rather than on the window's slopes. Only this subspace is well defined
       (its eigenvalues repeat), so
    3. within it, the orthonormal functions ordered by gradient energy (distinct eigenvalues: unique up to
       sign, and the sign is fixed by a keyed pattern): a basis every machine rebuilds identically.
    4. A keyed shuffle, so neighbouring frequencies carry different bits.
    """
    pairs = [(v, total - v) for total in range(1, 40) for v in range(total + 1)]
    pairs = [(v, u) for v, u in pairs if v < REGION_H and u < REGION_W][:CANDIDATES]
    window = window_2d.ravel().astype(np.float64)
    rows = np.empty((len(pairs), window.size), dtype=np.float64)
    for i, (v, u) in enumerate(pairs):
        spectrum = np.zeros((REGION_H, REGION_W), dtype=np.float64)
        spectrum[v, u] = 1.0
        rows[i] = cv2.idct(spectrum).ravel() * window
    rows -= np.outer(rows.sum(axis=1) / window.sum(), window)
    # 2. The subspace.
    count = CODE_BITS * REPEAT
    eigenvalues, eigenvectors = np.linalg.eigh(rows @ rows.T)
    leading = eigenvectors[:, ::-1][:, :count] / np.sqrt(eigenvalues[::-1][:count])
    subspace = leading.T @ rows
    # 3. Within it, the functions of least gradient energy (eigenvectors of the Dirichlet energy restricted
    #    to the subspace, their eigenvalues are distinct), each signed to correlate with a keyed pattern.
    images = subspace.reshape(count, REGION_H, REGION_W)
    dx, dy = np.diff(images, axis=2).reshape(count, -1), np.diff(images, axis=1).reshape(count, -1)
    energy_vectors = np.linalg.eigh(dx @ dx.T + dy @ dy.T).eigenvectors
    basis = energy_vectors.T @ subspace
    reference = _keyed_uniform(window.size, "sign") - 0.5
    basis *= np.where(basis @ reference < 0, -1.0, 1.0)[:, None]
    # 4. Keyed order.
    shuffled = np.ascontiguousarray(basis[np.argsort(_keyed_uniform(count, "order"))], dtype=np.float32)
    shuffled.setflags(write=False)
    return shuffled


def _make_dither() -> NDArray[np.float32]:
    dither = (_keyed_uniform(CODE_BITS * REPEAT, "dither") * QIM_STEP).astype(np.float32)
    dither.setflags(write=False)
    return dither


CARRIER_BIT = np.arange(CODE_BITS * REPEAT, dtype=np.intp) % CODE_BITS
"""The code bit each carrier holds: carriers k and k + 64 share bit k."""
CARRIER_BIT.setflags(write=False)


@dataclass(frozen=True)
class _Carriers:
    """The read-only carrier set shared by embedder and reader."""

    basis: NDArray[np.float32]  # (128, REGION_H * REGION_W) orthonormal rows
    dither: NDArray[np.float32]  # (128,) QIM dither per carrier


@functools.cache
def carriers() -> _Carriers:
    """The carriers, built once on first use (about 0.2 s of linear algebra, so not at import)."""
    return _Carriers(_make_basis(_make_window()), _make_dither())


@dataclass(frozen=True)
class WatermarkReading:
    """The reader's verdict for one image."""

    found: bool  # a payload with a matching CRC was decoded
    payload: WatermarkPayload | None  # the decoded payload when found
    bit_errors: int | None  # code bits (of 64) the decoder had to correct, when found
    confidence: float  # mean agreement of the carriers with the decoded bits, 0 (noise) .. 1 (clean)


def _keypoints_of(faces_or_kps: Sequence[Face | Keypoints5 | NDArray[np.floating]]) -> list[Keypoints5]:
    out = []
    for item in faces_or_kps:
        kps = item.kps if isinstance(item, Face) else np.asarray(item, dtype=np.float32)
        if kps.shape != (5, 2):
            raise ValueError(f"expected (5, 2) keypoints, got {kps.shape}")
        out.append(kps)
    return out


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {getattr(image, 'shape', None)}")


def _similarity_about_centre(dx: float, dy: float, log_scale: float, angle: float) -> Matrix2x3:
    """A small similarity in carrier-rectangle coordinates, about the rectangle's centre."""
    cx, cy = REGION_W / 2.0, REGION_H / 2.0
    scale = float(np.exp(log_scale))
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    return np.array(
        [[cos, -sin, cx + dx - cos * cx + sin * cy], [sin, cos, cy + dy - sin * cx - cos * cy]],
        dtype=np.float64,
    )


def _region_matrix(kps: Keypoints5, tweak: tuple[float, float, float, float] | None = None) -> Matrix2x3:
    """Image -> carrier-rectangle matrix (the aligned frame moved so the rectangle starts at 0, 0)."""
    matrix = estimate_norm(kps, ALIGNED_SIZE).copy()
    matrix[0, 2] -= REGION_X0
    matrix[1, 2] -= REGION_Y0
    if tweak is not None:
        extra = _similarity_about_centre(*tweak)
        matrix = extra[:, :2] @ matrix
        matrix[:, 2] += extra[:, 2]
    return matrix


def _face_box(matrix: Matrix2x3, shape: tuple[int, ...], pad: int) -> tuple[int, int, int, int] | None:
    """Image bounding box (x0, y0, x1, y1) of the carrier rectangle, padded and clipped; None if empty."""
    inverse = invert_affine(matrix)
    corners = np.array([[0, 0], [REGION_W, 0], [0, REGION_H], [REGION_W, REGION_H]], dtype=np.float64)
    mapped = corners @ inverse[:, :2].T + inverse[:, 2]
    x0 = max(int(np.floor(mapped[:, 0].min())) - pad, 0)
    y0 = max(int(np.floor(mapped[:, 1].min())) - pad, 0)
    x1 = min(int(np.ceil(mapped[:, 0].max())) + pad + 1, shape[1])
    y1 = min(int(np.ceil(mapped[:, 1].max())) + pad + 1, shape[0])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


@dataclass(frozen=True)
class _FacePatch:
    """The luma around one face, shrunk (area-averaged) when the face is much larger than the rectangle."""

    luma: NDArray[np.float32]
    to_patch: Matrix2x3  # image -> patch pixels

    def sample(self, matrix: Matrix2x3) -> NDArray[np.float32]:
        """The carrier rectangle for an image -> rectangle matrix."""
        from_patch = matrix[:, :2] @ invert_affine(self.to_patch)[:, :2]
        offset = matrix[:, 2] - from_patch @ self.to_patch[:, 2]
        composed = np.hstack([from_patch, offset[:, None]])
        warped = cv2.warpAffine(self.luma, composed, (REGION_W, REGION_H), flags=cv2.INTER_LINEAR)
        return np.asarray(warped, dtype=np.float32)


def _face_patch(image: ImageRGB, matrix: Matrix2x3) -> _FacePatch | None:
    """Cut the face's neighbourhood out of the image as luma, at about twice the rectangle's resolution."""
    box = _face_box(matrix, image.shape, pad=8)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    luma = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    scale = similarity_scale(matrix)
    to_patch = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]], dtype=np.float64)
    if scale < 0.5:
        factor = 2.0 * scale
        size = (max(int(round((x1 - x0) * factor)), 1), max(int(round((y1 - y0) * factor)), 1))
        luma = cv2.resize(luma, size, interpolation=cv2.INTER_AREA)
        fx, fy = size[0] / (x1 - x0), size[1] / (y1 - y0)
        # INTER_AREA maps pixel centres: x' + 0.5 = (x + 0.5) * f.
        to_patch = np.array([[fx, 0.0, fx * (0.5 - x0) - 0.5], [0.0, fy, fy * (0.5 - y0) - 0.5]], dtype=np.float64)
    return _FacePatch(np.asarray(luma, dtype=np.float32), to_patch)


def _coefficients(region: NDArray[np.float32]) -> NDArray[np.float32]:
    """The carrier coefficients of a luma rectangle (projections on the orthonormal basis)."""
    # einsum rather than BLAS: a matrix-vector product this small loses to thread hand-offs, badly so
    # while onnxruntime's threads are still spinning after a detection.
    return np.asarray(np.einsum("ij,j->i", carriers().basis, region.reshape(-1)), dtype=np.float32)


def _embed_region(region: NDArray[np.float32], bits: NDArray[np.uint8]) -> NDArray[np.float32]:
    """The luma change (carrier rectangle, float32) that puts every carrier on its bit's lattice."""
    # 1. Where the carriers are now.
    current = _coefficients(region)
    # 2. The nearest lattice point of each carrier's bit (dithered QIM), and the gap to it.
    offset = carriers().dither + bits[CARRIER_BIT].astype(np.float32) * (QIM_STEP / 2.0)
    target = np.round((current - offset) / QIM_STEP) * QIM_STEP + offset
    # 3. The basis is orthonormal, so the smallest change closing every gap is a weighted sum of it.
    change = np.einsum("i,ij->j", (target - current).astype(np.float32), carriers().basis)
    return np.asarray(change, dtype=np.float32).reshape(REGION_H, REGION_W)


def _warp_back(delta: NDArray[np.float32], matrix: Matrix2x3, box: tuple[int, int, int, int]) -> NDArray[np.float32]:
    """The rectangle's luma change in image pixels over `box`.

    The change is smooth (a few image pixels per rectangle pixel on large faces), so for faces larger
    than the rectangle it is warped onto a coarser grid and enlarged bilinearly, several times cheaper.
    """
    x0, y0, x1, y1 = box
    step = max(1, int(1.0 / (1.5 * similarity_scale(matrix))))
    # Coarse pixel j sits where cv2.resize puts it: full-resolution x = step * j + (step - 1) / 2.
    corner = np.array([x0 + (step - 1) / 2.0, y0 + (step - 1) / 2.0], dtype=np.float64)
    to_coarse = np.hstack([matrix[:, :2] * step, (matrix[:, 2] + matrix[:, :2] @ corner)[:, None]])
    size = (-(-(x1 - x0) // step), -(-(y1 - y0) // step))
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    coarse = cv2.warpAffine(delta, to_coarse, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    if step == 1:
        return np.asarray(coarse, dtype=np.float32)
    full = cv2.resize(coarse, (size[0] * step, size[1] * step), interpolation=cv2.INTER_LINEAR)
    return np.asarray(full[: y1 - y0, : x1 - x0], dtype=np.float32)


def embed_watermark(
    image: ImageRGB,
    faces_or_kps: Sequence[Face | Keypoints5 | NDArray[np.floating]],
    payload: WatermarkPayload,
) -> ImageRGB:
    """A copy of `image` with `payload` hidden in every listed face (changes stay inside each face)."""
    _check_image(image)
    bits = payload.to_bits()
    out = np.array(image, dtype=np.uint8, copy=True)
    for kps in _keypoints_of(faces_or_kps):
        # 1. Solve the change in the aligned carrier rectangle.
        matrix = _region_matrix(kps)
        patch = _face_patch(out, matrix)
        box = _face_box(matrix, out.shape, pad=1)
        if patch is None or box is None:
            continue
        delta = _embed_region(patch.sample(matrix), bits)
        # 2. Warp only the difference back, over the face's bounding box in the image.
        x0, y0, x1, y1 = box
        back = _warp_back(delta, matrix, box)
        # 3. Add the same change to R, G and B (saturating, rounded), so only the brightness moves.
        roi = out[y0:y1, x0:x1]
        roi[...] = cv2.add(roi, cv2.cvtColor(back, cv2.COLOR_GRAY2RGB), dtype=cv2.CV_8U)
    return out


def _soft_bits(region: NDArray[np.float32]) -> NDArray[np.float64]:
    """Soft decision per code bit: the sum of cos(QIM phase) over its carriers (+ = bit 0, - = bit 1)."""
    phase = 2.0 * np.pi * (_coefficients(region) - carriers().dither) / QIM_STEP
    per_bit = np.bincount(CARRIER_BIT, weights=np.cos(phase.astype(np.float64)), minlength=CODE_BITS)
    return np.asarray(per_bit, dtype=np.float64)


@dataclass(frozen=True)
class _Attempt:
    """Decoding at one alignment."""

    per_bit: NDArray[np.float64]  # soft decisions (+ = bit 0)
    reading: WatermarkReading

    @property
    def bits(self) -> NDArray[np.uint8]:
        """Hard decisions, before any correction."""
        return (self.per_bit < 0).astype(np.uint8)


def _decode(per_bit: NDArray[np.float64], expected: int | None, correct: bool) -> WatermarkReading:
    confidence = float(np.abs(per_bit).mean() / REPEAT)
    decoded = decode_soft(per_bit, expected, correct=correct)
    if decoded is None:
        return WatermarkReading(False, None, None, confidence)
    return WatermarkReading(True, decoded.payload, decoded.corrected, confidence)


def _attempt(patch: _FacePatch, kps: Keypoints5, tweak: NDArray[np.float64], expected: int | None) -> _Attempt:
    """Decode at one alignment without correction: found when the hard decision passes the checks."""
    per_bit = _soft_bits(patch.sample(_region_matrix(kps, (tweak[0], tweak[1], tweak[2], tweak[3]))))
    return _Attempt(per_bit, _decode(per_bit, expected, correct=False))


def _search(image: ImageRGB, kps: Keypoints5, expected: int | None) -> _Attempt:
    """Decode one face, refining the alignment around the detected keypoints.

    Keypoints re-detected after JPEG or resizing move by a fraction of a pixel, enough to shift the
    carriers, so the reader climbs the carriers' agreement over small shifts, scale and rotation
    changes (coordinate search, halving steps). Every alignment it visits gets the uncorrected check;
    only the best one gets the soft correction, which at a poor alignment would sooner or later turn
    noise into somebody else's valid code word.
    """
    patch = _face_patch(image, _region_matrix(kps))
    if patch is None:
        empty = np.zeros(CODE_BITS, dtype=np.float64)
        return _Attempt(empty, WatermarkReading(False, None, None, 0.0))
    point = np.zeros(4, dtype=np.float64)
    best = _attempt(patch, kps, point, expected)
    evaluations = 1
    for level in range(SEARCH_LEVELS):
        steps = np.array(SEARCH_STEPS, dtype=np.float64) / (2**level)
        improved = True
        while improved and not best.reading.found and evaluations < SEARCH_BUDGET:
            improved = False
            # 1. One step either way along dx, dy, log-scale and angle; keep what raises the agreement.
            for axis, sign in ((a, s) for a in range(4) for s in (1.0, -1.0)):
                candidate = point.copy()
                candidate[axis] += sign * steps[axis]
                attempt = _attempt(patch, kps, candidate, expected)
                evaluations += 1
                # 2. A code word that passes uncorrected ends the search.
                if attempt.reading.found:
                    return attempt
                if attempt.reading.confidence > best.reading.confidence:
                    point, best, improved = candidate, attempt, True
    if best.reading.found or expected is None:
        return best
    # 3. At the best alignment, correct the least reliable bits.
    return _Attempt(best.per_bit, _decode(best.per_bit, expected, correct=True))


def read_watermark(
    image: ImageRGB,
    faces_or_kps: Sequence[Face | Keypoints5 | NDArray[np.floating]],
    expected_tool_id: int | None = SWAPSPOT_TOOL_ID,
) -> WatermarkReading:
    """Look for the watermark in each listed face (keypoints detected on this image); the first face that decodes wins.

    `expected_tool_id` (default: Swap & Spot's) is required of a decoded payload on top of its CRC, which
    keeps false "found" verdicts on unmarked faces far below one in a million; None accepts any tool.
    """
    _check_image(image)
    best = WatermarkReading(False, None, None, 0.0)
    for kps in _keypoints_of(faces_or_kps):
        reading = _search(image, kps, expected_tool_id).reading
        if reading.found:
            return reading
        if reading.confidence > best.confidence:
            best = reading
    return best


def decode_bits(image: ImageRGB, kps: Keypoints5 | NDArray[np.floating]) -> NDArray[np.uint8]:
    """The reader's 64 hard decisions for one face, before correction (to measure raw bit error rates)."""
    return _search(image, _keypoints_of([kps])[0], None).bits
