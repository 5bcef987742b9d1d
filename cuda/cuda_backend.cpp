// The CUDA backend: device memory, one stream, the kernels of this folder, cuBLAS at run time, CUDA graphs.
#include "cuda_backend.h"

#include <cstdio>
#include <cstdlib>
#include <vector>
#include <map>
#include <mutex>
#include <utility>

#include <cuda_runtime.h>

#include "cuda_check.h"
#include "error.h"
#include "cublas_loader.h"
#include "decode_batch.h"
#include "decode_layer.h"
#include "decode_step.h"
#include "kernels.h"

namespace mambart {

bool cuda_device_available() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return n > 0;
}

namespace {

// Makes the backend's device current for the calling thread and restores nothing (cheap when already current).
class DeviceGuard {
 public:
  explicit DeviceGuard(int dev) {
    int cur = -1;
    if (cudaGetDevice(&cur) != cudaSuccess || cur != dev) MAMBART_CUDA_CHECK(cudaSetDevice(dev));
  }
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int dev) : dev_(dev), name_(cuda::str("cuda:", dev)) {
    DeviceGuard g(dev_);
    MAMBART_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    MAMBART_CUDA_CHECK(cudaDeviceGetAttribute(&num_sms_, cudaDevAttrMultiProcessorCount, dev_));
    const char* g_env = std::getenv("MAMBART_CUDA_GRAPHS");
    graphs_enabled_ = !(g_env && std::string(g_env) == "0");
    int major = 0;
    MAMBART_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev_));
    const char* pdl_env = std::getenv("MAMBART_CUDA_PDL");
    cuda::pdl_enabled() = major >= 9 && !(pdl_env && std::string(pdl_env) == "0");
    const char* early_env = std::getenv("MAMBART_CUDA_PDL_EARLY");
    cuda::pdl_early() = cuda::pdl_enabled() && !(early_env && std::string(early_env) == "0");
    // MAMBART_CUDA_FUSED: 1 forces the fused decode layer, 0 turns it off, unset picks by size (see decode_layer).
    const char* f_env = std::getenv("MAMBART_CUDA_FUSED");
    fused_mode_ = !f_env ? -1 : std::string(f_env) == "0" ? 0 : 1;
    // MAMBART_CUDA_PERSISTENT: 1 forces the persistent decode step, 0 turns it off (layers then run one by one),
    // unset picks by size (see decode_layers).
    const char* s_env = std::getenv("MAMBART_CUDA_PERSISTENT");
    persistent_mode_ = !s_env ? -1 : std::string(s_env) == "0" ? 0 : 1;
    // MAMBART_STEP_PREFETCH_STATE=0: no L2 prefetch of the persistent step's state rows and small weights (bench).
    const char* ps_env = std::getenv("MAMBART_STEP_PREFETCH_STATE");
    step_prefetch_state_ = !(ps_env && std::string(ps_env) == "0");
    // MAMBART_CUDA_BATCHED: the batched decode step for 9..256 rows (decode_batch.cpp). Unset: used where it applies
    // unless MAMBART_CUDA_FUSED=0; 0: off (the ops composed); 1: required, an InvalidArgument when it does not apply
    // (tests: proves the path ran).
    const char* bt_env = std::getenv("MAMBART_CUDA_BATCHED");
    batched_mode_ = !bt_env ? -1 : std::string(bt_env) == "0" ? 0 : 1;
    MAMBART_CUDA_CHECK(cudaMalloc(&step_barrier_, 128));
    MAMBART_CUDA_CHECK(cudaMemset(step_barrier_, 0, 128));
    // MAMBART_STEP_TIMING=<file>: stamp the stages of the persistent decode step; the last step's per-stage times
    // are written to <file> when the backend is destroyed (diagnostics).
    if (const char* t_env = std::getenv("MAMBART_STEP_TIMING")) {
      timing_path_ = t_env;
      MAMBART_CUDA_CHECK(cudaMalloc(&step_timing_, size_t(kTimingLayers) * 8 * size_t(num_sms_) * sizeof(long long)));
    }
    const char* b_env = std::getenv("MAMBART_CUBLAS");  // read once, at creation
    if (b_env && std::string(b_env) == "0") {
      cublas_tried_ = true;
      cublas_why_ = "disabled by MAMBART_CUBLAS=0";
    }
  }
  ~CudaBackend() override {
    cudaSetDevice(dev_);
    for (auto& kv : graphs_) cudaGraphExecDestroy(kv.second);
    cublas_.reset();
    if (sample_scratch_.p) cudaFree(sample_scratch_.p);
    if (scan_scratch_.p) cudaFree(scan_scratch_.p);
    if (step_timing_) write_timing();
    if (step_barrier_) cudaFree(step_barrier_);
    if (cublas_ws_) cudaFree(cublas_ws_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::string name() const override { return name_; }
  bool host_addressable() const override { return false; }
  DType act_dtype(DType weight_dtype) const override { return weight_dtype; }

  void* alloc(size_t bytes) override {
    DeviceGuard g(dev_);
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      if (e == cudaErrorMemoryAllocation)
        throw OutOfMemory(cuda::str("out of GPU memory on ", name_, " allocating ", bytes, " bytes"), bytes);
      throw DeviceError(cuda::str("cudaMalloc(", bytes, " bytes) on ", name_, " failed: ", cudaGetErrorString(e)));
    }
    return p;
  }
  void free(void* p) noexcept override {
    if (!p) return;
    cudaSetDevice(dev_);
    cudaFree(p);
  }
  void copy_from_host(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    DeviceGuard g(dev_);
    check_not_capturing("copy_from_host");
    MAMBART_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    MAMBART_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host buffer may be reused on return
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    DeviceGuard g(dev_);
    check_not_capturing("copy_to_host");
    MAMBART_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    MAMBART_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    DeviceGuard g(dev_);
    MAMBART_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void fill_zero(void* p, size_t bytes) override {
    if (!bytes) return;
    DeviceGuard g(dev_);
    MAMBART_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream_));
  }
  void synchronize() override {
    DeviceGuard g(dev_);
    MAMBART_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  void embed(const EmbedParams& p) override { DeviceGuard g(dev_); cuda::launch_embed(p, stream_); }
  void add_norm(const AddNormParams& p) override { DeviceGuard g(dev_); cuda::launch_add_norm(p, stream_); }
  void matmul(const MatmulParams& p) override {
    DeviceGuard g(dev_);
    cuda::launch_matmul(p, cuda::gemv_applicable(p) ? nullptr : cublas(), stream_);
  }
  void conv1d(const Conv1dParams& p) override { DeviceGuard g(dev_); cuda::launch_conv1d(p, stream_); }
  void scan(const ScanParams& p) override {
    DeviceGuard g(dev_);
    const size_t need = cuda::scan_scratch_bytes(p, num_sms_);  // the prefill scan's time segments (0: none)
    void* ws = need ? scan_scratch(need) : nullptr;
    cuda::launch_scan(p, num_sms_, stream_, ws, ws ? need : 0);
  }
  // Fused decode layer for batch <= 8 (decode_layer.cpp), the batched step for 9..256 rows (decode_batch.cpp).
  // Otherwise (or with MAMBART_CUDA_FUSED=0) the ops composed, with out_proj accumulated into the fp32 residual: by
  // the GEMV's residual epilogue (batch <= 8) or cuBLAS with beta = 1 (no bias), else the default composition
  // (out_proj, then add_norm for the residual).
  void decode_layer(const DecodeLayerParams& p) override {
    DeviceGuard g(dev_);
    if (batched(&p, 1)) {
      cuda::launch_decode_batch(&p, 1, cublas(), stream_);
      return;
    }
    std::string why;
    // Auto: fused only for narrow models. Measured on an H100 (fp16, batch 1, docs/BENCHMARKS.md): fused vs
    // unfused 0.425 / 0.552 ms at d_model 768, but 2.117 / 1.960 at 2048 and 3.620 / 3.452 at 2560.
    const bool fused = fused_mode_ == 1 || (fused_mode_ == -1 && p.d_model <= 1024);
    if (fused && cuda::decode_layer_fusable(p, &why)) {
      cuda::launch_decode_layer(p, stream_);
      return;
    }
    MatmulParams m;
    m.M = p.batch; m.N = p.d_model; m.K = p.d_inner; m.x = p.y; m.ldx = p.d_inner; m.w = p.out_proj_w;
    m.w_dtype = p.w_dtype; m.y = p.residual; m.ldy = p.d_model; m.act_dtype = p.act_dtype; m.y_dtype = DType::F32;
    m.bias = p.out_proj_b;
    const bool gemv = cuda::gemv_applicable(m);
    cuda::Cublas* blas = gemv || p.out_proj_b ? nullptr : cublas();
    if ((!gemv && !blas) || !cuda::supports_matmul(m, &why)) {
      Backend::decode_layer(p);
      return;
    }
    decode_layer_mixer(p);
    if (gemv) cuda::launch_gemv_residual(m, stream_);  // residual += out_proj(y)
    else blas->gemm(m, stream_, 1.f);
  }
  // All layers of a decode step as one persistent cooperative kernel (decode_step.cu) when it applies.
  void decode_layers(const DecodeLayerParams* layers, int64_t n) override {
    DeviceGuard g(dev_);
    std::string why;
    // Auto: persistent only for wide models. Measured on an H100 (fp16, batch 1, docs/BENCHMARKS.md): at
    // d_model 768 its 4 grid barriers and latency-bound stages per layer cost more than the per-layer kernels.
    const bool persistent = persistent_mode_ == 1 || (persistent_mode_ == -1 && layers[0].d_model > 1024);
    if (persistent && cuda::decode_step_applicable(layers, n, dev_, &why)) {
      long long* timing = step_timing_ && n <= kTimingLayers ? step_timing_ : nullptr;
      if (timing) timed_layers_ = n;
      cuda::launch_decode_step(layers, n, static_cast<unsigned*>(step_barrier_), timing, num_sms_,
                               step_prefetch_state_, stream_);
      return;
    }
    if (batched(layers, n)) {  // the out_proj result of a layer is added by the next one's add_norm
      cuda::launch_decode_batch(layers, n, cublas(), stream_);
      return;
    }
    Backend::decode_layers(layers, n);
  }
  void sample(const SampleParams& p) override {
    DeviceGuard g(dev_);
    SampleParams q = p;
    q.step_counter = nullptr;
    cuda::launch_sample(q, sample_scratch(p.rows), stream_);
  }
  // The step is read from device memory and incremented there: recordable in the decode graph.
  void sample_step(const SampleParams& p) override {
    DeviceGuard g(dev_);
    if (!p.step_counter) throw InvalidArgument("sample_step needs a step counter");
    cuda::launch_sample(p, sample_scratch(p.rows), stream_);
  }

  // Captures `issue` into a CUDA graph the first time per (owner, key) and replays it afterwards.
  void run_recorded(const void* owner, uint64_t key, const std::function<void()>& issue) override {
    DeviceGuard g(dev_);
    if (!graphs_enabled_) {
      issue();
      return;
    }
    const auto k = std::make_pair(owner, key);
    auto it = graphs_.find(k);
    if (it == graphs_.end()) {
      cublas();  // load (and allocate its workspace) before capturing: no allocation inside a capture
      MAMBART_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
      cudaGraph_t graph = nullptr;
      try {
        issue();
      } catch (...) {
        cudaStreamEndCapture(stream_, &graph);
        if (graph) cudaGraphDestroy(graph);
        (void)cudaGetLastError();
        throw;
      }
      MAMBART_CUDA_CHECK(cudaStreamEndCapture(stream_, &graph));
      cudaGraphExec_t exec = nullptr;
      const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
      cudaGraphDestroy(graph);
      MAMBART_CUDA_CHECK(e);
      it = graphs_.emplace(k, exec).first;
    }
    MAMBART_CUDA_CHECK(cudaGraphLaunch(it->second, stream_));
  }
  void forget_recorded(const void* owner) override {
    cudaSetDevice(dev_);
    for (auto it = graphs_.begin(); it != graphs_.end();) {
      if (it->first.first == owner) {
        cudaGraphExecDestroy(it->second);
        it = graphs_.erase(it);
      } else {
        ++it;
      }
    }
  }

  int64_t chunk_tokens() const override { return 4096; }

 private:
  // Whether the batched decode step runs these layers (batch > 8; MAMBART_CUDA_BATCHED, MAMBART_CUDA_FUSED).
  bool batched(const DecodeLayerParams* layers, int64_t n) {
    if (n < 1 || layers[0].batch <= 8 || batched_mode_ == 0 || (batched_mode_ == -1 && fused_mode_ == 0)) return false;
    std::string why;
    if (cuda::decode_batch_applicable(layers, n, &why)) return true;
    if (batched_mode_ == 1) throw InvalidArgument("cuda batched decode (MAMBART_CUDA_BATCHED=1): " + why);
    return false;
  }
  void check_not_capturing(const char* what) {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    MAMBART_CUDA_CHECK(cudaStreamIsCapturing(stream_, &st));
    if (st != cudaStreamCaptureStatusNone)
      throw DeviceError(cuda::str(name_, ": ", what, " inside a recorded (CUDA graph) region is not allowed"));
  }
  // A device buffer that grows on demand, outside graph captures only: inside one (or out of memory) grow()
  // returns nullptr and the caller takes its path without scratch. Growing waits for the stream (the old buffer
  // may still be in use) and, if asked, zeroes the new one.
  struct Scratch {
    void* p = nullptr;
    size_t bytes = 0;
  };
  void* grow(Scratch& s, size_t need, bool zero) {
    if (need <= s.bytes) return s.p;
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream_, &st) != cudaSuccess || st != cudaStreamCaptureStatusNone) return nullptr;
    MAMBART_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (s.p) cudaFree(s.p);
    s = Scratch{};
    if (cudaMalloc(&s.p, need) != cudaSuccess) {
      (void)cudaGetLastError();
      s.p = nullptr;
      return nullptr;
    }
    if (zero) MAMBART_CUDA_CHECK(cudaMemset(s.p, 0, need));
    s.bytes = need;
    return s.p;
  }
  // Zeroed scratch of the greedy sampler (nullptr: the one-block path).
  void* sample_scratch(int64_t rows) { return grow(sample_scratch_, cuda::sample_scratch_bytes(rows), true); }
  // The prefill scan's time segments (nullptr: one segment): (segments x batch x d_inner x d_state) floats.
  void* scan_scratch(size_t need) { return grow(scan_scratch_, need, false); }
  cuda::Cublas* cublas() {
    if (!cublas_tried_) {
      cublas_tried_ = true;
      const size_t ws = size_t(32) << 20;
      if (cudaMalloc(&cublas_ws_, ws) != cudaSuccess) {
        (void)cudaGetLastError();
        cublas_ws_ = nullptr;
        cublas_why_ = "no memory for the cuBLAS workspace";
        return nullptr;
      }
      cublas_ = cuda::Cublas::load(cublas_ws_, ws, &cublas_why_);
      if (!cublas_) {
        cudaFree(cublas_ws_);
        cublas_ws_ = nullptr;
      }
    }
    return cublas_.get();
  }

  int dev_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  int num_sms_ = 1;
  bool graphs_enabled_ = true;
  int fused_mode_ = -1;  // -1 auto, 0 off, 1 on
  int persistent_mode_ = -1;  // -1 auto, 0 off, 1 on
  bool step_prefetch_state_ = true;
  int batched_mode_ = -1;  // -1 auto, 0 off, 1 required
  void* step_barrier_ = nullptr;  // the persistent decode kernel's grid barrier word
  static constexpr int64_t kTimingLayers = 256;
  long long* step_timing_ = nullptr;  // MAMBART_STEP_TIMING stamps
  int64_t timed_layers_ = 0;
  std::string timing_path_;
  void write_timing() noexcept {
    if (timed_layers_ > 0 && cudaStreamSynchronize(stream_) == cudaSuccess) {
      std::vector<long long> h(size_t(timed_layers_) * 8 * size_t(num_sms_));
      int khz = 0;
      if (cudaMemcpy(h.data(), step_timing_, h.size() * sizeof(long long), cudaMemcpyDeviceToHost) == cudaSuccess &&
          cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, dev_) == cudaSuccess) {
        try {
          const std::string r = cuda::decode_step_timing_report(h.data(), int(timed_layers_), num_sms_, khz);
          if (FILE* f = std::fopen(timing_path_.c_str(), "a")) {
            std::fputs(r.c_str(), f);
            std::fclose(f);
          }
        } catch (...) {
        }
      }
    }
    cudaFree(step_timing_);
    step_timing_ = nullptr;
  }
  std::map<std::pair<const void*, uint64_t>, cudaGraphExec_t> graphs_;
  bool cublas_tried_ = false;
  std::unique_ptr<cuda::Cublas> cublas_;
  void* cublas_ws_ = nullptr;
  std::string cublas_why_;
  Scratch sample_scratch_, scan_scratch_;
};

}  // namespace

std::shared_ptr<Backend> make_cuda_backend(const BackendOptions& opt) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    throw DeviceError(cuda::str("no usable CUDA device: ", cudaGetErrorString(e)));
  }
  if (n <= 0) throw DeviceError("no CUDA device found");
  if (opt.device_index < 0 || opt.device_index >= n)
    throw DeviceError(cuda::str("CUDA device ", opt.device_index, " does not exist (", n, " device(s) present)"));
  return std::make_shared<CudaBackend>(opt.device_index);
}

}  // namespace mambart
