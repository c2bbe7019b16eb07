// onednn_bwd_weights.cpp: what oneDNN's backward-weights convolution (the primitive PyTorch runs, which XLA's
// CPU plugin never calls) takes on ResNet-20's weight gradients, with x [n, h, w, c] and δ [n, oh, ow, cout] as
// nowt holds them (NHWC) and dW written as HWIO: the time an XLA FFI handler running it would take
// (perf-analysis.md §24). any=0 gives the primitive x and δ as they lie; any=1 lets oneDNN choose their layouts and
// times the reorders into them; dW is reordered into HWIO in both. Median of 30 runs, 3×3 kernels.
//
//   apt-get install libdnnl-dev   # oneDNN 2.6.3 on Debian 12, the version of Debian's PyTorch 1.13
//   g++ -O2 -o /tmp/bw scripts/peers/onednn_bwd_weights.cpp -ldnnl && OMP_NUM_THREADS=2 /tmp/bw
#include <dnnl.hpp>
#include <chrono>
#include <cstdio>
#include <vector>
#include <algorithm>
using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

double bench(int n, int hw, int c, int co, int stride, bool any) {
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  int ohw = (hw + 2 - 3) / stride + 1;
  memory::dims src_d = {n, c, hw, hw}, wei_d = {co, c, 3, 3}, dst_d = {n, co, ohw, ohw};
  memory::dims strides = {stride, stride}, pad = {1, 1};
  auto src_u = memory::desc(src_d, dt::f32, tag::nhwc);
  auto dst_u = memory::desc(dst_d, dt::f32, tag::nhwc);
  auto wei_u = memory::desc(wei_d, dt::f32, tag::hwio);
  auto src_m = any ? memory::desc(src_d, dt::f32, tag::any) : src_u;
  auto dst_m = any ? memory::desc(dst_d, dt::f32, tag::any) : dst_u;
  auto wei_m = memory::desc(wei_d, dt::f32, tag::any);
  auto fwd = convolution_forward::primitive_desc(convolution_forward::desc(prop_kind::forward_training,
      algorithm::convolution_direct, src_m, wei_m, dst_m, strides, pad, pad), eng);
  auto bwd = convolution_backward_weights::primitive_desc(convolution_backward_weights::desc(
      algorithm::convolution_direct, src_m, wei_m, dst_m, strides, pad, pad), eng, fwd);
  std::vector<float> xs(n * c * hw * hw, 0.5f), ds(n * co * ohw * ohw, 0.25f), ws(co * c * 9);
  memory src(src_u, eng, xs.data()), dst(dst_u, eng, ds.data()), wei(wei_u, eng, ws.data());
  memory src_p = src, dst_p = dst, wei_p = wei;
  bool rs = bwd.src_desc() != src_u, rd = bwd.diff_dst_desc() != dst_u, rw = bwd.diff_weights_desc() != wei_u;
  if (rs) src_p = memory(bwd.src_desc(), eng);
  if (rd) dst_p = memory(bwd.diff_dst_desc(), eng);
  if (rw) wei_p = memory(bwd.diff_weights_desc(), eng);
  auto prim = convolution_backward_weights(bwd);
  std::vector<double> times;
  for (int it = 0; it < 30; it++) {
    auto t0 = std::chrono::steady_clock::now();
    if (rs) reorder(src, src_p).execute(s, src, src_p);
    if (rd) reorder(dst, dst_p).execute(s, dst, dst_p);
    prim.execute(s, {{DNNL_ARG_SRC, src_p}, {DNNL_ARG_DIFF_DST, dst_p}, {DNNL_ARG_DIFF_WEIGHTS, wei_p}});
    if (rw) reorder(wei_p, wei).execute(s, wei_p, wei);
    s.wait();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  printf("n%d %dx%dx%d->%d s%d any=%d: %s reorders src=%d dst=%d wei=%d: median %.3f ms\n", n, hw, hw, c, co, stride,
         any, bwd.impl_info_str(), rs, rd, rw, times[times.size() / 2]);
  return times[times.size() / 2];
}

int main() {
  for (int any = 0; any < 2; any++) {
    bench(64, 32, 16, 16, 1, any);
    bench(64, 16, 32, 32, 1, any);
    bench(64, 8, 64, 64, 1, any);
    bench(64, 32, 16, 32, 2, any);
    bench(128, 32, 16, 16, 1, any);
    bench(128, 16, 32, 32, 1, any);
  }
}
