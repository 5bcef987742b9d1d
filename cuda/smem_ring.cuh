// Weights streamed through a ring of shared-memory stages, and the block GEMV that reads them: the persistent decode
// step's in_proj and out_proj (decode_step.cu).
//
// Why: the register GEMV (block_gemv) keeps ~5 loads of 16 bytes per thread in flight, ~40 KB per SM; measured on
// an H200 its in_proj and out_proj stages stream at ~2.9 TB/s, 69% of the copy bandwidth. Here the copies of the
// next (ns - 1) stages (16 or 32 KB each) are in flight per SM without holding registers, issued before the
// current stage is read, so the stream also runs through the norm at a stage's start.
//
// Two producers (Ring::bulk):
//   cp.async (default): every warp copies its own piece of each stage with 16-byte cp.async per lane and waits
//     for its own commit groups: no barrier between warps at all.
//   bulk copy engine (MAMBART_STEP_RING_COPY=bulk, sm_90): thread 0 issues one cp.async.bulk per stage,
//     completing on the slot's `full` mbarrier; the warps release slots on its `empty` mbarrier. Measured on an
//     H200 (2.8b, batch 1): in_proj at ~1.2 TB/s, less than half of the register GEMV (docs/BENCHMARKS.md).
//
// A block's slice of a projection, rows [n0, n1) of w (N, K), is one contiguous byte range (rows are K apart).
// It is cut into ring stages of NW pieces of P 16-byte chunks; warp w reads piece w of every stage. With
// C = K / VEC chunks per row a multiple of 32 and >= 64, the 32 lanes of a group of a piece always sit in one
// row: the lanes accumulate their chunks per row and a warp sum ends each (piece, row) partial, written to a fixed
// slot (part[piece][row - first row of piece][m]). One thread per row then adds its partials in piece order:
// the result is the same run after run (no atomics).
#pragma once
#include <cstdint>

#include "common.cuh"

namespace mambart {
namespace cuda {

constexpr int kRingMaxStages = 16;

// A view of the ring: ns slots of a stage's bytes at buf and, with the bulk producer, a `full` (the slot's copy
// landed: 1 arrival + the bytes) and an `empty` mbarrier (every warp is done reading it: one arrival per warp) per
// slot. Ring stage u lives in slot u % ns; the caller numbers the stages (ring_open's `first`), streams are read
// in the order opened. No counters live in the view: which stage to issue follows from the stage being read.
// (Measured: counters kept behind a reference went to local memory, and every check of them waited behind the
// ring's own copies in the load queue: 1.6 TB/s.)
struct Ring {
  char* buf;
  uint64_t* full;
  uint64_t* empty;
  unsigned ns;
  bool bulk;  // the bulk copy engine (else cp.async per warp; full / empty unused)
};

// Bytes [0, bytes) of src as ring stages [first, first + stages).
struct Stream {
  const char* src;
  int64_t bytes;
  unsigned first, stages;
};
template <int StageBytes>
__device__ __forceinline__ Stream stream_of(const void* src, int64_t bytes, unsigned first) {
  return Stream{static_cast<const char*>(src), bytes, first, unsigned((bytes + StageBytes - 1) / StageBytes)};
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void mbar_init(uint64_t* bar, unsigned count) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count) : "memory");
#endif
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)) : "memory");
#endif
}
// Waits until the phase of `parity` of bar has completed (the current phase or the one before it).
__device__ __forceinline__ void mbar_wait(uint64_t* bar, unsigned parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  unsigned done = 0;
  while (!done) {
    asm volatile("{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
                 : "=r"(done) : "r"(smem_u32(bar)), "r"(parity) : "memory");
  }
#endif
}
// One thread: copy `bytes` (a 16-byte multiple, both ends 16-byte aligned) from global src to shared dst; bar's
// phase completes when they have landed.
__device__ __forceinline__ void bulk_load(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
               ::"r"(smem_u32(dst)), "l"(src), "r"(bytes), "r"(smem_u32(bar))
               : "memory");
#else
  __trap();  // the host enables the ring on sm_90 and later only
#endif
}

