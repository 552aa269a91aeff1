"""The probes' messages: what a child sends decodes into its dataclass, and anything else is refused at the edge
(how the parent blames a garbled step is tests/probes/test_runner.py's)."""

from __future__ import annotations

import dataclasses

import pytest

from pytest_cudadeps.probes.child.protocol import (
    AllReduceAnswer,
    GpuAnswer,
    Loaded,
    NvmlAnswer,
    ProtocolError,
    RankResult,
    SmokeRequest,
    TorchFacts,
    decode,
)


def test_every_answer_survives_the_json_round_trip() -> None:
    answers: list[NvmlAnswer | AllReduceAnswer | SmokeRequest | TorchFacts | Loaded] = [
        NvmlAnswer(driver="580.65.06", cuda_version=13000, gpus=(GpuAnswer(0, "NVIDIA H100 80GB HBM3", (9, 0), 80 << 30, "on"),)),
        AllReduceAnswer("nccl", ranks=(RankResult(0, "cuda:0", 3.0, (3.0,), 0.001),)),
        SmokeRequest(("cpu", "cpu"), "gloo", 64),
        TorchFacts(torch="2.14.1+cu130", cuda="13.0", device_count=0, no_gpu_reason="Found no NVIDIA driver"),
        Loaded(False, error="libcudart.so.13: cannot open shared object file"),
    ]
    for answer in answers:
        assert decode(type(answer), dataclasses.asdict(answer)) == answer


@pytest.mark.parametrize(("data", "complaint"), [
    ({"gpus": [{"index": "0", "name": "x", "capability": [9, 0]}]}, "GpuAnswer.index: '0' is not a int"),
    ({"gpus": [{"index": 0, "name": "x", "capability": [9]}]}, "GpuAnswer.capability: expected 2 items, got 1"),
    ({"gpus": [{"index": 0, "capability": [9, 0]}]}, "GpuAnswer: no name"),
    ({"code": True}, "NvmlAnswer.code: True is none of"),  # a bool is not an int here
    ({"gpus": "none"}, "NvmlAnswer.gpus: expected a list"),
    ([], "NvmlAnswer: expected an object, got list"),
])
def test_a_garbled_answer_is_a_protocol_error_naming_the_field(data: object, complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint.replace("(", r"\(").replace("[", r"\[")):
        decode(NvmlAnswer, data)
