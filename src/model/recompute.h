// Gradient checkpointing (HF `gradient_checkpointing`): a block's forward runs without keeping
// its activations; backward runs it again with autograd on and back-propagates through the
// recomputed graph. What PyTorch's reentrant torch.utils.checkpoint does: the block's parameter
// gradients accumulate into their .grad inside the outer backward, so use loss.backward() (not
// torch::autograd::grad over parameters) with it.
#pragma once
#include <torch/torch.h>

#include <functional>

namespace refract::model {

using BlockFn = std::function<torch::Tensor(const torch::Tensor&)>;

// fn(x) without stored activations when autograd records and x or `block`'s parameters need
// gradients (fn runs `block`); plain fn(x) otherwise (inference, KV-cache decoding, a frozen block
// fed by frozen ones). fn runs again during backward, after the caller returned: it must capture
// by value, and read no tensor that changes between forward and backward. Dropout draws the same
// masks (the generator state is restored). Tensors fn captures besides x (rotary tables, masks)
// get no gradient.
torch::Tensor checkpointed(torch::nn::Module& block, const BlockFn& fn, const torch::Tensor& x);

}  // namespace refract::model
