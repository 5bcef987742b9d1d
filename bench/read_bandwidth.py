"""Ceilings for the batch-1 decode GEMVs on this GPU (torch, in one process): device-to-device copy (read + write,
as bench_gpu.py's floor), a pure read (a sum over a large fp16 tensor), and cuBLAS GEMV at M = 1 (torch's linear)
over the in_proj / out_proj shapes of mamba-2.8b with 64 distinct weights (so nothing stays in L2).
  python3 bench/read_bandwidth.py"""
import torch


def timed(fn, reps=20):
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b) / 1e3)
    return sorted(ts)[len(ts) // 2]


def main():
    dev = torch.cuda.get_device_name(0)
    n = 1 << 31  # 2^31 fp16 = 4 GiB
    x = torch.randn(n, device="cuda", dtype=torch.float16)
    y = torch.empty_like(x)
    t = timed(lambda: y.copy_(x))
    print(f"{dev}: copy {2 * x.numel() * 2 / t / 1e9:.0f} GB/s (read + write)")
    t = timed(lambda: x.sum(dtype=torch.float32))
    print(f"{dev}: read (sum) {x.numel() * 2 / t / 1e9:.0f} GB/s")
    del x, y
    for name, (nout, k) in {"in_proj 2.8b": (10240, 2560), "out_proj 2.8b": (2560, 5120)}.items():
        ws = [torch.randn(nout, k, device="cuda", dtype=torch.float16) for _ in range(64)]
        v = torch.randn(1, k, device="cuda", dtype=torch.float16)

        def run():
            for w in ws:
                torch.nn.functional.linear(v, w)

        t = timed(run, reps=10)
        print(f"{dev}: cuBLAS GEMV {name} ({nout}x{k}): {64 * nout * k * 2 / t / 1e9:.0f} GB/s, {t / 64 * 1e6:.1f} us each")


if __name__ == "__main__":
    main()
