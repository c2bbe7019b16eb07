//go:build onednn

// oneDNN's backward-weights convolution as an XLA FFI handler (see doc.go). oneDNN 2.x's C++ API (Debian's
// libdnnl-dev).
#include <dnnl.hpp>
#include <omp.h>

#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

extern "C" {
#include "xla_ffi_c_api.h"
}

namespace {

using dnnl::memory;

// A primitive made for one geometry, with the reorder of its weight gradient into HWIO when oneDNN's own layout
// differs.
struct Plan {
  dnnl::convolution_backward_weights::primitive_desc pd;
  dnnl::convolution_backward_weights primitive;
  memory::desc weights_hwio;
  dnnl::reorder to_hwio;
  bool reorder = false;
};

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

std::mutex plans_mu;
std::map<std::vector<int64_t>, std::shared_ptr<Plan>> plans;

// plan_for returns the primitive for geometry g = {n, h, w, c, oh, ow, cout, kh, kw, sh, sw, pt, pb, pl, pr}.
std::shared_ptr<Plan> plan_for(const std::vector<int64_t>& g) {
  std::lock_guard<std::mutex> lock(plans_mu);
  auto it = plans.find(g);
  if (it != plans.end()) return it->second;
  auto plan = std::make_shared<Plan>();
  const auto f32 = memory::data_type::f32;
  memory::desc src(memory::dims{g[0], g[3], g[1], g[2]}, f32, memory::format_tag::nhwc);
  memory::desc dst(memory::dims{g[0], g[6], g[4], g[5]}, f32, memory::format_tag::nhwc);
  memory::dims weights{g[6], g[3], g[7], g[8]};
  memory::desc weights_any(weights, f32, memory::format_tag::any);
  plan->weights_hwio = memory::desc(weights, f32, memory::format_tag::hwio);
  memory::dims strides{g[9], g[10]}, pad_before{g[11], g[13]}, pad_after{g[12], g[14]};
  auto& engine = cpu_engine();
  dnnl::convolution_forward::primitive_desc forward(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src,
                                      weights_any, dst, strides, pad_before, pad_after),
      engine);
  plan->pd = dnnl::convolution_backward_weights::primitive_desc(
      dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, src, weights_any, dst, strides,
                                               pad_before, pad_after),
      engine, forward);
  plan->primitive = dnnl::convolution_backward_weights(plan->pd);
  plan->reorder = plan->pd.diff_weights_desc() != plan->weights_hwio;
  if (plan->reorder) {
    plan->to_hwio = dnnl::reorder(
        dnnl::reorder::primitive_desc(engine, plan->pd.diff_weights_desc(), engine, plan->weights_hwio));
  }
  plans[g] = plan;
  return plan;
}

XLA_FFI_Error* failure(const XLA_FFI_Api* api, const std::string& message) {
  XLA_FFI_Error_Create_Args args = {XLA_FFI_Error_Create_Args_STRUCT_SIZE, nullptr, message.c_str(),
                                    XLA_FFI_Error_Code_INTERNAL};
  return api->XLA_FFI_Error_Create(&args);
}

}  // namespace

// nowt_onednn_backward_weights is the handler: operands x f32[n, h, w, c], δ f32[n, oh, ow, cout] and
// s64[6] (sh, sw, pt, pb, pl, pr); result dW f32[kh, kw, c, cout].
extern "C" XLA_FFI_Error* nowt_onednn_backward_weights(XLA_FFI_CallFrame* frame) {
  for (XLA_FFI_Extension_Base* e = frame->extension_start; e != nullptr; e = e->next) {
    if (e->type == XLA_FFI_Extension_Metadata) {
      // The CPU plugins of 2025 implement FFI API 0.2 and accept handlers of 0.1 and 0.2; this handler reads only
      // what 0.1 has (buffers).
      XLA_FFI_Metadata* metadata = reinterpret_cast<XLA_FFI_Metadata_Extension*>(e)->metadata;
      metadata->api_version.major_version = 0;
      metadata->api_version.minor_version = 1;
      metadata->traits = 0;
      return nullptr;
    }
  }
  if (frame->stage != XLA_FFI_ExecutionStage_EXECUTE) return nullptr;
  if (frame->args.size != 3 || frame->rets.size != 1) {
    return failure(frame->api, "onednn_conv_backward_weights: wants 3 operands and 1 result");
  }
  auto* x = static_cast<XLA_FFI_Buffer*>(frame->args.args[0]);
  auto* delta = static_cast<XLA_FFI_Buffer*>(frame->args.args[1]);
  auto* geometry = static_cast<XLA_FFI_Buffer*>(frame->args.args[2]);
  auto* dw = static_cast<XLA_FFI_Buffer*>(frame->rets.rets[0]);
  if (x->rank != 4 || delta->rank != 4 || geometry->rank != 1 || geometry->dims[0] != 6 || dw->rank != 4 ||
      x->dtype != XLA_FFI_DataType_F32 || delta->dtype != XLA_FFI_DataType_F32 ||
      geometry->dtype != XLA_FFI_DataType_S64 || dw->dtype != XLA_FFI_DataType_F32) {
    return failure(frame->api, "onednn_conv_backward_weights: wants f32[n,h,w,c], f32[n,oh,ow,cout], s64[6] and "
                               "f32[kh,kw,c,cout]");
  }
  // One thread: oneDNN (Debian's, on OpenMP) plans a primitive for the calling thread's OpenMP thread count and
  // waits for that many threads in spin barriers inside it. Called from XLA's thread pool with two, the training
  // tests hung at such a barrier inside GOMP_parallel (a thread spinning at 99 % for 18 minutes, its team-mate idle
  // in libgomp). With one thread there is no team to wait for, and XLA runs other work on the other core meanwhile
  // (perf-analysis §24: ResNet-20's step at batch 64 105–107 ms against 102–105 with two, 129–133 without).
  omp_set_num_threads(1);
  const auto* p = static_cast<const int64_t*>(geometry->data);
  std::vector<int64_t> g{x->dims[0], x->dims[1], x->dims[2], x->dims[3], delta->dims[1], delta->dims[2],
                         delta->dims[3], dw->dims[0], dw->dims[1], p[0], p[1], p[2], p[3], p[4], p[5]};
  try {
    auto plan = plan_for(g);
    auto& engine = cpu_engine();
    dnnl::stream stream(engine);
    memory src(plan->pd.src_desc(), engine, x->data);
    memory dst(plan->pd.diff_dst_desc(), engine, delta->data);
    memory hwio(plan->weights_hwio, engine, dw->data);
    memory weights = plan->reorder ? memory(plan->pd.diff_weights_desc(), engine) : hwio;
    plan->primitive.execute(stream,
                            {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, dst}, {DNNL_ARG_DIFF_WEIGHTS, weights}});
    if (plan->reorder) plan->to_hwio.execute(stream, weights, hwio);
    stream.wait();
  } catch (const std::exception& e) {
    return failure(frame->api, std::string("onednn_conv_backward_weights: oneDNN: ") + e.what());
  }
  return nullptr;
}
