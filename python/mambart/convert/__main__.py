"""python -m mambart.convert SRC DST [--dtype ...] [--force]"""
import sys

from .cli import main_convert

sys.exit(main_convert(sys.argv[1:], prog="python -m mambart.convert"))
