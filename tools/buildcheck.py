"""`make build`'s last step: every wheel and native library `sam build` put under .aws-sam/build
must run on arm64 (the template's Architectures), or the first cold start fails to import it.

    python -m tools.buildcheck .aws-sam/build

Each `*.dist-info/WHEEL` must carry a platform tag that is `any` or an aarch64 one, and each
shared library (`*.so`) must be an ELF file for AArch64. Exit status 1 names the offenders.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

#: ELF e_machine of AArch64; x86-64 is 62.
EM_AARCH64 = 183
_EM = {62: "x86_64", 183: "aarch64", 3: "x86"}


def wheel_tags(build: Path) -> Iterator[tuple[Path, str]]:
    for wheel in sorted(build.rglob("*.dist-info/WHEEL")):
        for line in wheel.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("Tag:"):
                yield wheel.parent, line.split(":", 1)[1].strip()


def elf_machine(path: Path) -> int | None:
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    if header[5] == 1:
        return int.from_bytes(header[18:20], "little")
    return int.from_bytes(header[18:20], "big")


def problems(build: Path) -> tuple[list[str], int, int]:
    """(offenders, wheels seen, libraries seen)."""
    found: list[str] = []
    wheels = {dist for dist, _ in wheel_tags(build)}
    for dist, tag in wheel_tags(build):
        platform = tag.rsplit("-", 1)[-1]
        if platform != "any" and "aarch64" not in platform and "arm64" not in platform:
            found.append(f"{dist.name}: wheel tag {tag}")
    libraries = sorted(build.rglob("*.so*"))
    for library in libraries:
        machine = elf_machine(library) if library.is_file() else None
        if machine is not None and machine != EM_AARCH64:
            found.append(f"{library.relative_to(build)}: {_EM.get(machine, machine)} code")
    return found, len(wheels), len(libraries)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    build = Path(args[0] if args else ".aws-sam/build")
    if not build.is_dir():
        print(f"{build}: no build output (run sam build first)", file=sys.stderr)
        return 1
    found, wheels, libraries = problems(build)
    if found:
        print(f"not arm64 ({len(found)}):", *found, sep="\n  ", file=sys.stderr)
        return 1
    print(f"arm64 check: {wheels} wheels, {libraries} shared libraries under {build}: all arm64")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
