#include "train/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "common/check.h"

namespace refract::train {
namespace {

constexpr double kF32 = 4.0;

// Bytes per element of the activations autograd keeps, by what produced them: h for the
// hidden-width tensors (the residual stream, norms, attention in / out), kv for K / V, i for
// the MLP's intermediate tensors. Without bf16 every tensor has the weights' dtype. With bf16
// (autocast, model/autocast.h) the residual stream and the norms stay fp32 while the matmul
// inputs the Linears keep and their outputs are bf16: of the 8 hidden-width tensors of a layer,
// 4 are fp32 and 4 bf16 (3 B on average); K, V and the MLP tensors are bf16.
struct Widths {
  double h = 4, kv = 4, i = 4;
};

// Bytes autograd keeps per decoder layer and token in refract's eager Qwen2 layer
// (model/text_model.cpp, layers.cpp), counted from the ops' saved tensors (autograd saves an
// input only when the gradient that needs it is wanted):
//   layer input (1), input_layernorm normalised x and output (2), q after RoPE (1), attention
//   output before o_proj (1), the residual sum (1), post_attention_layernorm (2): 8 x H;
//   K (the copy matmul makes of K^T) and V: 2 x kv_dim; gate, silu(gate), up, silu*up: 4 x I.
// With LoRA the base weights are frozen, so the norms' normalised x and the frozen Linears'
// inputs are not kept: layer input, q, residual (3 x H), K and V, gate, silu(gate), up (3 x I);
// the adapters add theirs (lora_extra).
// The attention probabilities ([B, heads, S, L], softmax in fp32) are counted apart.
double decoder_token_bytes(const PlanModel& m, bool lora, const Widths& w) {
  if (lora) return 3.0 * m.hidden_size * w.h + 2.0 * m.kv_dim() * w.kv + 3.0 * m.intermediate_size * w.i;
  return 8.0 * m.hidden_size * w.h + 2.0 * m.kv_dim() * w.kv + 4.0 * m.intermediate_size * w.i;
}

// Same for a vision block (model/vision_model.cpp): input, norm1 (2), qkv output (3), attention
// output (1), residual (1), norm2 (2): 9 x D; the MLP: SwiGLU 4 x I (Qwen2.5-VL), fc1 output,
// quick_gelu's sigmoid and product 3 x I (Qwen2-VL).
double vision_token_bytes(const PlanModel& m, const Widths& w) {
  return 9.0 * m.vision_hidden_size * w.h + (m.qwen2_vl() ? 3.0 : 4.0) * m.vision_intermediate_size * w.i;
}

// Bytes per attention-probability element: softmax runs in fp32 and autograd keeps its output;
// in a 16-bit compute dtype the copy cast for the second matmul is kept too.
double probs_bytes(double act) { return act < kF32 ? kF32 + act : kF32; }

// LoRA adds per token of an adapted Linear: lora_A's output (r) and its input: with dropout the
// dropped input and its float mask (2 x in; libtorch 1.13's CPU dropout multiplies by a mask),
// one per adapted Linear; without dropout the Linear's input itself, once per distinct input
// (q / k / v share theirs, as gate / up do).
struct LoraExtra {
  double decoder_per_layer = 0;  // bytes per token and decoder layer
  double vision_per_block = 0;
};

LoraExtra lora_extra(const std::vector<PlanParameter>& params, double dropout, const Widths& w) {
  LoraExtra e;
  std::vector<std::string> inputs_seen;
  for (const auto& p : params) {
    const size_t at = p.name.find(".lora_A.");
    if (at == std::string::npos) continue;
    const bool decoder = p.name.rfind("model.layers.0.", 0) == 0;
    const bool vision = p.name.rfind("visual.blocks.0.", 0) == 0;
    if (!decoder && !vision) continue;
    const double in = static_cast<double>(p.shape[1]);
    double per_token = static_cast<double>(p.shape[0]) * w.i;
    if (dropout > 0) {
      per_token += 2.0 * in * w.h;
    } else {
      // The Linear's input, named by what produces it.
      const std::string module = p.name.substr(0, at);
      std::string source = module;
      for (const char* shared : {"q_proj", "k_proj", "v_proj"})
        if (module.size() > 6 && module.compare(module.size() - 6, 6, shared) == 0) source = "attn_in";
      for (const char* shared : {"gate_proj", "up_proj"})
        if (module.find(shared) != std::string::npos && module.find("visual") == std::string::npos) source = "mlp_in";
      if (std::find(inputs_seen.begin(), inputs_seen.end(), source) == inputs_seen.end()) {
        inputs_seen.push_back(source);
        per_token += in * w.i;
      }
    }
    (decoder ? e.decoder_per_layer : e.vision_per_block) += per_token;
  }
  return e;
}

std::string fmt(const char* f, double a) {
  char buf[128];
  std::snprintf(buf, sizeof buf, f, a);
  return buf;
}

std::string count(int64_t n) {  // 3754622976 -> "3,754,622,976"
  std::string s = std::to_string(n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

std::string millions(double n) { return n >= 1e9 ? fmt("%.2f G", n / 1e9) : fmt("%.2f M", n / 1e6); }

double sum(const std::vector<MemoryItem>& items) {
  double s = 0;
  for (const auto& i : items) s += i.bytes;
  return s;
}

}  // namespace

int64_t dtype_bytes(const std::string& d) {
  if (d == "float32" || d == "float" || d == "fp32") return 4;
  if (d == "bfloat16" || d == "float16" || d == "half" || d == "bf16" || d == "fp16") return 2;
  REFRACT_FAIL() << "torch_dtype '" << d << "': the memory plan knows float32, bfloat16, float16";
}

std::string format_bytes(double b) {
  if (b >= 1024.0 * 1024 * 1024) return fmt("%.2f GiB", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return fmt("%.1f MiB", b / (1024.0 * 1024));
  return fmt("%.1f KiB", b / 1024.0);
}

MemoryPlan plan_memory(const MemoryPlanInputs& in) {
  REFRACT_CHECK(in.trainer == "grpo" || in.trainer == "sft") << "memory plan: trainer must be grpo or sft";
  REFRACT_CHECK(in.per_device_train_batch_size >= 1) << "per_device_train_batch_size must be >= 1";
  REFRACT_CHECK(in.world_size >= 1) << "WORLD_SIZE must be >= 1, got " << in.world_size;
  const PlanModel& m = in.model;
  const bool grpo = in.trainer == "grpo";
  if (grpo) {
    REFRACT_CHECK(in.num_generations >= 1) << "num_generations must be >= 1";
    REFRACT_CHECK(in.max_completion_length >= 1) << "max_completion_length must be >= 1";
  } else {
    REFRACT_CHECK(in.max_length >= 1) << "max_length must be >= 1";
  }
  MemoryPlan plan;
  const auto params = plan_parameters(m, in.trainability);
  bool vision_trains = false;
  for (const auto& p : params) {
    plan.total_parameters += p.numel;
    if (p.trainable) plan.trainable_parameters += p.numel;
    if (p.vision) plan.vision_parameters += p.numel;
    if (p.vision && p.trainable) vision_trains = true;
  }
  const double total = static_cast<double>(plan.total_parameters);
  const double trainable = static_cast<double>(plan.trainable_parameters);

  // Storage and compute bytes. Without bf16 every tensor has the weights' dtype (torch AdamW's
  // moments are zeros_like(param)). bf16 is mixed precision as the trainer does it (HF Trainer
  // style, train_loop.cpp / model/autocast.h): the parameters stay (or are upcast to) fp32
  // master weights, so gradients and AdamW moments are fp32 (16 B per trainable parameter,
  // 4 per frozen one); the forwards run under autocast, which makes bf16 copies of the weights
  // for the matmuls (kept by autograd for backward) and bf16 matmul outputs.
  const double wb = in.bf16 ? kF32 : static_cast<double>(dtype_bytes(in.torch_dtype));
  Widths w{wb, wb, wb};
  if (in.bf16) w = Widths{3.0, 2.0, 2.0};
  const double act = in.bf16 ? 2.0 : wb;  // the compute dtype
  const double resid = wb;                // the residual stream: fp32 under autocast
  const double shard = in.optimizer_sharding ? static_cast<double>(in.world_size) : 1.0;
  const std::string wname = in.bf16 ? "float32 master weights (bf16)" : in.torch_dtype;
  const bool fused = in.fused_attention;

  // ---- persistent -----------------------------------------------------------------------------
  plan.persistent.push_back({"weights", total * wb, millions(total) + " params x " + fmt("%.0f", wb) + " B (" + wname + ")"});
  if (grpo && in.beta != 0.0 && !in.trainability.use_peft) {
    // Loaded in torch_dtype; only the policy is upcast for bf16.
    const double rb = static_cast<double>(dtype_bytes(in.torch_dtype));
    plan.persistent.push_back({"reference model", total * rb,
                               "beta != 0 with full fine-tuning: a frozen copy of the initial weights (" + in.torch_dtype + ")"});
  }
  plan.persistent.push_back({"gradients", trainable * wb, millions(trainable) + " trainable x " + fmt("%.0f", wb) + " B"});
  plan.persistent.push_back({"optimizer state (AdamW)", trainable * 2.0 * wb / shard,
                             "2 moments x " + fmt("%.0f", wb) + " B x " + millions(trainable) +
                                 (shard > 1 ? fmt(" / %.0f ranks (optimizer_sharding)", shard) : "")});

  // ---- lengths ------------------------------------------------------------------------------
  // smart_resize keeps h * w <= max_pixels with h, w multiples of patch * merge, so one image
  // gives at most max_pixels / (patch * merge)^2 tokens; its prompt must still fit the limit.
  const int64_t unit = m.patch_size * m.spatial_merge_size;
  int64_t img_tokens = std::max<int64_t>(1, in.max_pixels / (unit * unit));
  const int64_t seq_cap = grpo ? in.max_prompt_length : (in.max_prompt_length > 0 ? std::min(in.max_prompt_length, in.max_length) : in.max_length);
  if (seq_cap > 0) img_tokens = std::min(img_tokens, seq_cap);
  plan.image_tokens = img_tokens;
  plan.image_patches = img_tokens * m.spatial_merge_size * m.spatial_merge_size;
  const double np = static_cast<double>(plan.image_patches);

  const double H = static_cast<double>(m.hidden_size), V = static_cast<double>(m.vocab_size);
  const double layers = static_cast<double>(m.num_hidden_layers);
  const double heads = static_cast<double>(m.num_attention_heads), kvd = static_cast<double>(m.kv_dim());
  const LoraExtra lora = lora_extra(params, in.trainability.use_peft ? in.lora_dropout : 0.0, w);
  const double dec_tok = decoder_token_bytes(m, in.trainability.use_peft, w) + lora.decoder_per_layer;
  const double mb = static_cast<double>(in.per_device_train_batch_size);
  // bf16: autograd keeps the bf16 copy of every weight a matmul used until backward.
  if (in.bf16)
    plan.training.push_back({"bf16 weight copies (autocast)", total * 2.0, "kept by autograd for backward"});
  const char* attn_note = fused ? "fused attention (SDPA, libtorch >= 2): no probabilities kept" : nullptr;

  // ---- vision tower under training (one image per sample) ------------------------------------
  // Windowed blocks attend within window_patches^2 patches, full blocks (every Qwen2-VL block)
  // over the whole image.
  auto vision_activations = [&](double images, std::vector<MemoryItem>& out) {
    const double depth = static_cast<double>(m.vision_depth);
    double full = m.qwen2_vl() ? depth : static_cast<double>(m.fullatt_block_indexes.size());
    const double wp = static_cast<double>(m.window_patches());
    const double win_len = m.qwen2_vl() ? np : std::min(np, wp * wp);
    const double vh = static_cast<double>(m.vision_num_heads);
    const double vtok = vision_token_bytes(m, w) + lora.vision_per_block;
    const double patch_dim = static_cast<double>(m.in_channels * m.temporal_patch_size * m.patch_size * m.patch_size);
    const double merger = 4.0 * np * m.vision_hidden_size * w.h;
    const double pixels = np * patch_dim * wb;
    const double pb = fused ? 0.0 : probs_bytes(act);
    if (in.gradient_checkpointing) {
      out.push_back({"vision activations", images * (np * m.vision_hidden_size * depth * resid + np * vtok + merger + pixels),
                     "gradient checkpointing: block inputs + one block recomputed"});
      out.push_back({"vision attention probabilities", images * vh * np * np * pb,
                     attn_note ? attn_note : "one full-attention block recomputed"});
    } else {
      out.push_back({"vision activations", images * (np * vtok * depth + merger + pixels),
                     fmt("%.0f images x ", images) + count(plan.image_patches) + " patches x " + fmt("%.0f blocks", depth)});
      out.push_back({"vision attention probabilities", images * vh * np * ((depth - full) * win_len + full * np) * pb,
                     attn_note ? attn_note
                               : fmt("%.0f full-attention blocks", full) +
                                     (m.qwen2_vl() ? "" : fmt(", the rest in windows of %.0f patches", win_len))});
    }
  };

  // ---- training micro-batch ---------------------------------------------------------------------
  const double pbytes = fused ? 0.0 : probs_bytes(act);
  if (grpo) {
    const double P = static_cast<double>(in.max_prompt_length > 0 ? in.max_prompt_length : 1024);
    const double T = static_cast<double>(in.max_completion_length);
    // The G completions of a prompt are consecutive rows: a micro-batch of mb rows holds
    // ceil(mb / G) distinct prompts, one more when its slices do not line up with the groups.
    const int64_t b = in.per_device_train_batch_size, gg = in.num_generations;
    int64_t u = (b + gg - 1) / gg;
    if (b % gg != 0 && gg % b != 0) u += 1;
    u = std::min<int64_t>(u, b);
    const double U = static_cast<double>(u);
    double layer_bytes = 0, probs = 0;  // one layer's kept bytes and probabilities
    std::string shape;
    if (in.gradient_checkpointing) {
      // The trainer then scores one sequence per row (prompt + completion): a recomputed layer
      // cannot feed the differentiable KV cache that sharing the prompt needs.
      const double tok = mb * (P + T);
      layer_bytes = tok * dec_tok;
      probs = mb * heads * (P + T) * (P + T) * pbytes;
      plan.training.push_back({"decoder activations", tok * H * layers * resid + layer_bytes,
                               fmt("gradient checkpointing: %.0f rows x ", mb) + count(static_cast<int64_t>(P + T)) +
                                   " tokens, layer inputs + one layer recomputed"});
      plan.training.push_back({"attention probabilities", probs, attn_note ? attn_note : "one layer recomputed (eager attention)"});
    } else {
      // logprobs.cpp: each distinct prompt runs once into a differentiable KV cache (U rows x
      // P), then the mb completions extend copies of it (mb x T new tokens, keys over P + T).
      const double prompt_tok = U * P, comp_tok = mb * T;
      const double kv_copies = 2.0 * mb * (P + T) * kvd * w.kv;  // the rows' K and V over P + T
      layer_bytes = prompt_tok * dec_tok + comp_tok * (dec_tok - 2.0 * kvd * w.kv) + kv_copies;
      probs = (U * heads * P * P + mb * heads * T * (P + T)) * pbytes;
      plan.training.push_back({"decoder activations", layer_bytes * layers,
                               fmt("%.0f prompt(s) x ", U) + count(static_cast<int64_t>(P)) + " + " + fmt("%.0f", mb) +
                                   " completions x " + count(static_cast<int64_t>(T)) + " tokens x " + fmt("%.0f layers", layers)});
      plan.training.push_back({"attention probabilities", probs * layers,
                               attn_note ? attn_note : "[rows, heads, S, L] fp32 per layer (eager attention)"});
    }
    // Backward holds the gradients of one layer's activations while it runs (about the size
    // of what the layer kept), on top of what the layers below still keep.
    plan.training.push_back({"backward working set", layer_bytes + probs, "gradients of one decoder layer's activations"});
    // Logits of the completion positions in fp32: the lm_head output, the log-softmax kept for
    // backward, and its gradient (selective_log_softmax works row by row); with bf16 the lm_head
    // output is bf16 and cast to fp32.
    const double per = 3.0 * kF32 + (in.bf16 ? 2.0 : 0.0);
    plan.training.push_back({"logits", per * mb * T * V,
                             fmt("%.0f B x ", per) + fmt("%.0f x ", mb) + count(static_cast<int64_t>(T)) + " x " + count(m.vocab_size)});
    if (vision_trains) vision_activations(in.gradient_checkpointing ? mb : U, plan.training);
  } else {
    const double S = static_cast<double>(in.max_length);
    const double tok = mb * S;
    const double probs = mb * heads * S * S * pbytes;
    if (in.gradient_checkpointing) {
      plan.training.push_back({"decoder activations", tok * H * layers * resid + tok * dec_tok,
                               "gradient checkpointing: layer inputs + one layer recomputed"});
      plan.training.push_back({"attention probabilities", probs, attn_note ? attn_note : "one layer recomputed (eager attention)"});
    } else {
      plan.training.push_back({"decoder activations", tok * dec_tok * layers,
                               fmt("%.0f x ", mb) + count(in.max_length) + " tokens x " + fmt("%.0f layers", layers)});
      plan.training.push_back({"attention probabilities", probs * layers,
                               attn_note ? attn_note : "[rows, heads, S, S] fp32 per layer (eager attention)"});
    }
    plan.training.push_back({"backward working set", tok * dec_tok + probs, "gradients of one decoder layer's activations"});
    // Every position's logits in fp32: the output, the log-softmax kept for backward, the
    // gradient scattered back by gather and the log-softmax backward result (+ bf16's output).
    const double per = 4.0 * kF32 + (in.bf16 ? 2.0 : 0.0);
    plan.training.push_back({"logits", per * tok * V,
                             fmt("%.0f B x ", per) + fmt("%.0f x ", mb) + count(in.max_length) + " x " + count(m.vocab_size)});
    if (vision_trains) vision_activations(mb, plan.training);
  }

  // ---- rollout (GRPO) ---------------------------------------------------------------------------
  if (grpo) {
    const double g = static_cast<double>(in.num_generations);
    const double P = static_cast<double>(in.max_prompt_length > 0 ? in.max_prompt_length : 1024);
    const double T = static_cast<double>(in.max_completion_length);
    // One generate() call per round: per_device_train_batch_size x steps_per_generation rows
    // (R / G prompts), a cache of capacity prompt + max_completion_length per row and layer, in
    // the model's dtype (fp32 master weights with bf16: K after RoPE is fp32 under autocast).
    const double rows = mb * static_cast<double>(std::max<int64_t>(1, in.steps_per_generation));
    const double prompts = std::max(1.0, rows / g);
    const double cap = P + T;
    plan.rollout.push_back({"KV cache", 2.0 * layers * rows * kvd * cap * wb,
                            fmt("2 x %.0f layers x ", layers) + fmt("%.0f rows x ", rows) + count(m.kv_dim()) +
                                " (kv heads x head_dim) x " + count(static_cast<int64_t>(cap)) + " positions x " +
                                fmt("%.0f B", wb)});
    plan.rollout.push_back({"prefill KV cache (before repeat)", 2.0 * layers * prompts * kvd * cap * wb,
                            fmt("the %.0f prompts' cache, alive while it is repeated G times", prompts)});
    if (in.bf16)
      plan.rollout.push_back({"bf16 weight copies (autocast cache)", trainable * 2.0, "the trainable weights' casts, kept while generating"});
    // The largest transient: the prefill of all prompts (scores + probabilities of one layer,
    // its MLP and hidden states), the image encoding without gradients (all images of a round
    // batched: scores + probabilities of a full-attention block), or a decode step's logits.
    const double I = static_cast<double>(m.intermediate_size);
    const double scores = fused ? 0.0 : 2.0 * kF32;
    const double prefill = prompts * (scores * heads * P * P + (3.0 * I + 4.0 * H) * P * w.h);
    const double vh = static_cast<double>(m.vision_num_heads);
    const double encode = prompts * (scores * vh * np * np + (3.0 * m.vision_intermediate_size + 4.0 * m.vision_hidden_size) * np * w.h);
    const double decode = 3.0 * rows * V * kF32;
    const double transient = std::max({prefill, encode, decode});
    const char* which = transient == prefill ? "prompt prefill" : transient == encode ? "image encoding" : "decode step logits";
    plan.rollout.push_back({"generation transient", transient, std::string("largest of prefill / image encoding / decode: ") + which});
    // The round kept for training: ids, masks, old / reference log-probs, image embeddings.
    const double round = rows * T * (8.0 + 3.0 * kF32) + prompts * static_cast<double>(img_tokens) * H * wb;
    plan.rollout.push_back({"round buffers", round, "completion ids, masks, log-probs, image embeddings"});
  }

  // ---- host: the sample cache ------------------------------------------------------------------
  // train/sample_cache.h keeps every encoded sample (its float pixel values dominate) for the
  // whole run: the samples the steps consume, plus the next step's, prefetched.
  {
    const double patch_dim = static_cast<double>(m.in_channels * m.temporal_patch_size * m.patch_size * m.patch_size);
    const double per_sample = np * patch_dim * kF32;
    const double ga = static_cast<double>(std::max<int64_t>(1, in.gradient_accumulation_steps));
    const double per_step = grpo ? mb * ga / (static_cast<double>(std::max<int64_t>(1, in.num_generations)) *
                                              static_cast<double>(std::max<int64_t>(1, in.num_iterations)))
                                 : mb * ga;
    if (in.max_steps > 0) {
      const double seen = std::ceil(per_step * static_cast<double>(in.max_steps + 1));
      plan.host.push_back({"encoded samples (sample cache)", seen * per_sample,
                           fmt("%.0f samples (max_steps + the prefetched step) x ", seen) + format_bytes(per_sample) +
                               " of pixel values; it keeps every sample it has encoded"});
    } else {
      plan.notes.push_back("the sample cache keeps every encoded sample: " + format_bytes(per_sample) +
                           " of pixel values per distinct sample, up to the whole dataset (not in the peak)");
    }
  }

  plan.persistent_bytes = sum(plan.persistent);
  plan.host_bytes = sum(plan.host);
  plan.training_bytes = sum(plan.training);
  plan.rollout_bytes = sum(plan.rollout);
  // The round's buffers stay alive through the training micro-batches.
  double training_phase = plan.training_bytes;
  if (grpo) training_phase += plan.rollout.back().bytes;
  plan.peak_bytes = plan.persistent_bytes + std::max(training_phase, plan.rollout_bytes);
  const bool cpu = in.device.rfind("cpu", 0) == 0;
  if (cpu) plan.peak_bytes += plan.host_bytes;

  plan.notes.push_back("upper bounds: every prompt / sequence at its length limit, one image per sample at max_pixels");
  plan.notes.push_back("gradients are counted through the rollout too (libtorch 1.13's zero_grad keeps them allocated)");
  plan.notes.push_back("not counted: the runtime itself (CPU: libtorch, BLAS and thread buffers, ~170-200 MiB measured with "
                       "Debian's libtorch 1.13; GPU: the CUDA context, ~0.5-1 GiB) and allocator fragmentation");
  if (cpu)
    plan.notes.push_back("CPU: glibc's malloc keeps freed tensors in its heap; peak RSS measured 1.2-1.4x the live bytes "
                         "(MALLOC_MMAP_THRESHOLD_=65536 returns them, at some speed; docs/memory.md)");
  return plan;
}

std::string format_plan(const MemoryPlanInputs& in, const MemoryPlan& plan) {
  std::ostringstream o;
  const PlanModel& m = in.model;
  o << "memory plan: refract " << in.trainer << ", " << m.model_type << " (" << m.num_hidden_layers << " layers, hidden "
    << m.hidden_size << ", vocab " << m.vocab_size << "; vision " << m.vision_depth << " blocks x " << m.vision_hidden_size
    << "), per rank of " << in.world_size << "\n";
  o << "parameters: " << count(plan.total_parameters) << " total (vision " << count(plan.vision_parameters) << "), "
    << count(plan.trainable_parameters) << " trainable";
  if (in.trainability.use_peft) o << " (LoRA r=" << in.trainability.lora_r << ")";
  else if (in.trainability.freeze_vision_modules) o << " (vision frozen)";
  else if (in.trainability.freeze_aligner) o << " (aligner frozen)";
  o << "\n";
  o << "settings: torch_dtype " << in.torch_dtype << "; bf16 " << (in.bf16 ? "true" : "false")
    << "; gradient_checkpointing " << (in.gradient_checkpointing ? "true" : "false")
    << "; optimizer_sharding " << (in.optimizer_sharding ? "true" : "false")
    << "; world size " << in.world_size << " (WORLD_SIZE)\n";
  o << "lengths: ";
  if (in.trainer == "grpo") {
    o << "prompt <= " << in.max_prompt_length << " tokens, completion <= " << in.max_completion_length << ", micro-batch "
      << in.per_device_train_batch_size << " completions, G " << in.num_generations << ", generation round "
      << in.per_device_train_batch_size * std::max<int64_t>(1, in.steps_per_generation) << " completions";
  } else {
    o << "sequence <= " << in.max_length << " tokens, micro-batch " << in.per_device_train_batch_size;
  }
  o << "; an image <= " << plan.image_tokens << " tokens = " << plan.image_patches << " patches (max_pixels " << in.max_pixels
    << ")\n";
  auto section = [&](const char* title, const std::vector<MemoryItem>& items, double total) {
    if (items.empty()) return;
    char line[256];
    std::snprintf(line, sizeof line, "%-44s %12s\n", title, format_bytes(total).c_str());
    o << line;
    for (const auto& i : items) {
      std::snprintf(line, sizeof line, "  %-42s %12s  ", i.name.c_str(), format_bytes(i.bytes).c_str());
      o << line << i.detail << "\n";
    }
  };
  section("persistent (weights and optimizer)", plan.persistent, plan.persistent_bytes);
  section("training micro-batch (forward + backward)", plan.training, plan.training_bytes);
  if (in.trainer == "grpo") section("rollout (generation round)", plan.rollout, plan.rollout_bytes);
  section(in.device.rfind("cpu", 0) == 0 ? "host (in the peak: the device is the CPU)" : "host RAM (not in the device peak)",
          plan.host, plan.host_bytes);
  o << "peak per rank: " << format_bytes(plan.peak_bytes) << " (" << count(static_cast<int64_t>(plan.peak_bytes))
    << " bytes)\n";
  for (const auto& n : plan.notes) o << "note: " << n << "\n";
  return o.str();
}

}  // namespace refract::train