// Pieces of P chunks per warp and ring stage; a piece of P chunks meets at most KS rows when C >= 64.
template <int MT> constexpr int ring_piece_chunks() { return MT <= 2 ? 64 : 128; }
template <int MT> constexpr int ring_piece_rows() { return ring_piece_chunks<MT>() / 64 + 1; }
template <int NW, int MT> constexpr int ring_stage_bytes() { return NW * ring_piece_chunks<MT>() * 16; }
// Floats of `part` for a slice of `chunks` 16-byte chunks.
template <int MT> __host__ __device__ constexpr int64_t ring_part_floats(int64_t chunks) {
  return (chunks + ring_piece_chunks<MT>() - 1) / ring_piece_chunks<MT>() * ring_piece_rows<MT>() * MT;
}

// Waits until at most n (0..15) of this thread's cp.async groups are pending.
__device__ __forceinline__ void cp_async_wait_n(unsigned n) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define MAMBART_WAIT_CASE(N) case N: asm volatile("cp.async.wait_group " #N ";" ::: "memory"); break;
  switch (n) {
    MAMBART_WAIT_CASE(0) MAMBART_WAIT_CASE(1) MAMBART_WAIT_CASE(2) MAMBART_WAIT_CASE(3) MAMBART_WAIT_CASE(4)
    MAMBART_WAIT_CASE(5) MAMBART_WAIT_CASE(6) MAMBART_WAIT_CASE(7) MAMBART_WAIT_CASE(8) MAMBART_WAIT_CASE(9)
    MAMBART_WAIT_CASE(10) MAMBART_WAIT_CASE(11) MAMBART_WAIT_CASE(12) MAMBART_WAIT_CASE(13) MAMBART_WAIT_CASE(14)
    default: asm volatile("cp.async.wait_group 15;" ::: "memory");
  }
#undef MAMBART_WAIT_CASE
#endif
}

// Every thread of the block, once per kernel, before any other use: sets up the ring's mbarriers (bulk producer).
template <int NW>
__device__ __forceinline__ void ring_init(const Ring& r) {
  if (r.bulk && threadIdx.x == 0) {
    for (unsigned s = 0; s < r.ns; ++s) {
      mbar_init(&r.full[s], 1);
      mbar_init(&r.empty[s], NW);
    }
  }
  __syncthreads();
}

// Issues the copy of the stream's stage u (a ring index; nothing past the stream's end). Bulk producer (thread 0
// only): one bulk copy; the slot is refilled once every warp has arrived on its `empty` barrier for the previous
// use. cp.async producer (every thread): the lanes of warp w copy piece w of the stage, one commit group; the
// warp has read the slot's previous use.
template <int NW, int MT>
__device__ __forceinline__ void ring_issue(const Ring& r, const Stream& s, unsigned u) {
  constexpr int SB = ring_stage_bytes<NW, MT>(), P = ring_piece_chunks<MT>();
  if (u >= s.first + s.stages) return;
  const unsigned slot = u % r.ns;
  if (r.bulk) {
    if (threadIdx.x != 0) return;
    const unsigned use = u / r.ns;
    if (use > 0) mbar_wait(&r.empty[slot], (use - 1) & 1);
    const int64_t off = int64_t(u - s.first) * SB;
    const int64_t left = s.bytes - off;
    bulk_load(r.buf + int64_t(slot) * SB, s.src + off, uint32_t(left < SB ? left : SB), &r.full[slot]);
    return;
  }
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t off = int64_t(u - s.first) * SB + int64_t(warp) * P * 16;  // this warp's piece, in bytes
  uint4* dst = reinterpret_cast<uint4*>(r.buf + int64_t(slot) * SB) + warp * P;
#pragma unroll
  for (int g = 0; g < P / 32; ++g) {
    const int64_t b = off + int64_t(g * 32 + lane) * 16;
    if (b < s.bytes) cp_async16(dst + g * 32 + lane, s.src + b);
  }
  cp_async_commit();
}

