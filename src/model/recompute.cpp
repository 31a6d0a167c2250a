#include "model/recompute.h"

#include "model/autocast.h"

#include <mutex>

namespace refract::model {
namespace {

// The block function travels to backward in the autograd context as a capsule.
struct BlockFnHolder : torch::CustomClassHolder {
  explicit BlockFnHolder(BlockFn f) : fn(std::move(f)) {}
  BlockFn fn;
};

// Dropout (LoRA's lora_dropout) must draw the same mask when the block runs again: the
// generator state of the input's device is saved at forward and restored around the
// recomputation (torch.utils.checkpoint's preserve_rng_state).
at::Generator generator_of(const torch::Tensor& x) { return at::globalContext().defaultGenerator(x.device()); }

struct RecomputeFunction : torch::autograd::Function<RecomputeFunction> {
  // `anchor` (an empty tensor that requires grad) makes the output part of the graph even when x
  // does not need a gradient (LoRA on a frozen embedding): the block's own parameters may.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const BlockFn& fn, const torch::Tensor& x,
                               const torch::Tensor& anchor) {
    ctx->saved_data["fn"] = c10::IValue::make_capsule(c10::make_intrusive<BlockFnHolder>(fn));
    ctx->saved_data["x"] = x;  // the input only: that is what checkpointing keeps
    {
      at::Generator gen = generator_of(x);
      std::lock_guard<std::mutex> lock(gen.mutex());
      ctx->saved_data["rng"] = gen.get_state();
    }
    // bf16 autocast, if on, must be on again for the recomputation (backward runs outside it).
    const AutocastState ac = autocast_state(x.device().type());
    ctx->saved_data["autocast"] = ac.enabled;
    torch::NoGradGuard no_grad;
    return fn(x);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto holder = c10::static_intrusive_pointer_cast<BlockFnHolder>(ctx->saved_data["fn"].toCapsule());
    const torch::Tensor saved = ctx->saved_data["x"].toTensor();
    torch::Tensor x = saved.detach().requires_grad_(saved.requires_grad());
    torch::Tensor y;
    {
      at::Generator gen = generator_of(x);
      torch::Tensor now;
      {
        std::lock_guard<std::mutex> lock(gen.mutex());
        now = gen.get_state();
        gen.set_state(ctx->saved_data["rng"].toTensor());
      }
      torch::AutoGradMode grad_on(true);
      AutocastScope autocast(x.device().type(), AutocastState{ctx->saved_data["autocast"].toBool(), torch::kBFloat16});
      y = holder->fn(x);
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(now);
    }
    if (y.requires_grad()) torch::autograd::backward({y}, {grads[0]});
    // No gradient for the function argument or the anchor; x's gradient (if it needs one).
    return {torch::Tensor(), x.requires_grad() ? x.grad() : torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor checkpointed(torch::nn::Module& block, const BlockFn& fn, const torch::Tensor& x) {
  if (!torch::GradMode::is_enabled()) return fn(x);
  bool needs_grad = x.requires_grad();
  for (const auto& p : block.parameters()) needs_grad = needs_grad || p.requires_grad();
  if (!needs_grad) return fn(x);
  auto anchor = torch::empty({0}, x.options().dtype(torch::kFloat32)).requires_grad_(true);
  return RecomputeFunction::apply(fn, x, anchor);
}

}  // namespace refract::model
