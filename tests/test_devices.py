"""`vmclip.devices.choose_device`: the one device choice, and `--device` on the command line."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from vmclip.devices import choose_device
from vmclip.errors import InputError


def test_default_and_auto_pick_cuda_only_where_torch_sees_it() -> None:
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert choose_device().type == want and choose_device("auto").type == want


def test_named_devices_pass_through() -> None:
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu0", "", "cuda:x", "nonsense"])
def test_unknown_names_are_input_errors(bad) -> None:
    with pytest.raises(InputError, match="device"):
        choose_device(bad)


@pytest.mark.parametrize("bad", [3, 1.5, ["cpu"]])
def test_non_names_are_input_errors(bad) -> None:
    with pytest.raises(InputError, match="device must be a name"):
        choose_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_is_an_input_error_not_a_cpu_fallback() -> None:
    for name in ("cuda", "cuda:0"):
        with pytest.raises(InputError, match="no CUDA GPU"):
            choose_device(name)


def test_server_device_option_refuses_a_bad_name_in_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vmclip", "serve", "--bind", "tcp://127.0.0.1:*", "--device", "gpu0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "gpu0" in lines[0] and "Traceback" not in proc.stderr
