"""Helpers shared by the benchmark scripts in bench/ (they import it from their own folder)."""
import os

# The /proc/cpuinfo flags that decide which kernel path runs; every figure names them.
KERNEL_FLAGS = ["avx2", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8"]


def cpu_line():
    """'<model name>, <n> CPUs; <kernel flags present>' for the machine running the bench."""
    model, flags = "", []
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    return f"{model}, {os.cpu_count()} CPUs; " + " ".join(f for f in KERNEL_FLAGS if f in flags)
