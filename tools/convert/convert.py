#!/usr/bin/env python3
"""Converts a Mamba-1 checkpoint into the mambart layout (same as `mambart convert`); works from a source checkout."""
import sys
from pathlib import Path

try:
    from mambart.convert import main_convert
except ImportError:  # not installed: use the checkout's python/ folder
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "python"))
    from mambart.convert import main_convert

if __name__ == "__main__":
    sys.exit(main_convert(sys.argv[1:], prog="tools/convert/convert.py"))
