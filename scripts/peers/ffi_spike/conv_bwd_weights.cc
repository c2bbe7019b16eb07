// The second FFI experiment of perf-analysis.md §24: oneDNN's backward-weights convolution as an XLA FFI handler in
// the CPU plugin. Target "nowt_spike_conv_bwd_weights": operands x f32[n, h, w, c] and δ f32[n, oh, ow, cout] as
// they lie (NHWC) and s64[5] (stride, padding top, bottom, left, right); result dW f32[kh, kw, c, cout] (HWIO).
// The primitive for each shape is made once (oneDNN 2.6's C++ API, Debian's libdnnl).
#include <dnnl.hpp>

#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

extern "C" {
#include "xla_ffi_c_api.h"
}

namespace {

using dnnl::memory;
using Key = std::vector<int64_t>;

struct Plan {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::convolution_backward_weights::primitive_desc pd;
  dnnl::convolution_backward_weights primitive;
  memory::desc weights_user;
  dnnl::reorder to_user;
  bool reorder_weights = false;
};

std::mutex plans_mu;
std::map<Key, std::shared_ptr<Plan>> plans;

std::shared_ptr<Plan> plan_for(const Key& k) {
  std::lock_guard<std::mutex> lock(plans_mu);
  auto it = plans.find(k);
  if (it != plans.end()) return it->second;
  // k: n, h, w, c, oh, ow, cout, kh, kw, stride, pt, pb, pl, pr
  auto p = std::make_shared<Plan>();
  memory::dims src{k[0], k[3], k[1], k[2]}, dst{k[0], k[6], k[4], k[5]}, wei{k[6], k[3], k[7], k[8]};
  memory::dims strides{k[9], k[9]}, pad_l{k[10], k[12]}, pad_r{k[11], k[13]};
  auto f32 = memory::data_type::f32;
  memory::desc src_md(src, f32, memory::format_tag::nhwc), dst_md(dst, f32, memory::format_tag::nhwc);
  memory::desc wei_any(wei, f32, memory::format_tag::any);
  p->weights_user = memory::desc(wei, f32, memory::format_tag::hwio);
  auto fwd = dnnl::convolution_forward::primitive_desc(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                      src_md, wei_any, dst_md, strides, pad_l, pad_r),
      p->engine);
  p->pd = dnnl::convolution_backward_weights::primitive_desc(
      dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, src_md, wei_any, dst_md,
                                               strides, pad_l, pad_r),
      p->engine, fwd);
  p->primitive = dnnl::convolution_backward_weights(p->pd);
  p->reorder_weights = p->pd.diff_weights_desc() != p->weights_user;
  if (p->reorder_weights) {
    p->to_user = dnnl::reorder(dnnl::reorder::primitive_desc(p->engine, p->pd.diff_weights_desc(), p->engine,
                                                             p->weights_user));
  }
  plans[k] = p;
  return p;
}

}  // namespace

extern "C" XLA_FFI_Error* nowt_spike_conv_bwd_weights(XLA_FFI_CallFrame* frame) {
  for (XLA_FFI_Extension_Base* e = frame->extension_start; e; e = e->next) {
    if (e->type == XLA_FFI_Extension_Metadata) {
      XLA_FFI_Metadata* m = reinterpret_cast<XLA_FFI_Metadata_Extension*>(e)->metadata;
      m->api_version.major_version = 0;
      m->api_version.minor_version = 1;
      m->traits = 0;
      return nullptr;
    }
  }
  if (frame->stage != XLA_FFI_ExecutionStage_EXECUTE) return nullptr;
  auto* x = static_cast<XLA_FFI_Buffer*>(frame->args.args[0]);
  auto* d = static_cast<XLA_FFI_Buffer*>(frame->args.args[1]);
  auto* params = static_cast<XLA_FFI_Buffer*>(frame->args.args[2]);
  auto* dw = static_cast<XLA_FFI_Buffer*>(frame->rets.rets[0]);
  const int64_t* pr = static_cast<const int64_t*>(params->data);
  Key k{x->dims[0], x->dims[1], x->dims[2], x->dims[3], d->dims[1], d->dims[2], d->dims[3], dw->dims[0], dw->dims[1],
        pr[0], pr[1], pr[2], pr[3], pr[4]};
  auto p = plan_for(k);
  dnnl::stream stream(p->engine);
  memory src(p->pd.src_desc(), p->engine, x->data), dst(p->pd.diff_dst_desc(), p->engine, d->data);
  memory user(p->weights_user, p->engine, dw->data);
  memory wei = p->reorder_weights ? memory(p->pd.diff_weights_desc(), p->engine) : user;
  p->primitive.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, dst}, {DNNL_ARG_DIFF_WEIGHTS, wei}});
  if (p->reorder_weights) p->to_user.execute(stream, wei, user);
  stream.wait();
  return nullptr;
}
