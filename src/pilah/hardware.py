"""The processor and runtime versions a result was produced on.

Fast int8 kernels are chosen per processor at run time, so a figure or an answer is only explained together
with the instruction sets the process really has. They are read through NumPy's CPUID probe, not from
`/proc/cpuinfo`, so an emulated processor (`qemu-x86_64 -cpu Haswell`) reports what it emulates.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path

# The instruction sets that decide which int8 and float kernels ONNX Runtime, TensorFlow and TFLite run.
RELEVANT_FEATURES = (
    "AVX2",
    "FMA3",
    "AVX512F",
    "AVX512BW",
    "AVX512VNNI",
    "AVX512BF16",
    "AVX512FP16",
    "NEON",
    "ASIMD",
    "ASIMDDP",
    "SVE",
)
RUNTIMES = ("onnxruntime", "tensorflow-cpu", "tensorflow", "keras", "numpy")


def cpu_features() -> list[str]:
    """The relevant instruction sets this process can use."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # NumPy < 2
        from numpy.core._multiarray_umath import __cpu_features__ as features
    return [name for name in RELEVANT_FEATURES if features.get(name)]


def cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown processor"


def runtime_versions() -> dict[str, str]:
    """Installed versions of the runtimes that compute Pilah's answers (absent ones left out)."""
    versions = {}
    for name in RUNTIMES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def describe() -> str:
    """One line for logs and benchmark tables, e.g. `x86_64 AMD EPYC; AVX2 FMA3 AVX512F ...; onnxruntime 1.32.0`."""
    features = " ".join(cpu_features()) or "no AVX2/NEON"
    versions = ", ".join(f"{name} {version}" for name, version in runtime_versions().items())
    return f"{platform.machine()} {cpu_name()}; {features}; {versions}"


if __name__ == "__main__":
    print(describe())
