package pjrt

/*
#include <stdlib.h>
#include "pjrt_c_api.h"

// The FFI extension of the PJRT C API (xla/pjrt/c/pjrt_c_api_ffi_extension.h, version 2), the part of it used here.
// The registration arguments carry no extension_start: the plugin checks struct_size against 0x34 bytes.
typedef struct {
  size_t struct_size;
  const char* target_name;
  size_t target_name_size;
  void* handler;
  const char* platform_name;
  size_t platform_name_size;
  unsigned int traits;
} goxla_FFI_Register_Handler_Args;

typedef struct {
  PJRT_Extension_Base base;
  void* type_id_register;
  void* user_data_add;
  PJRT_Error* (*register_handler)(goxla_FFI_Register_Handler_Args* args);
} goxla_FFI_Extension;

// goxla_ffi_extension returns the plugin's FFI extension with a register_handler, or NULL.
static goxla_FFI_Extension* goxla_ffi_extension(const PJRT_Api* api) {
  for (PJRT_Extension_Base* e = api->extension_start; e != NULL; e = e->next) {
    if (e->type != PJRT_Extension_Type_FFI) continue;
    goxla_FFI_Extension* ffi = (goxla_FFI_Extension*)e;
    if (e->struct_size < sizeof(goxla_FFI_Extension) || ffi->register_handler == NULL) return NULL;
    return ffi;
  }
  return NULL;
}

static PJRT_Error* goxla_ffi_register(goxla_FFI_Extension* ffi, const char* target, size_t target_size,
                                     void* handler, const char* platform, size_t platform_size) {
  goxla_FFI_Register_Handler_Args args = {sizeof(goxla_FFI_Register_Handler_Args), target, target_size, handler,
                                          platform, platform_size, 0};
  return ffi->register_handler(&args);
}
*/
import "C"

import (
	"strconv"
	"unsafe"

	"github.com/pkg/errors"
)

// RegisterFFIHandler registers handler, an XLA FFI handler (a C function XLA_FFI_Error* (XLA_FFI_CallFrame*)), as
// the target of typed-FFI custom calls (stablehlo.CustomCallFFI) named target on platform ("Host" for the CPU
// plugin), through the plugin's FFI extension. It fails if the plugin has no FFI extension.
//
// The registration checks the handler's FFI API version (the handler is called with a metadata extension) and may
// refuse it; the CPU plugins of 2025 drop that error, so a refused handler only shows when a program that calls it
// is compiled ("No FFI handler registered for …"): compile one to know.
func (p *Plugin) RegisterFFIHandler(target, platform string, handler unsafe.Pointer) error {
	what := "registering FFI handler " + strconv.Quote(target) + " on platform " + strconv.Quote(platform) +
		" with plugin " + p.name
	if handler == nil {
		return errors.New(what + ": nil handler")
	}
	ffi := C.goxla_ffi_extension(p.api)
	if ffi == nil {
		return errors.New(what + ": the plugin has no FFI extension with handler registration")
	}
	cTarget, cPlatform := C.CString(target), C.CString(platform)
	defer C.free(unsafe.Pointer(cTarget))
	defer C.free(unsafe.Pointer(cPlatform))
	pErr := C.goxla_ffi_register(ffi, cTarget, C.size_t(len(target)), handler, cPlatform, C.size_t(len(platform)))
	if err := toError(p, pErr); err != nil {
		return errors.WithMessage(err, what)
	}
	return nil
}
