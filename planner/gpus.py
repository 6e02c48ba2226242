"""GPU presets: dense bf16 peaks and memory from the vendors' datasheets, and the names torch
reports for them."""

from __future__ import annotations

# Dense bf16 (V100: fp16) tensor-core peaks in TFLOP/s, and memory in GB, from the datasheets.
GPU_PRESETS: dict[str, tuple[float, float]] = {
    "v100": (125.0, 32.0),
    "a100": (312.0, 80.0),
    "a100-40gb": (312.0, 40.0),
    "h100-sxm": (989.0, 80.0),
    "h100-pcie": (756.0, 80.0),
    "h200": (989.0, 141.0),
    "b200": (2250.0, 180.0),
    "l40s": (362.0, 48.0),
    "mi300x": (1307.0, 192.0),
}
# Names torch.cuda.get_device_name() returns, to match a measured device to a preset.
GPU_NAME_PATTERNS: list[tuple[str, str]] = [
    ("H100 PCIe", "h100-pcie"),
    ("H100", "h100-sxm"),
    ("H200", "h200"),
    ("A100", "a100"),
    ("V100", "v100"),
    ("B200", "b200"),
    ("L40S", "l40s"),
    ("MI300X", "mi300x"),
]


def gpu_preset_for_name(device_name: str | None) -> str | None:
    """The preset of a CUDA device name such as 'NVIDIA H100 80GB HBM3', or None."""
    if not device_name:
        return None
    for pattern, preset in GPU_NAME_PATTERNS:
        if pattern.lower() in device_name.lower():
            return preset
    return None
