"""`make build`'s arm64 check (tools/buildcheck.py) over a made-up .aws-sam/build tree."""

from __future__ import annotations

from pathlib import Path

from tools.buildcheck import main, problems

ELF_HEADER = b"\x7fELF\x02\x01\x01" + b"\x00" * 11  # 64-bit little-endian, machine at 18


def _wheel(build: Path, name: str, tag: str) -> None:
    dist = build / "SharedLayer" / "python" / f"{name}.dist-info"
    dist.mkdir(parents=True)
    (dist / "WHEEL").write_text(f"Wheel-Version: 1.0\nTag: {tag}\n")


def _library(build: Path, name: str, machine: int) -> None:
    path = build / "SharedLayer" / "python" / name
    path.write_bytes(ELF_HEADER + machine.to_bytes(2, "little") + b"\x00" * 40)


def test_arm64_and_pure_wheels_pass(tmp_path: Path) -> None:
    _wheel(tmp_path, "requests-2.0", "py3-none-any")
    _wheel(tmp_path, "pydantic_core-2.0", "cp312-cp312-manylinux_2_17_aarch64")
    _library(tmp_path, "_pydantic_core.cpython-312-aarch64-linux-gnu.so", 183)
    assert problems(tmp_path) == ([], 2, 1)
    assert main([str(tmp_path)]) == 0


def test_an_x86_64_wheel_or_library_fails(tmp_path: Path) -> None:
    _wheel(tmp_path, "pydantic_core-2.0", "cp312-cp312-manylinux2014_x86_64")
    _library(tmp_path, "_pydantic_core.cpython-312-x86_64-linux-gnu.so", 62)
    found, _, _ = problems(tmp_path)
    assert len(found) == 2
    assert "x86_64" in found[0] and "x86_64 code" in found[1]
    assert main([str(tmp_path)]) == 1
