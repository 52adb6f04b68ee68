"""Every pykittens option in one place, each readable from one environment variable.

==========================  ======================================================  ============================
variable                    meaning                                                 default
==========================  ======================================================  ============================
PYKITTENS_CACHE_DIR         on-disk cache of compiled cubins                        ~/.cache/pykittens
PYKITTENS_INTERPRET         1: run every kernel in the CPU interpreter              0
PYKITTENS_ARCH              override the compile target (e.g. sm_90a, sm_80)        the launching GPU's arch
PYKITTENS_DEBUG             1: keep line info in cubins (-lineinfo), verbose logs   0
PYKITTENS_DISABLE_CACHE     1: never read the disk cache                            0
==========================  ======================================================  ============================
"""
import os
from dataclasses import dataclass, field
from pathlib import Path


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").lower() in ("1", "true", "yes", "on")


@dataclass
class Settings:
    cache_dir: Path = field(default_factory=lambda: Path(
        os.environ.get("PYKITTENS_CACHE_DIR", Path.home() / ".cache" / "pykittens")))
    interpret: bool = field(default_factory=lambda: _flag("PYKITTENS_INTERPRET"))
    arch: str | None = field(default_factory=lambda: os.environ.get("PYKITTENS_ARCH") or None)
    debug: bool = field(default_factory=lambda: _flag("PYKITTENS_DEBUG"))
    disable_cache: bool = field(default_factory=lambda: _flag("PYKITTENS_DISABLE_CACHE"))


settings = Settings()
