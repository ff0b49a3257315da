"""CPU checks of two paths first seen failing on a GPU (bench/RESULTS.md §81): fsd's temporal
attention split into chunks, and `--deterministic` refused cleanly where a CUDA op has no
deterministic kernel."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from cortex.training import cli, models_fsd  # noqa: E402
from cortex.training.config import build_config  # noqa: E402
from cortex.training.workloads import WORKLOADS  # noqa: E402

GRID_SAMPLE_REFUSAL = (
    "grid_sampler_2d_backward_cuda does not have a deterministic implementation, but you set "
    "'torch.use_deterministic_algorithms(True)'. You can turn off determinism just for this "
    "operation, or you can use the 'warn_only=True' option."
)


def _fsd_outputs(batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    cfg = build_config("fsd", "tiny", {})
    model = WORKLOADS["fsd"].build_model(cfg.model).eval()
    gen = WORKLOADS["fsd"].make_generator(cfg.model, 0)
    samples = [gen.sample(i) for i in range(batch_size)]
    video = torch.stack([torch.from_numpy(s["video"]) for s in samples])
    speed = torch.stack([torch.from_numpy(s["speed"]) for s in samples])
    with torch.no_grad():
        return model(video, speed)


def test_temporal_attention_in_chunks_computes_what_one_call_does(monkeypatch) -> None:
    # tiny: batch 3 x an 8x8 BEV grid = 192 sequences over time; 50 forces 4 uneven chunks
    whole = _fsd_outputs(3)
    monkeypatch.setattr(models_fsd, "_MAX_SEQUENCES", 50)
    chunked = _fsd_outputs(3)
    for a, b in zip(whole, chunked, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _fsd_gradients(batch_size: int) -> dict[str, torch.Tensor]:
    """One training step's gradients (train mode: the layers' slow path, not the no-grad fast
    path the forward test takes)."""
    torch.manual_seed(0)
    cfg = build_config("fsd", "tiny", {})
    model = WORKLOADS["fsd"].build_model(cfg.model).train()
    gen = WORKLOADS["fsd"].make_generator(cfg.model, 0)
    samples = [gen.sample(i) for i in range(batch_size)]
    batch = {k: torch.stack([torch.from_numpy(s[k]) for s in samples]) for k in samples[0]}
    out = WORKLOADS["fsd"].forward(model, batch)
    WORKLOADS["fsd"].losses(out, batch)["loss"].backward()
    return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def test_temporal_attention_in_chunks_has_the_gradients_of_one_call(monkeypatch) -> None:
    whole = _fsd_gradients(3)
    monkeypatch.setattr(models_fsd, "_MAX_SEQUENCES", 50)
    chunked = _fsd_gradients(3)
    assert chunked.keys() == whole.keys()
    assert any(k.startswith("temporal.") for k in whole)
    for k, g in whole.items():
        # each chunk's weight gradients are summed apart: equal up to the order of the sums
        torch.testing.assert_close(chunked[k], g, rtol=1e-4, atol=1e-7, msg=k)


def test_torch_refusal_names_the_op() -> None:
    assert cli.nondeterministic_op(RuntimeError(GRID_SAMPLE_REFUSAL)) == (
        "grid_sampler_2d_backward_cuda"
    )
    assert cli.nondeterministic_op(RuntimeError("CUDA out of memory")) is None


@pytest.mark.parametrize(
    "caller",
    # torch's own callers of alert_not_deterministic (torch/_meta_registrations.py): the op is
    # named in several words, and the last word alone ("output") names nothing
    ["median CUDA with indices output", "_histc_cuda with floating point input", "kthvalue CUDA"],
)
def test_torch_refusal_names_a_caller_of_several_words(caller: str) -> None:
    message = GRID_SAMPLE_REFUSAL.replace("grid_sampler_2d_backward_cuda", caller)
    assert cli.nondeterministic_op(RuntimeError(message)) == caller
    # as a DataLoader worker re-raises it: the original message after a traceback
    wrapped = f"Caught RuntimeError in a worker.\nTraceback:\n  ...\nRuntimeError: {message}"
    assert cli.nondeterministic_op(RuntimeError(wrapped)) == caller
    nameless = RuntimeError(" does not have a deterministic implementation")  # re-raised as is
    assert cli.nondeterministic_op(nameless) is None


def test_deterministic_refused_by_an_op_exits_2_with_one_line(monkeypatch, capsys) -> None:
    from cortex.training import loop

    def refuse(*_a: object, **_k: object) -> int:
        raise RuntimeError(GRID_SAMPLE_REFUSAL)

    monkeypatch.setattr(loop, "train", refuse)
    # asked for, or on by default on CPU: dropping the flag does not turn it off there, so the
    # line names the flag that does
    for flags in (["--deterministic"], []):
        assert cli.main("fsd", ["--config", "tiny", *flags, "--device", "cpu"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            "error: --deterministic: grid_sampler_2d_backward_cuda has no deterministic "
            "implementation on cpu; run with --no-deterministic"
        ]


def test_other_runtime_errors_still_raise(monkeypatch) -> None:
    from cortex.training import loop

    def boom(*_a: object, **_k: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(loop, "train", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main("fsd", ["--config", "tiny", "--device", "cpu"])
