"""A plain-text progress bar on stderr (no tqdm): redrawn in place on a terminal, a line per 10% otherwise."""
import sys
import time

MIN_BYTES = 64 * 1024 * 1024  # smaller conversions finish too fast to need a bar


class Progress:
    def __init__(self, total, label="converting", enabled=True, stream=None, min_bytes=MIN_BYTES):
        self.total, self.label, self.done = max(int(total), 1), label, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled and total >= min_bytes
        self.tty = self.enabled and getattr(self.stream, "isatty", lambda: False)()
        self._last_draw, self._last_decile = 0.0, 0

    def update(self, nbytes):
        self.done += nbytes
        if not self.enabled:
            return
        frac = min(self.done / self.total, 1.0)
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw >= 0.1 or frac >= 1.0:
                self._last_draw = now
                bar = "#" * int(frac * 30)
                self.stream.write(f"\r{self.label} [{bar:<30}] {frac:4.0%} "
                                  f"{self.done / 2**30:.2f}/{self.total / 2**30:.2f} GiB")
                self.stream.flush()
        elif int(frac * 10) > self._last_decile:
            self._last_decile = int(frac * 10)
            self.stream.write(f"{self.label}: {frac:.0%} of {self.total / 2**30:.2f} GiB\n")
            self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