// Every thread: the stream of `bytes` of src as ring stages from `first` on (the caller advances its count by
// .stages); issues the first ns - 1 of them.
template <int NW, int MT>
__device__ __forceinline__ Stream ring_open(const Ring& r, const void* src, int64_t bytes, unsigned first) {
  const Stream s = stream_of<ring_stage_bytes<NW, MT>()>(src, bytes, first);
  for (unsigned u = first; u < first + r.ns - 1; ++u) ring_issue<NW, MT>(r, s, u);
  return s;
}

// Rows [n0, n1) of w times the M rows of x (shared memory, row stride K), the weights read from the ring stream
// `s` (opened by ring_open on those rows' bytes). C = K / VEC must be a multiple of 32 and at least 64. part: ring_part_floats
// of shared memory. epi(n, acc[MT]) runs once per row, on one thread. Ends with the block synced.
template <typename T, int MT, int NW, class Epi>
__device__ __forceinline__ void ring_gemv(const Ring& r, const Stream& s, int K, int n0, int n1, const T* x, int M,
                                          float* part, Epi epi) {
  constexpr int VEC = Vec<T>::n, P = ring_piece_chunks<MT>(), KS = ring_piece_rows<MT>();
  constexpr int SB = ring_stage_bytes<NW, MT>(), STAGE = SB / 16;
  const int C = K / VEC, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t total = int64_t(n1 - n0) * C;
  for (unsigned i = 0; i < s.stages; ++i) {
    const unsigned u = s.first + i, slot = u % r.ns;
    ring_issue<NW, MT>(r, s, u + r.ns - 1);  // into the slot of stage u - 1
    if (r.bulk) {
      mbar_wait(&r.full[slot], (u / r.ns) & 1);
    } else {  // stage u's group is done when no more than the groups committed after it are pending
      cp_async_wait_n(min(u + r.ns - 1, s.first + s.stages - 1) - u);
      __syncwarp();
    }
    const int64_t f0 = int64_t(i) * STAGE + int64_t(warp) * P;  // first chunk of this warp's piece in the slice
    if (f0 < total) {                                          // uniform over the warp
      const uint4* piece = reinterpret_cast<const uint4*>(r.buf + int64_t(slot) * SB) + warp * P;
      float* pp = part + f0 / P * KS * MT;
      int row = int(f0 / C), col = int(f0 - int64_t(row) * C), k = 0;
      float acc[MT];
#pragma unroll
      for (int m = 0; m < MT; ++m) acc[m] = 0.f;
      auto flush = [&]() {
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          const float v = warp_sum(acc[m]);
          if (lane == 0 && m < M) pp[k * MT + m] = v;
          acc[m] = 0.f;
        }
      };
      uint4 wv[P / 32];
#pragma unroll
      for (int g = 0; g < P / 32; ++g) wv[g] = piece[g * 32 + lane];
#pragma unroll
      for (int g = 0; g < P / 32; ++g) {
        if (f0 + g * 32 < total) {  // uniform
          if (col == C) {           // the piece crosses into the next row
            flush();
            ++row, ++k, col = 0;
          }
#pragma unroll
          for (int m = 0; m < MT; ++m)
            if (m < M) acc[m] += dot16(wv[g], reinterpret_cast<const uint4*>(x + int64_t(m) * K)[col + lane], T());
          col += 32;
        }
      }
      flush();
    }
    __syncwarp();
    if (r.bulk && lane == 0) mbar_arrive(&r.empty[slot]);
  }
  __syncthreads();
  for (int rr = threadIdx.x; rr < n1 - n0; rr += NW * 32) {
    const int64_t c0 = int64_t(rr) * C, c1 = c0 + C;
    float sum[MT];
#pragma unroll
    for (int m = 0; m < MT; ++m) sum[m] = 0.f;
    for (int64_t p = c0 / P; p * P < c1; ++p) {
      const int k = rr - int(p * P / C);  // the row's slot in piece p
#pragma unroll
      for (int m = 0; m < MT; ++m) sum[m] += part[(p * KS + k) * MT + m];
    }
    epi(n0 + rr, sum);
  }
  __syncthreads();
}

}  // namespace cuda
}  // namespace mambart
