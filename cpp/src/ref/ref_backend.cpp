#include "ref/ref_backend.h"

#include "ref/ref_ops.h"

namespace mambart {
namespace {

class RefBackend final : public HostBackend {
 public:
  std::string name() const override { return "ref"; }
  void embed(const EmbedParams& p) override { ref::embed(p); }
  void add_norm(const AddNormParams& p) override { ref::add_norm(p); }
  void matmul(const MatmulParams& p) override { ref::matmul(p); }
  void conv1d(const Conv1dParams& p) override { ref::conv1d(p); }
  void scan(const ScanParams& p) override { ref::scan(p); }
  void sample(const SampleParams& p) override { ref::sample(p); }
};

}  // namespace

std::shared_ptr<Backend> make_ref_backend() { return std::make_shared<RefBackend>(); }

}  // namespace mambart
