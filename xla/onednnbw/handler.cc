//go:build onednn

// oneDNN's backward-weights convolution as an XLA FFI handler (see doc.go). oneDNN 2.x's C++ API (Debian's
// libdnnl-dev).
#include <dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
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
  // The scratchpad is the caller's (one per execution): the chunks of one weight gradient run the same primitive
  // on several threads at once.
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  plan->pd = dnnl::convolution_backward_weights::primitive_desc(
      dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, src, weights_any, dst, strides,
                                               pad_before, pad_after),
      attr, engine, forward);
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

// has_thread_pool reports whether the plugin's FFI API has XLA_FFI_ThreadPool_Schedule and _NumThreads (the
// fields after them were added later, so the struct's size tells).
bool has_thread_pool(const XLA_FFI_Api* api) {
  return api->struct_size >= offsetof(XLA_FFI_Api, XLA_FFI_ThreadPool_NumThreads) + sizeof(void*) &&
         api->XLA_FFI_ThreadPool_Schedule != nullptr && api->XLA_FFI_ThreadPool_NumThreads != nullptr;
}

// pool_threads returns the number of threads of XLA's intra-op pool for this execution (a plugin whose FFI API
// has one: has_thread_pool), or 1 where it cannot tell.
int64_t pool_threads(const XLA_FFI_Api* api, XLA_FFI_ExecutionContext* ctx) {
  int64_t n = 1;
  XLA_FFI_ThreadPool_NumThreads_Args args = {XLA_FFI_ThreadPool_NumThreads_Args_STRUCT_SIZE, nullptr, ctx, &n};
  if (XLA_FFI_Error* err = api->XLA_FFI_ThreadPool_NumThreads(&args)) {
    XLA_FFI_Error_Destroy_Args destroy = {XLA_FFI_Error_Destroy_Args_STRUCT_SIZE, nullptr, err};
    api->XLA_FFI_Error_Destroy(&destroy);
    return 1;
  }
  return n < 1 ? 1 : n;
}

// max_chunks, where positive, replaces the pool's thread count as the number of chunks (onednnbw.SetChunks).
std::atomic<int64_t> max_chunks{0};

// Job is one execution's weight gradient split over the examples: chunk i takes examples [begin(i), begin(i+1))
// and writes its partial dW (HWIO) to dw for chunk 0 and to partials for the others; the caller sums them. Chunks
// are claimed through next by the calling thread and by the tasks it schedules on XLA's pool, so the caller never
// waits for a chunk nobody has started: a task that starts late finds nothing left and returns.
struct Job {
  std::vector<int64_t> geometry;  // as plan_for's, n the whole batch
  const float* x;
  const float* delta;
  float* dw;
  int64_t chunks;
  int64_t dw_size;  // kh·kw·c·cout
  std::vector<float> partials;  // (chunks-1)·dw_size
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex mu;
  std::condition_variable finished;
  std::string error;  // under mu

  int64_t begin(int64_t i) const { return geometry[0] * i / chunks; }

  // run_chunks claims and runs chunks until none is left.
  void run_chunks() {
    // One thread per oneDNN call: oneDNN (Debian's, on OpenMP) plans a primitive for the calling thread's OpenMP
    // thread count and waits for that many threads in spin barriers inside it; called from XLA's pool with two,
    // the training tests once hung at such a barrier inside GOMP_parallel. The handler's parallelism is its own
    // split over the examples, on XLA's threads.
    omp_set_num_threads(1);
    for (int64_t i; (i = next.fetch_add(1)) < chunks;) {
      try {
        run_chunk(i);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mu);
        if (error.empty()) error = e.what();
      }
      if (done.fetch_add(1) + 1 == chunks) {
        std::lock_guard<std::mutex> lock(mu);
        finished.notify_all();
      }
    }
  }

  void run_chunk(int64_t i) {
    const int64_t n0 = begin(i), n1 = begin(i + 1);
    std::vector<int64_t> g = geometry;
    g[0] = n1 - n0;
    auto plan = plan_for(g);
    auto& engine = cpu_engine();
    dnnl::stream stream(engine);
    const int64_t x_example = g[1] * g[2] * g[3], delta_example = g[4] * g[5] * g[6];
    memory src(plan->pd.src_desc(), engine, const_cast<float*>(x + n0 * x_example));
    memory dst(plan->pd.diff_dst_desc(), engine, const_cast<float*>(delta + n0 * delta_example));
    float* out = i == 0 ? dw : partials.data() + (i - 1) * dw_size;
    memory hwio(plan->weights_hwio, engine, out);
    memory weights = plan->reorder ? memory(plan->pd.diff_weights_desc(), engine) : hwio;
    memory scratchpad(plan->pd.scratchpad_desc(), engine);
    plan->primitive.execute(stream, {{DNNL_ARG_SRC, src},
                                     {DNNL_ARG_DIFF_DST, dst},
                                     {DNNL_ARG_DIFF_WEIGHTS, weights},
                                     {DNNL_ARG_SCRATCHPAD, scratchpad}});
    if (plan->reorder) plan->to_hwio.execute(stream, weights, hwio);
    stream.wait();
  }
};

