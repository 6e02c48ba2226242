"""The GPU table: one row per preset, with everything the planner knows of that GPU and where
each number comes from. Adding a GPU is adding a row.

Sources, per column (all approximate readings, none fitted to this project's validations):
- `peak_tflops`, `memory_gb`: each vendor's datasheet, dense bf16 (V100: fp16) tensor-core peak,
  never the "with sparsity" figure;
- `torch_name`: what `torch.cuda.get_device_name()` returns contains it (an H100 PCIe's name
  contains "H100" too: the longest match wins);
- `matmul_fraction`: cuBLAS bf16 GEMMs of 8192^3 reach ~80% of peak on A100 and ~70% on H100
  (NVIDIA "Matrix Multiplication Background" guide; Hopper whitepaper cuBLAS figures);
  `matmul_rows_half` / `matmul_width_half`: the same guide's tile-quantisation and wave figures
  (a GEMM needs a few waves of 128 x 128 tiles over 108/132 SMs to fill the device: ~256-512
  rows);
- `attention_tflops` (on `planner.device.ATTENTION_LENGTHS`, full n*n counted):
  FlashAttention-2 (Dao 2023, fig. 5/6: A100 causal fwd+bwd, head dim 128, about
  100/130/150/165/175/180/185/187 TFLOP/s at 512..16k counting half of n*n) doubled to count the
  full n*n as the planner does; H100 from FlashAttention-3 (Shah et al. 2024, FA2 rows);
- `datasheet_gbps`: datasheet HBM bandwidth (profiles use 90% of it, what copy benchmarks such as
  BabelStream reach);
- `interconnect_gbps`: nccl-tests all-reduce bus bandwidth on DGX A100 (~230 GB/s NVLink3) and
  DGX H100 (~360 GB/s NVLink4); `internode_gbps`: one HDR (A100) or NDR (H100) NIC per GPU,
  ~80% of 200 or 400 Gb/s.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GPU:
    """One GPU preset (module docstring for each number's source)."""

    peak_tflops: float  # dense bf16 (V100: fp16) tensor-core peak, TFLOP/s
    memory_gb: float
    torch_name: str  # a substring of torch.cuda.get_device_name()
    matmul_fraction: float  # large bf16 GEMMs reach this share of the dense peak
    matmul_rows_half: float  # rows M at which a GEMM reaches half of that
    matmul_width_half: float  # width W (sqrt(K N)) at which a GEMM reaches half of that
    attention_tflops: tuple[float, ...]  # on ATTENTION_LENGTHS, full n*n counted
    datasheet_gbps: float  # HBM bandwidth on the datasheet
    interconnect_gbps: float | None  # NVLink/xGMI all-reduce bus bandwidth per GPU
    internode_gbps: float | None  # InfiniBand/RoCE all-reduce bus bandwidth per GPU


_A100_ATTN = (140.0, 180.0, 210.0, 260.0, 300.0, 330.0, 360.0, 370.0)
_A100 = dict(matmul_fraction=0.80, matmul_rows_half=256, matmul_width_half=384)
_HOPPER = dict(matmul_fraction=0.70, matmul_rows_half=512, matmul_width_half=512)

GPUS: dict[str, GPU] = {
    "v100": GPU(
        125.0, 32.0, "V100", matmul_fraction=0.75, matmul_rows_half=192, matmul_width_half=256,
        attention_tflops=(50.0, 65.0, 80.0, 95.0, 105.0, 110.0, 115.0, 115.0),
        datasheet_gbps=900, interconnect_gbps=120, internode_gbps=10,
    ),
    "a100": GPU(
        312.0, 80.0, "A100", **_A100, attention_tflops=_A100_ATTN, datasheet_gbps=2039,
        interconnect_gbps=230, internode_gbps=20,
    ),
    "a100-40gb": GPU(
        312.0, 40.0, "A100", **_A100, attention_tflops=_A100_ATTN, datasheet_gbps=1555,
        interconnect_gbps=230, internode_gbps=20,
    ),
    "h100-sxm": GPU(
        989.0, 80.0, "H100", **_HOPPER,
        attention_tflops=(220.0, 300.0, 380.0, 460.0, 540.0, 600.0, 640.0, 660.0),
        datasheet_gbps=3350, interconnect_gbps=360, internode_gbps=40,
    ),
    "h100-pcie": GPU(
        756.0, 80.0, "H100 PCIe", **_HOPPER,
        attention_tflops=(170.0, 230.0, 290.0, 350.0, 410.0, 460.0, 490.0, 500.0),
        datasheet_gbps=2000, interconnect_gbps=50, internode_gbps=40,
    ),
    "h200": GPU(
        989.0, 141.0, "H200", matmul_fraction=0.72, matmul_rows_half=512, matmul_width_half=512,
        attention_tflops=(230.0, 310.0, 390.0, 470.0, 550.0, 610.0, 650.0, 670.0),
        datasheet_gbps=4800, interconnect_gbps=360, internode_gbps=40,
    ),
    "b200": GPU(
        2250.0, 180.0, "B200", matmul_fraction=0.70, matmul_rows_half=768, matmul_width_half=768,
        attention_tflops=(400.0, 560.0, 720.0, 880.0, 1000.0, 1100.0, 1150.0, 1200.0),
        datasheet_gbps=8000, interconnect_gbps=700, internode_gbps=80,
    ),
    "l40s": GPU(
        362.0, 48.0, "L40S", matmul_fraction=0.65, matmul_rows_half=384, matmul_width_half=512,
        attention_tflops=(110.0, 150.0, 180.0, 210.0, 230.0, 240.0, 250.0, 250.0),
        datasheet_gbps=864, interconnect_gbps=25, internode_gbps=20,
    ),
    "mi300x": GPU(
        1307.0, 192.0, "MI300X", matmul_fraction=0.55, matmul_rows_half=768,
        matmul_width_half=768,
        attention_tflops=(200.0, 280.0, 360.0, 440.0, 500.0, 540.0, 560.0, 570.0),
        datasheet_gbps=5300, interconnect_gbps=300, internode_gbps=40,
    ),
}  # fmt: skip


def gpu_preset_for_name(device_name: str | None) -> str | None:
    """The preset of a CUDA device name such as 'NVIDIA H100 80GB HBM3', or None (the first
    row whose `torch_name` the name contains; an A100 is the 80 GB preset)."""
    if not device_name:
        return None
    rows = sorted(GPUS.items(), key=lambda item: -len(item[1].torch_name))  # specific first
    for preset, gpu in rows:
        if gpu.torch_name.lower() in device_name.lower():
            return preset
    return None
