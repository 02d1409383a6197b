"""The watermark's payload and its 64-bit code word: tool id, output id, CRC-16, soft-decision correction.

Code word (most significant bit first): 16-bit tool id | 32-bit output id | CRC-16/CCITT-FALSE of the
6 payload bytes. The reader gets a soft value per bit (its sign is the bit, its size the reliability).
When the hard decision fails the check, `decode_soft` flips subsets of the least reliable bits (a
Chase-style search) and keeps the cheapest flip that passes the CRC *and* gives the expected tool id:
32 check bits against at most 2**CHASE_BITS = 4,096 candidates: a random match about once in a million.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

SWAPSPOT_TOOL_ID = 0x5353
"""16-bit tool id of Swap & Spot ("SS")."""

PAYLOAD_BITS = 48
CODE_BITS = 64  # payload + CRC-16
CHASE_BITS = 12  # least reliable bits whose flips are tried when a tool id is expected


@dataclass(frozen=True)
class WatermarkPayload:
    """What the watermark says: which tool made the output, and a per-output random id."""

    tool_id: int = SWAPSPOT_TOOL_ID  # 16 bits
    output_id: int = 0  # 32 bits

    def __post_init__(self) -> None:
        if not 0 <= self.tool_id < 1 << 16:
            raise ValueError(f"tool_id must fit in 16 bits, got {self.tool_id}")
        if not 0 <= self.output_id < 1 << 32:
            raise ValueError(f"output_id must fit in 32 bits, got {self.output_id}")

    @classmethod
    def new(cls, tool_id: int = SWAPSPOT_TOOL_ID) -> WatermarkPayload:
        """A payload with a fresh random output id."""
        return cls(tool_id, new_output_id())

    def describe(self) -> str:
        """One line for people, e.g. "made by Swap & Spot, output id 1a2b3c4d"."""
        tool = "Swap & Spot" if self.tool_id == SWAPSPOT_TOOL_ID else f"tool {self.tool_id:04x}"
        return f"made by {tool}, output id {self.output_id:08x}"

    def to_bits(self) -> NDArray[np.uint8]:
        """The 64 code bits: 16-bit tool id, 32-bit output id, CRC-16 of both (most significant bit first)."""
        value = (self.tool_id << 32) | self.output_id
        data = value.to_bytes(6, "big")
        word = (value << 16) | crc16(data)
        return np.array([(word >> (CODE_BITS - 1 - i)) & 1 for i in range(CODE_BITS)], dtype=np.uint8)

    @classmethod
    def from_bits(cls, bits: NDArray[np.uint8]) -> WatermarkPayload | None:
        """The payload if the CRC matches, else None."""
        word = _word_of(bits)
        value, check = word >> 16, word & 0xFFFF
        if crc16(value.to_bytes(6, "big")) != check:
            return None
        return cls(value >> 32, value & 0xFFFFFFFF)


def new_output_id() -> int:
    """A random 32-bit output id."""
    return secrets.randbits(32)


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _word_of(bits: NDArray[np.uint8]) -> int:
    word = 0
    for bit in np.asarray(bits, dtype=np.uint8).reshape(-1)[:CODE_BITS]:
        word = (word << 1) | int(bit)
    return word


def _make_flip_signatures() -> NDArray[np.int64]:
    """For each code bit, how flipping it changes (CRC mismatch << 16 | tool id bits), a 32-bit value.

    The CRC is affine over GF(2), so a flip changes the recomputed CRC by a constant that does not
    depend on the other bits.
    """
    zero = crc16(bytes(6))
    signatures = np.zeros(CODE_BITS, dtype=np.int64)
    for index in range(CODE_BITS):
        shift = CODE_BITS - 1 - index  # bit position in the 64-bit word
        if index < PAYLOAD_BITS:
            value = 1 << (shift - 16)
            crc_change = crc16(value.to_bytes(6, "big")) ^ zero
        else:
            crc_change = 1 << shift
        tool_change = (1 << (shift - 48)) if index < 16 else 0
        signatures[index] = (crc_change << 16) | tool_change
    signatures.setflags(write=False)
    return signatures


FLIP_SIGNATURES = _make_flip_signatures()


@dataclass(frozen=True)
class Decoded:
    """A code word that passed the checks."""

    payload: WatermarkPayload
    bits: NDArray[np.uint8]  # the corrected 64 code bits
    corrected: int  # how many bits were flipped to pass the checks


def decode_soft(per_bit: NDArray[np.floating], expected_tool_id: int | None, correct: bool = True) -> Decoded | None:
    """The payload behind 64 soft values (negative = bit 1), correcting unreliable bits when a tool id is known.

    Without an expected tool id only the hard decision is checked (16 check bits would not bound
    the false matches of a search).
    """
    per_bit = np.asarray(per_bit, dtype=np.float64).reshape(-1)[:CODE_BITS]
    bits = (per_bit < 0).astype(np.uint8)
    # 1. The hard decision.
    payload = WatermarkPayload.from_bits(bits)
    if payload is not None and expected_tool_id in (None, payload.tool_id):
        return Decoded(payload, bits, 0)
    if expected_tool_id is None or not correct:
        return None
    # 2. What is wrong with it: CRC mismatch and tool id difference, as one 32-bit syndrome.
    word = _word_of(bits)
    value, check = word >> 16, word & 0xFFFF
    syndrome = ((crc16(value.to_bytes(6, "big")) ^ check) << 16) | ((value >> 32) ^ expected_tool_id)
    # 3. Every subset of the least reliable bits, with the syndrome change and cost of flipping it.
    weakest = np.argsort(np.abs(per_bit))[:CHASE_BITS]
    changes = np.zeros(1, dtype=np.int64)
    costs = np.zeros(1, dtype=np.float64)
    for index in weakest:
        changes = np.concatenate([changes, changes ^ FLIP_SIGNATURES[index]])
        costs = np.concatenate([costs, costs + abs(per_bit[index])])
    matches = np.flatnonzero(changes == syndrome)
    if matches.size == 0:
        return None
    # 4. The cheapest flip that fixes everything.
    mask = int(matches[np.argmin(costs[matches])])
    flipped = weakest[[(mask >> j) & 1 == 1 for j in range(CHASE_BITS)]]
    bits = bits.copy()
    bits[flipped] ^= 1
    payload = WatermarkPayload.from_bits(bits)
    if payload is None or payload.tool_id != expected_tool_id:
        return None
    return Decoded(payload, bits, int(flipped.size))