void run_task(void* data) {
  auto* job = static_cast<std::shared_ptr<Job>*>(data);
  (*job)->run_chunks();
  delete job;
}

}  // namespace

// nowt_onednn_backward_weights is the handler: operands x f32[n, h, w, c], δ f32[n, oh, ow, cout] and
// s64[6] (sh, sw, pt, pb, pl, pr); result dW f32[kh, kw, c, cout].
extern "C" XLA_FFI_Error* nowt_onednn_backward_weights(XLA_FFI_CallFrame* frame) {
  for (XLA_FFI_Extension_Base* e = frame->extension_start; e != nullptr; e = e->next) {
    if (e->type == XLA_FFI_Extension_Metadata) {
      // The CPU plugins of 2025 implement FFI API 0.2 and accept handlers of 0.1 and 0.2; this handler reads only
      // what 0.1 has (buffers, the execution context and its thread pool).
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
  const auto* p = static_cast<const int64_t*>(geometry->data);
  auto job = std::make_shared<Job>();
  job->geometry = {x->dims[0], x->dims[1], x->dims[2], x->dims[3], delta->dims[1], delta->dims[2],
                   delta->dims[3], dw->dims[0], dw->dims[1], p[0], p[1], p[2], p[3], p[4], p[5]};
  job->x = static_cast<const float*>(x->data);
  job->delta = static_cast<const float*>(delta->data);
  job->dw = static_cast<float*>(dw->data);
  job->dw_size = dw->dims[0] * dw->dims[1] * dw->dims[2] * dw->dims[3];
  // As many chunks as XLA's pool has threads (each chunk's primitive runs on one), at least one example each.
  const bool pool = has_thread_pool(frame->api);
  const int64_t limit = max_chunks.load();
  const int64_t threads = limit > 0 ? limit : pool ? pool_threads(frame->api, frame->ctx) : 1;
  job->chunks = std::max<int64_t>(1, std::min<int64_t>(threads, x->dims[0]));
  try {
    job->partials.resize((job->chunks - 1) * job->dw_size);
  } catch (const std::exception& e) {
    return failure(frame->api, std::string("onednn_conv_backward_weights: ") + e.what());
  }
  // Chunks 1… are offered to XLA's pool, where the plugin has one; the calling thread runs whatever the pool has not
  // started (every chunk, where it has none).
  for (int64_t i = 1; pool && i < job->chunks; i++) {
    auto* data = new std::shared_ptr<Job>(job);
    XLA_FFI_ThreadPool_Schedule_Args args = {XLA_FFI_ThreadPool_Schedule_Args_STRUCT_SIZE, nullptr, frame->ctx,
                                             run_task, data};
    if (XLA_FFI_Error* err = frame->api->XLA_FFI_ThreadPool_Schedule(&args)) {
      XLA_FFI_Error_Destroy_Args destroy = {XLA_FFI_Error_Destroy_Args_STRUCT_SIZE, nullptr, err};
      frame->api->XLA_FFI_Error_Destroy(&destroy);
      delete data;
      break;  // the caller runs the rest
    }
  }
  job->run_chunks();
  {
    std::unique_lock<std::mutex> lock(job->mu);
    job->finished.wait(lock, [&] { return job->done.load() == job->chunks; });
    if (!job->error.empty()) {
      return failure(frame->api, "onednn_conv_backward_weights: oneDNN: " + job->error);
    }
  }
  for (int64_t i = 1; i < job->chunks; i++) {
    const float* part = job->partials.data() + (i - 1) * job->dw_size;
    float* out = job->dw;
    for (int64_t j = 0; j < job->dw_size; j++) out[j] += part[j];
  }
  return nullptr;
}

// nowt_onednn_backward_weights_set_max_chunks sets the number of chunks each execution splits its examples into
// (0: as many as XLA's pool has threads) and returns the previous setting.
extern "C" int64_t nowt_onednn_backward_weights_set_max_chunks(int64_t n) { return max_chunks.exchange(n); }
