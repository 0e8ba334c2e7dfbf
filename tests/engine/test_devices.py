import pytest
import torch

from lure_engine.devices import choose_device


def test_auto_picks_cuda_only_when_present_and_cpu_is_always_honoured():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert choose_device("auto").type == expected
    assert choose_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_cuda_without_a_gpu_fails_at_once_naming_it():
    with pytest.raises(RuntimeError, match="'cuda' was asked for, but PyTorch sees no CUDA GPU"):
        choose_device("cuda")
