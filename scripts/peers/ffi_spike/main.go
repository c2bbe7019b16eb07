//go:build ignore

// The FFI experiments of perf-analysis.md §24: register C handlers with the CPU PJRT plugin, compile StableHLO
// programs that call them through typed-FFI custom calls (api_version 4), run them. First a handler that doubles
// an array; then oneDNN's backward-weights convolution (conv_bwd_weights.cc) on ResNet-20's stage-1 and stage-2
// weight gradients at batch 64, checked against a plain-Go reference and timed. Built by run.sh, which adds the
// accessor pjrt.Plugin.CAPIPointer to the go-xla copy for the build and removes it after.
package main

/*
#cgo LDFLAGS: -ldnnl
#include <stdlib.h>
int spike_register(void* api, const char* platform, const char* target, void* handler);
void* spike_scale2(void);
extern int spike_calls;
typedef struct XLA_FFI_Error XLA_FFI_Error;
typedef struct XLA_FFI_CallFrame XLA_FFI_CallFrame;
XLA_FFI_Error* nowt_spike_conv_bwd_weights(XLA_FFI_CallFrame* frame);
*/
import "C"

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"slices"
	"time"
	"unsafe"

	"github.com/gomlx/go-xla/pkg/pjrt"
)

const scaleProgram = `module @spike {
  func.func public @main(%arg0: tensor<4xf32>) -> tensor<4xf32> {
    %0 = stablehlo.custom_call @nowt_spike_scale2(%arg0) {api_version = 4 : i32, backend_config = {}} : (tensor<4xf32>) -> tensor<4xf32>
    return %0 : tensor<4xf32>
  }
}`

const convProgram = `module @spike {
  func.func public @main(%%x: tensor<%[1]dx%[2]dx%[2]dx%[3]dxf32>, %%d: tensor<%[1]dx%[4]dx%[4]dx%[5]dxf32>) -> tensor<3x3x%[3]dx%[5]dxf32> {
    %%p = stablehlo.constant dense<[%[6]d, 1, 1, 1, 1]> : tensor<5xi64>
    %%0 = stablehlo.custom_call @nowt_spike_conv_bwd_weights(%%x, %%d, %%p) {api_version = 4 : i32, backend_config = {}} : (tensor<%[1]dx%[2]dx%[2]dx%[3]dxf32>, tensor<%[1]dx%[4]dx%[4]dx%[5]dxf32>, tensor<5xi64>) -> tensor<3x3x%[3]dx%[5]dxf32>
    return %%0 : tensor<3x3x%[3]dx%[5]dxf32>
  }
}`

func register(plugin *pjrt.Plugin, target string, handler unsafe.Pointer) {
	platform, name := C.CString("Host"), C.CString(target)
	defer C.free(unsafe.Pointer(platform))
	defer C.free(unsafe.Pointer(name))
	fmt.Printf("register %s: %d\n", target, C.spike_register(plugin.CAPIPointer(), platform, name, handler))
}

func must[T any](v T, err error) T {
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	return v
}

// weightGrad is dW[th, tw, ci, co] = Σ x_padded[n, oh·s+th, ow·s+tw, ci]·δ[n, oh, ow, co], padding 1.
func weightGrad(x []float32, n, h, c int, d []float32, oh, co, s int) []float64 {
	dw := make([]float64, 9*c*co)
	for b := range n {
		for i := range oh {
			for j := range oh {
				for th := range 3 {
					for tw := range 3 {
						y, z := i*s+th-1, j*s+tw-1
						if y < 0 || z < 0 || y >= h || z >= h {
							continue
						}
						xo, do := ((b*h+y)*h+z)*c, ((b*oh+i)*oh+j)*co
						for ci := range c {
							xv := float64(x[xo+ci])
							for o := range co {
								dw[((th*3+tw)*c+ci)*co+o] += xv * float64(d[do+o])
							}
						}
					}
				}
			}
		}
	}
	return dw
}

func main() {
	plugin := must(pjrt.GetPlugin(os.Args[1]))
	client := must(plugin.NewClient(nil))
	register(plugin, "nowt_spike_scale2", C.spike_scale2())
	register(plugin, "nowt_spike_conv_bwd_weights", unsafe.Pointer(C.nowt_spike_conv_bwd_weights))

	exec := must(client.Compile().WithStableHLO([]byte(scaleProgram)).Done())
	in := must(pjrt.ArrayToBuffer(client, []float32{1, 2, 3, 4}, 4))
	outs := must(exec.Execute(in).Done())
	v, _, err := pjrt.BufferToArray[float32](outs[0])
	fmt.Println("scale2 result:", v, err, "handler calls:", C.spike_calls)

	rng := rand.New(rand.NewSource(1))
	for _, tc := range []struct{ n, h, c, co, s int }{{64, 32, 16, 16, 1}, {64, 16, 32, 32, 1}, {64, 8, 64, 64, 1}, {64, 32, 16, 32, 2}} {
		oh := (tc.h-1)/tc.s + 1
		x := make([]float32, tc.n*tc.h*tc.h*tc.c)
		d := make([]float32, tc.n*oh*oh*tc.co)
		for i := range x {
			x[i] = rng.Float32()*2 - 1
		}
		for i := range d {
			d[i] = rng.Float32()*2 - 1
		}
		program := fmt.Sprintf(convProgram, tc.n, tc.h, tc.c, oh, tc.co, tc.s)
		exec := must(client.Compile().WithStableHLO([]byte(program)).Done())
		xb := must(pjrt.ArrayToBuffer(client, x, tc.n, tc.h, tc.h, tc.c))
		db := must(pjrt.ArrayToBuffer(client, d, tc.n, oh, oh, tc.co))
		var times []float64
		var got []float32
		for range 30 {
			start := time.Now()
			outs := must(exec.Execute(xb, db).Done())
			times = append(times, float64(time.Since(start).Microseconds())/1000)
			got, _, err = pjrt.BufferToArray[float32](outs[0])
			if err != nil {
				panic(err)
			}
		}
		want := weightGrad(x, tc.n, tc.h, tc.c, d, oh, tc.co, tc.s)
		worst := 0.0
		for i := range want {
			worst = max(worst, math.Abs(float64(got[i])-want[i])/(1+math.Abs(want[i])))
		}
		slices.Sort(times)
		fmt.Printf("bwd weights n%d %dx%dx%d->%d s%d: median %.3f ms (whole execution), worst relative error %.2g\n",
			tc.n, tc.h, tc.h, tc.c, tc.co, tc.s, times[len(times)/2], worst)
	}
}
