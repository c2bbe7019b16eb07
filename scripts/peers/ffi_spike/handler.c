// An XLA FFI handler registered with the CPU PJRT plugin from outside it: the experiment of perf-analysis.md §24.
// run.sh builds main.go with it. The handler doubles a float32 array; spike_register finds the plugin's FFI
// extension in its PJRT_Api and registers a handler (this one, or conv_bwd_weights.cc's) under a target name.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xla_ffi_c_api.h"  // copied by run.sh from jaxlib's include/xla/ffi/api/c_api.h

// The PJRT structs this needs, as the plugin (v0.81) lays them out: PJRT_Api starts with its size and its
// extension list; the FFI extension (PJRT_Extension_Type_FFI = 5) holds three functions; the registration
// arguments are 0x34 bytes (the plugin checks struct_size against that).
typedef struct ExtensionBase {
  size_t struct_size;
  int type;
  struct ExtensionBase* next;
} ExtensionBase;
typedef struct {
  size_t struct_size;
  const char* target_name;
  size_t target_name_size;
  void* handler;  // XLA_FFI_Handler*
  const char* platform_name;
  size_t platform_name_size;
  unsigned int traits;
} RegisterHandlerArgs;
typedef void* (*RegisterHandler)(RegisterHandlerArgs*);
typedef struct {
  ExtensionBase base;
  void* type_id_register;
  void* user_data_add;
  RegisterHandler register_handler;
} FFIExtension;
typedef struct {
  size_t struct_size;
  ExtensionBase* extension_start;
} APIHead;

int spike_calls = 0;

// The plugin (FFI API 0.2) accepts handlers that report 0.1 or 0.2; 0.0 and jaxlib 0.10's 0.3 are refused, and
// the plugin's PJRT_FFI_Register_Handler drops that error: the refusal shows only when a program calling the
// target is compiled ("No FFI handler registered for … on a platform Host").
static int answered_minor(void) {
  const char* v = getenv("SPIKE_MINOR");
  return v ? atoi(v) : 1;
}

static XLA_FFI_Error* scale2(XLA_FFI_CallFrame* frame) {
  for (XLA_FFI_Extension_Base* e = frame->extension_start; e; e = e->next) {
    if (e->type == XLA_FFI_Extension_Metadata) {  // registration asks for the handler's API version
      XLA_FFI_Metadata* m = ((XLA_FFI_Metadata_Extension*)e)->metadata;
      m->api_version.major_version = 0;
      m->api_version.minor_version = answered_minor();
      m->traits = 0;
      return NULL;
    }
  }
  if (frame->stage != XLA_FFI_ExecutionStage_EXECUTE) return NULL;
  XLA_FFI_Buffer* in = (XLA_FFI_Buffer*)frame->args.args[0];
  XLA_FFI_Buffer* out = (XLA_FFI_Buffer*)frame->rets.rets[0];
  int64_t n = 1;
  for (int64_t i = 0; i < in->rank; i++) n *= in->dims[i];
  const float* a = (const float*)in->data;
  float* b = (float*)out->data;
  for (int64_t i = 0; i < n; i++) b[i] = 2 * a[i];
  spike_calls++;
  return NULL;
}

// spike_scale2 is the doubling handler, for spike_register.
void* spike_scale2(void) { return (void*)scale2; }

// spike_register registers handler as target on platform. It returns 0 when the plugin took the registration
// (which does not mean it kept it, see above), -1 when the plugin has no FFI extension, -2 when its extension has
// no register_handler.
int spike_register(void* api, const char* platform, const char* target, void* handler) {
  for (ExtensionBase* e = ((APIHead*)api)->extension_start; e; e = e->next) {
    if (e->type != 5) continue;
    FFIExtension* f = (FFIExtension*)e;
    if (e->struct_size < sizeof(FFIExtension) || !f->register_handler) return -2;
    RegisterHandlerArgs args = {sizeof(RegisterHandlerArgs), target, strlen(target), handler, platform,
                                strlen(platform), 0};
    return f->register_handler(&args) == NULL ? 0 : -3;
  }
  return -1;
}
